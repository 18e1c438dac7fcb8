//! Per channel, what a writer must know to commit next: the stream sequence of the channel's
//! last stored batch (the `Nats-Expected-Last-Subject-Sequence` of the next write), the
//! framecast seq that comes next, and the epoch; and the channel's queue of requests with at
//! most one batch in flight. Pure bookkeeping, no I/O: the bridge drives it.

use std::collections::VecDeque;
use std::sync::Arc;

use async_nats::HeaderMap;

use super::record::{COUNT, EPOCH, SEQ};
use super::CommitRequest;

/// The head of one channel in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// Stream sequence of the channel's last batch.
    pub(crate) stream_seq: u64,
    /// framecast seq of the next event.
    pub(crate) next_seq: u64,
    /// The channel's epoch.
    pub(crate) epoch: Arc<str>,
}

/// framecast's numbering read from a stored batch's headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Numbering {
    /// Seq of the first event.
    pub(crate) first_seq: u64,
    /// Events in the batch.
    pub(crate) count: u64,
    /// Epoch.
    pub(crate) epoch: Arc<str>,
}

impl Numbering {
    /// Reads `Fc-Seq`, `Fc-Count` and `Fc-Epoch`; `None` if any is missing or malformed.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Numbering> {
        let number = |name: &str| headers.get(name)?.as_str().parse::<u64>().ok();
        let first_seq = number(SEQ).filter(|&s| s >= 1)?;
        let count = number(COUNT).filter(|&c| c >= 1)?;
        let epoch = headers.get(EPOCH)?.as_str();
        (!epoch.is_empty()).then(|| Numbering {
            first_seq,
            count,
            epoch: Arc::from(epoch),
        })
    }

    /// The head after the batch stored at `stream_seq`.
    pub(crate) fn head_at(&self, stream_seq: u64) -> Head {
        Head {
            stream_seq,
            next_seq: self.first_seq + self.count,
            epoch: self.epoch.clone(),
        }
    }
}

/// Where one channel's in-flight batch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Sent; waiting for the stream's answer.
    Sending,
    /// The answer was lost (timeout, broker gone): committed or not, the stream will tell
    /// once this node has followed it up to `target` (its last sequence, once read).
    Unknown {
        /// The stream's last sequence read after the loss.
        target: Option<u64>,
    },
}

/// A batch on its way: the requests it carries, under one message id across retries (so an
/// unknown outcome can be looked up in the stream).
#[derive(Debug)]
pub(crate) struct InFlight {
    /// The requests, in order.
    pub(crate) requests: Vec<CommitRequest>,
    /// `Nats-Msg-Id`, kept across retries.
    pub(crate) msg_id: String,
    /// Where it stands.
    pub(crate) attempt: Attempt,
    /// When the current attempt was sent.
    pub(crate) sent_at: std::time::Instant,
    /// How the current attempt numbered the events.
    pub(crate) numbering: Option<Numbering>,
}

/// One channel's writer side.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    /// Requests not yet sent, oldest first.
    pub(crate) queue: VecDeque<CommitRequest>,
    /// The batch in flight, if any.
    pub(crate) in_flight: Option<InFlight>,
}

impl Writer {
    /// Takes queued requests for one batch: all of them, up to `max_bytes` (at least one).
    pub(crate) fn take_batch(&mut self, max_bytes: usize) -> Vec<CommitRequest> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(front) = self.queue.front() {
            let cost = front.cost();
            if !out.is_empty() && bytes + cost > max_bytes {
                break;
            }
            bytes += cost;
            out.extend(self.queue.pop_front());
        }
        out
    }

    /// Whether nothing is queued or in flight.
    pub(crate) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_none()
    }
}

/// What the next write of a channel carries, given its head (`None`: the subject is empty).
pub(crate) fn next_numbering(
    head: Option<&Head>,
    count: u64,
    new_epoch: impl FnOnce() -> Arc<str>,
) -> (u64, Numbering) {
    match head {
        Some(h) => (
            h.stream_seq,
            Numbering {
                first_seq: h.next_seq,
                count,
                epoch: h.epoch.clone(),
            },
        ),
        None => (
            0,
            Numbering {
                first_seq: 1,
                count,
                epoch: new_epoch(),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_subject_starts_a_new_epoch_at_seq_1() {
        let (expected, n) = next_numbering(None, 3, || Arc::from("e1"));
        assert_eq!((expected, n.first_seq, &*n.epoch), (0, 1, "e1"));
        let head = n.head_at(17);
        let (expected, next) = next_numbering(Some(&head), 2, || unreachable!());
        assert_eq!((expected, next.first_seq, &*next.epoch), (17, 4, "e1"));
    }

    #[test]
    fn numbering_round_trips_through_headers() {
        let mut h = HeaderMap::new();
        h.insert(SEQ, "5");
        h.insert(COUNT, "2");
        h.insert(EPOCH, "abc");
        let n = Numbering::from_headers(&h).unwrap();
        assert_eq!(n.head_at(9).next_seq, 7);
        h.insert(COUNT, "0");
        assert_eq!(Numbering::from_headers(&h), None);
    }
}
