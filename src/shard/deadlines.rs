//! The shard's timer queue: every connection's next deadline ([`Conn::poll_timeout`]), earliest
//! first, so the loop sleeps until the next one is due and then visits only the connections
//! whose deadline came, instead of sweeping all of them on an interval.
//!
//! Lazy by design: a connection's deadline is pushed only when it is earlier than the one the
//! queue already holds for it ([`Entry::timer_at`]), so rescheduling costs no search. A
//! deadline that moved later (a pong arrived) or whose connection is gone is stale; before the
//! loop sleeps, [`Deadlines::settle`] drops stale deadlines from the front (rescheduling their
//! connections), so the loop sleeps until the earliest real one.
//!
//! Compact on purpose, since the queue holds about one entry per connection and idle memory per
//! connection is a figure users compare: an entry is 8 bytes, a deadline in whole milliseconds
//! since the queue's epoch (rounded up, so nothing fires early; "now" is rounded down) and the
//! connection's slot. A slot's entry is current only while it equals the slot's
//! [`Entry::timer_at`]; a new connection in the same slot with the very same deadline would be
//! due at that moment anyway. The epoch moves forward every 2^31 ms (about 25 days): shifting
//! every key by the same amount keeps the heap ordered. A deadline further out than the keys
//! reach (a token valid for months) is held at the farthest key and re-entered when it pops.
//!
//! [`Conn::poll_timeout`]: crate::conn::Conn::poll_timeout

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::conn_id::{ConnId, Slot};
use crate::table::{ConnTable, Entry};

/// [`Entry::timer_at`] when the queue holds no deadline for the connection.
pub(crate) const NO_DEADLINE: u32 = u32::MAX;
/// The farthest key: deadlines beyond it are held here and re-entered when it pops.
const FAR: u32 = u32::MAX - 1;
/// Past this many milliseconds since the epoch, the epoch moves up to "now".
const REBASE_AFTER_MS: u64 = 1 << 31;

/// Deadlines of a shard's connections.
#[derive(Debug)]
pub(crate) struct Deadlines {
    epoch: Instant,
    heap: BinaryHeap<Reverse<(u32, Slot)>>,
}

impl Deadlines {
    /// An empty queue; deadlines are counted from `epoch` (none may be earlier).
    pub(crate) fn new(epoch: Instant) -> Deadlines {
        Deadlines {
            epoch,
            heap: BinaryHeap::new(),
        }
    }

    /// The key of a deadline: whole milliseconds after the epoch, rounded up.
    fn key(&self, at: Instant) -> u32 {
        let ms = crate::conn::timers::millis_after(self.epoch, at);
        u32::try_from(ms).map_or(FAR, |k| k.min(FAR))
    }

    /// Whole milliseconds from the epoch to `now`, rounded down.
    fn now_key(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Enters `entry`'s next deadline if the queue does not already hold an earlier or equal one
    /// for it.
    pub(crate) fn schedule(&mut self, entry: &mut Entry) {
        let Some(at) = entry.conn.poll_timeout() else {
            return;
        };
        let key = self.key(at);
        if key < entry.timer_at {
            entry.timer_at = key;
            self.heap.push(Reverse((key, entry.id.slot)));
        }
    }

    /// The earliest deadline held.
    pub(crate) fn next(&self) -> Option<Instant> {
        (self.heap.peek())
            .map(|Reverse((key, _))| self.epoch + Duration::from_millis(u64::from(*key)))
    }

    /// Takes the earliest deadline if it is due at `now`: the connection whose deadline it is, if
    /// it is still that slot's current one (else the entry was stale).
    pub(crate) fn pop_due(&mut self, now: Instant, table: &mut ConnTable) -> Option<Due> {
        let &Reverse((key, slot)) = self.heap.peek()?;
        if u64::from(key) > self.now_key(now) {
            return None;
        }
        self.heap.pop();
        Some(match table.get_mut(slot) {
            Some(e) if e.timer_at == key => {
                e.timer_at = NO_DEADLINE;
                Due::Fire(e.id)
            }
            _ => Due::Stale,
        })
    }

    /// Drops stale deadlines from the front until the earliest held is a connection's real
    /// next deadline: for a gone connection, one superseded by an earlier push, or one that
    /// moved later (then the connection's real deadline is entered instead). Also moves the
    /// epoch up once keys near their range.
    pub(crate) fn settle(&mut self, now: Instant, table: &mut ConnTable) {
        if self.now_key(now) >= REBASE_AFTER_MS {
            self.rebase(now, table);
        }
        while let Some(&Reverse((key, slot))) = self.heap.peek() {
            let entry = match table.get_mut(slot) {
                Some(e) if e.timer_at == key => e,
                _ => {
                    self.heap.pop();
                    continue;
                }
            };
            if entry.conn.poll_timeout().map(|at| self.key(at)) == Some(key) {
                return;
            }
            self.heap.pop();
            entry.timer_at = NO_DEADLINE;
            self.schedule(entry);
        }
    }

    /// Moves the epoch up to `now` (whole milliseconds), shifting every key and every
    /// [`Entry::timer_at`] by the same amount: the heap stays ordered.
    fn rebase(&mut self, now: Instant, table: &mut ConnTable) {
        let shift = self.now_key(now);
        let shifted = |key: u32| match key {
            NO_DEADLINE => NO_DEADLINE,
            k => u32::try_from(u64::from(k).saturating_sub(shift)).unwrap_or(FAR),
        };
        self.epoch += Duration::from_millis(shift);
        let keys = std::mem::take(&mut self.heap).into_vec();
        self.heap = (keys.into_iter())
            .map(|Reverse((key, slot))| Reverse((shifted(key), slot)))
            .collect();
        for (_, e) in table.iter_mut() {
            e.timer_at = shifted(e.timer_at);
        }
    }
}

/// What [`Deadlines::pop_due`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// This connection's deadline came: run its timers, then reschedule it.
    Fire(ConnId),
    /// A stale entry was dropped.
    Stale,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_entry_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Reverse<(u32, Slot)>>(), 8);
    }

    #[test]
    fn deadlines_round_up_and_now_rounds_down_so_nothing_fires_early() {
        let t0 = Instant::now();
        let q = Deadlines::new(t0);
        let at = t0 + Duration::from_micros(1500);
        assert_eq!(q.key(at), 2);
        assert_eq!(q.now_key(at), 1, "due only once now reaches the 2 ms mark");
        assert_eq!(
            q.key(t0 + Duration::from_secs(100 * 86_400)),
            FAR,
            "held at the farthest key"
        );
    }

    #[test]
    fn moving_the_epoch_keeps_every_deadline_in_order_and_due() {
        let t0 = Instant::now();
        let mut table = ConnTable::default();
        let early = crate::testing::open_entry(&mut table, Default::default(), t0);
        let mut q = Deadlines::new(t0);
        q.schedule(table.get_id_mut(early).unwrap()); // its ping, 30 s after t0
        let later = t0 + Duration::from_millis(REBASE_AFTER_MS);
        let late = crate::testing::open_entry(&mut table, Default::default(), later);
        q.schedule(table.get_id_mut(late).unwrap()); // its ping, 30 s after `later`
        q.settle(later, &mut table);
        assert_eq!(q.epoch, later, "the epoch moved up");
        assert_eq!(
            q.pop_due(later, &mut table),
            Some(Due::Fire(early)),
            "long overdue"
        );
        assert_eq!(q.pop_due(later, &mut table), None);
        let ping = later + Duration::from_secs(30);
        assert_eq!(q.next(), Some(ping));
        assert_eq!(q.pop_due(ping, &mut table), Some(Due::Fire(late)));
    }
}
