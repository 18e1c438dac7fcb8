//! The outbound side of a connection: what the application queues, and what the driver takes
//! to write ([`Conn::poll_transmit`]) and reports written ([`Conn::handle_sent`]).

use std::time::Instant;

use bytes::Bytes;

use super::{Conn, ConnSettings, Full, SendBatch};

impl Conn {
    /// Queues a broadcast frame; past the queue cap the connection starts closing with 1008
    /// and `Err(Full)` tells the caller it was a slow consumer.
    pub fn push_broadcast(
        &mut self,
        frame: Bytes,
        settings: &ConnSettings,
        now: Instant,
    ) -> Result<(), Full> {
        if !self.is_open() {
            return Ok(());
        }
        self.outbox
            .push(frame, settings.max_queued_bytes)
            .inspect_err(|_| self.close_slow_consumer(now))
    }

    /// Queues a reply or notice, bypassing the queue cap (the caller bounds what it queues).
    pub fn queue(&mut self, frame: Bytes) {
        self.outbox.push_unchecked(frame);
    }

    /// Queues a replayed history frame: it raises the queue's cap by its size until sent
    /// (see [`Outbox::push_replay`]).
    pub fn queue_replay(&mut self, frame: Bytes) {
        self.outbox.push_replay(frame);
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.outbox.queued()
    }

    /// Whether anything is queued to write.
    pub fn has_output(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Whether `len` more bytes fit under the queue cap `cap`.
    pub fn queue_fits(&self, len: usize, cap: usize) -> bool {
        self.outbox.fits(len, cap)
    }

    /// Whether the queue is over the cap `cap`.
    pub fn queue_over(&self, cap: usize) -> bool {
        self.outbox.over(cap)
    }

    /// Fills `batch` (the caller's, from the driver's pool) with the next bytes to write, by
    /// reference; returns whether there is anything. The bytes stay queued until
    /// [`Conn::handle_sent`] says how many were written.
    pub fn poll_transmit(&self, batch: &mut SendBatch) -> bool {
        self.outbox.fill(batch);
        batch.len > 0
    }

    /// Records that the driver wrote `n` bytes of the outbox.
    pub fn handle_sent(&mut self, n: usize) {
        self.outbox.advance(n);
    }
}
