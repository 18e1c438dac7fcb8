//! The shard's timer queue: every connection's next deadline ([`Conn::poll_timeout`]), earliest
//! first, so the loop sleeps exactly until the next one is due and then visits only the
//! connections whose deadline came, instead of sweeping all of them on an interval.
//!
//! Lazy by design: a connection's deadline is pushed only when it is earlier than the one the
//! queue already holds for it ([`Entry::timer_at`]), so rescheduling costs no search. A
//! deadline that moved later (a pong arrived) or whose connection is gone is stale; before the
//! loop sleeps, [`Deadlines::settle`] drops stale deadlines from the front (rescheduling their
//! connections), so the loop sleeps exactly until the earliest real one.
//!
//! [`Conn::poll_timeout`]: crate::conn::Conn::poll_timeout

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::conn_id::ConnId;
use crate::table::{ConnTable, Entry};

/// Deadlines of a shard's connections.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, ConnId)>>,
}

impl Deadlines {
    /// Enters `entry`'s next deadline if the queue does not already hold an earlier or equal one
    /// for it.
    pub(crate) fn schedule(&mut self, entry: &mut Entry) {
        let Some(at) = entry.conn.poll_timeout() else {
            return;
        };
        if entry.timer_at.is_none_or(|held| at < held) {
            entry.timer_at = Some(at);
            self.heap.push(Reverse((at, entry.id)));
        }
    }

    /// The earliest deadline held (possibly stale: then the wake-up finds nothing due).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the earliest deadline if it is due at `now`: the connection and the deadline, which
    /// is current only if it still equals the connection's [`Entry::timer_at`].
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, ConnId)> {
        let &Reverse((at, _)) = self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop().map(|Reverse(due)| due)
    }

    /// Drops stale deadlines from the front until the earliest held is a connection's real
    /// next deadline: for a gone connection, one superseded by an earlier push, or one that
    /// moved later (then the connection's real deadline is entered instead).
    pub(crate) fn settle(&mut self, table: &mut ConnTable) {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            let entry = match table.get_id_mut(id) {
                Some(e) if e.timer_at == Some(at) => e,
                _ => {
                    self.heap.pop();
                    continue;
                }
            };
            if entry.conn.poll_timeout() == Some(at) {
                return;
            }
            self.heap.pop();
            entry.timer_at = None;
            self.schedule(entry);
        }
    }
}
