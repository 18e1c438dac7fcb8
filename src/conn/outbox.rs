//! A connection's outbound queue: whole frames as shared `Bytes` (a broadcast frame is the same
//! allocation for every subscriber), byte accounting against `max_queued_bytes`, and the gather
//! list for the next vectored send.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::limits::{MAX_BYTES_PER_SEND, MAX_IOVECS_PER_SEND};

/// Frames handed to a driver for one vectored send; the driver owns these references until the
/// send completes, so the memory a kernel operation points at cannot be freed under it.
#[derive(Debug, Default)]
pub struct SendBatch {
    /// Frames in order; the first starts `offset` bytes in.
    pub bufs: Vec<Bytes>,
    /// Bytes of `bufs[0]` already sent earlier.
    pub offset: usize,
    /// Total bytes to send (sum of lengths minus `offset`).
    pub len: usize,
}

impl SendBatch {
    /// The byte slices to send, in order.
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs
            .iter()
            .enumerate()
            .map(move |(i, b)| if i == 0 { &b[self.offset..] } else { &b[..] })
    }

    /// Empties the batch (keeping its capacity) so it can be pooled.
    pub fn clear(&mut self) {
        self.bufs.clear();
        self.offset = 0;
        self.len = 0;
    }
}

/// The queue was over its cap: the connection is a slow consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// Outbound frames of one connection.
#[derive(Debug, Default)]
pub struct Outbox {
    /// The oldest unsent frame, held inline: a connection sent one frame at a time (one
    /// channel's tick, drained before the next) never allocates a queue.
    head: Option<Bytes>,
    /// Frames after `head`, oldest first (`None` whenever `head` is): allocated while a second
    /// frame waits and given back once drained, so a connection costs one pointer for it.
    #[allow(clippy::box_collection)] // deliberate: 8 bytes per idle connection instead of 32
    rest: Option<Box<VecDeque<Bytes>>>,
    /// Bytes of the front frame already written.
    front_sent: usize,
    /// Unsent bytes queued.
    queued: usize,
    /// Bytes allowed above the cap until sent: a recovery replay, which the client asked for
    /// and which is made of frames the server holds anyway (history).
    allowance: usize,
}

impl Outbox {
    /// Unsent bytes queued.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Whether nothing is left to send.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Queues a frame unless that would take the queue past `cap` bytes. An empty queue always
    /// takes the frame: a client that has drained everything is not behind, even when one
    /// tick's batch is larger than the cap.
    pub fn push(&mut self, frame: Bytes, cap: usize) -> Result<(), Full> {
        if !self.fits(frame.len(), cap) {
            return Err(Full);
        }
        self.push_unchecked(frame);
        Ok(())
    }

    /// Whether `len` more bytes fit under `cap` (plus any replay allowance); an empty queue
    /// takes anything.
    pub fn fits(&self, len: usize, cap: usize) -> bool {
        self.queued == 0 || self.queued + len <= cap + self.allowance
    }

    /// Whether the queue is over `cap` (plus any replay allowance).
    pub fn over(&self, cap: usize) -> bool {
        self.queued > cap + self.allowance
    }

    /// Queues recovery frames beyond the cap: they raise the allowance by their size until sent.
    pub fn push_replay(&mut self, frame: Bytes) {
        self.allowance += frame.len();
        self.push_unchecked(frame);
    }

    /// Queues a frame the server must send whatever the cap (close frames, handshake replies).
    pub fn push_unchecked(&mut self, frame: Bytes) {
        self.queued += frame.len();
        if self.head.is_none() {
            self.head = Some(frame);
        } else {
            self.rest.get_or_insert_with(Box::default).push_back(frame);
        }
    }

    /// Fills `batch` with the next frames to send, up to the per-send limits.
    pub fn fill(&self, batch: &mut SendBatch) {
        batch.clear();
        batch.offset = self.front_sent;
        let rest = self.rest.iter().flat_map(|r| r.iter());
        for frame in self.head.iter().chain(rest).take(MAX_IOVECS_PER_SEND) {
            if !batch.bufs.is_empty() && batch.len + frame.len() > MAX_BYTES_PER_SEND {
                break;
            }
            batch.len += frame.len();
            batch.bufs.push(frame.clone());
        }
        batch.len -= self.front_sent;
    }

    /// Records that `n` more bytes were written.
    pub fn advance(&mut self, mut n: usize) {
        debug_assert!(n <= self.queued, "advanced past what was queued");
        self.queued -= n;
        self.allowance = self.allowance.saturating_sub(n);
        while n > 0 {
            let Some(front) = &self.head else {
                break;
            };
            let front_left = front.len() - self.front_sent;
            if n >= front_left {
                n -= front_left;
                self.head = self.rest.as_mut().and_then(|r| r.pop_front());
                self.front_sent = 0;
            } else {
                self.front_sent += n;
                n = 0;
            }
        }
        self.release_drained_queue();
    }

    /// An idle connection holds no queue memory.
    fn release_drained_queue(&mut self) {
        if self.rest.as_ref().is_some_and(|r| r.is_empty()) {
            self.rest = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn fill_gathers_in_order_from_a_partly_sent_front() {
        let mut o = Outbox::default();
        o.push(b("hello"), 100).unwrap();
        o.push(b("world"), 100).unwrap();
        o.advance(2);
        let mut batch = SendBatch::default();
        o.fill(&mut batch);
        let all: Vec<u8> = batch.slices().flatten().copied().collect();
        assert_eq!(all, b"lloworld");
        assert_eq!(batch.len, 8);
        o.advance(8);
        assert!(o.is_empty());
    }

    #[test]
    fn push_past_the_cap_is_refused() {
        let mut o = Outbox::default();
        o.push(b("12345"), 8).unwrap();
        assert_eq!(o.push(b("6789"), 8), Err(Full));
        assert_eq!(o.queued(), 5);
    }

    #[test]
    fn empty_queue_takes_a_frame_larger_than_the_cap() {
        let mut o = Outbox::default();
        o.push(b("0123456789"), 8).unwrap();
        assert_eq!(o.push(b("x"), 8), Err(Full));
    }

    #[test]
    fn a_replay_raises_the_cap_until_it_is_sent() {
        let mut o = Outbox::default();
        o.push_replay(b("0123456789"));
        assert!(
            o.push(b("abc"), 8).is_ok(),
            "the replay's allowance makes room"
        );
        assert!(!o.over(8));
        o.advance(10);
        assert_eq!(o.push(b("defghij"), 8), Err(Full), "allowance spent");
    }

    #[test]
    fn a_connection_sent_one_frame_at_a_time_never_allocates_a_queue() {
        let mut o = Outbox::default();
        for _ in 0..3 {
            o.push(b("tick"), 100).unwrap();
            o.advance(4);
        }
        assert!(o.is_empty());
        assert!(o.rest.is_none());
    }

    #[test]
    fn a_drained_queue_gives_its_memory_back() {
        let mut o = Outbox::default();
        for _ in 0..3 {
            o.push_unchecked(b("x"));
        }
        assert!(o.rest.is_some());
        o.advance(3);
        assert!(o.rest.is_none());
    }

    #[test]
    fn fill_caps_iovecs_per_send() {
        let mut o = Outbox::default();
        for _ in 0..(MAX_IOVECS_PER_SEND + 10) {
            o.push_unchecked(b("x"));
        }
        let mut batch = SendBatch::default();
        o.fill(&mut batch);
        assert_eq!(batch.bufs.len(), MAX_IOVECS_PER_SEND);
    }
}
