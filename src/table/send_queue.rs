//! The shard's send order: connections with output, oldest first (round-robin under overload),
//! each stamped with when it joined so the shard can report how long connections wait for their
//! send. That wait is the shard's saturation signal: about one tick when it keeps up, one pass
//! over every busy connection when it does not.

use std::collections::VecDeque;
use std::time::Instant;

use crate::conn_id::Slot;

/// Upper bounds (milliseconds) of the send-wait histogram's buckets; one more bucket is +Inf.
pub(crate) const SEND_WAIT_BUCKETS_MS: [u32; 12] =
    [1, 2, 5, 10, 17, 25, 50, 100, 250, 500, 1000, 5000];

/// Connections waiting for a send, in the order they got output. A connection is queued at most
/// once (its `Entry::dirty` flag says it is in here).
#[derive(Debug)]
pub struct SendQueue {
    /// Slot and the millisecond (since `epoch`) it was queued.
    slots: VecDeque<(Slot, u32)>,
    epoch: Instant,
    now_ms: u32,
}

impl SendQueue {
    /// An empty queue whose clock starts at `epoch`.
    pub fn new(epoch: Instant) -> SendQueue {
        SendQueue {
            slots: VecDeque::new(),
            epoch,
            now_ms: 0,
        }
    }

    /// Sets the time stamped on the next pushes and used by the next pops (once per loop turn).
    /// Milliseconds wrap after 49 days; waits are computed with wrapping arithmetic.
    pub fn set_now(&mut self, now: Instant) {
        self.now_ms = now.saturating_duration_since(self.epoch).as_millis() as u32;
    }

    /// Queues a connection at the back unless `queued` (its `Entry::dirty` flag) says it is
    /// already waiting; sets the flag.
    pub fn push_once(&mut self, slot: Slot, queued: &mut bool) {
        if !*queued {
            *queued = true;
            self.slots.push_back((slot, self.now_ms));
        }
    }

    /// Takes the connection that has waited longest, with how long it waited (milliseconds).
    pub fn pop(&mut self) -> Option<(Slot, u32)> {
        let (slot, since) = self.slots.pop_front()?;
        Some((slot, self.now_ms.wrapping_sub(since)))
    }

    /// Whether no connection waits.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// The histogram bucket of a wait of `ms` milliseconds (the last index is +Inf).
pub(crate) fn wait_bucket(ms: u32) -> usize {
    SEND_WAIT_BUCKETS_MS
        .iter()
        .position(|&bound| ms <= bound)
        .unwrap_or(SEND_WAIT_BUCKETS_MS.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_connection_waits_from_its_push_to_its_pop() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(t0);
        q.set_now(t0 + Duration::from_millis(10));
        let (mut seven, mut eight) = (false, false);
        q.push_once(7, &mut seven);
        q.push_once(8, &mut eight);
        q.push_once(7, &mut seven);
        assert!(seven && eight);
        q.set_now(t0 + Duration::from_millis(42));
        assert_eq!(q.pop(), Some((7, 32)));
        assert_eq!(q.pop(), Some((8, 32)));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn waits_fall_in_the_first_bucket_whose_bound_holds_them() {
        assert_eq!(wait_bucket(0), 0);
        assert_eq!(wait_bucket(1), 0);
        assert_eq!(wait_bucket(17), 4);
        assert_eq!(wait_bucket(18), 5);
        assert_eq!(wait_bucket(u32::MAX), SEND_WAIT_BUCKETS_MS.len());
    }
}
