//! A channel's recent events for recovery: a ring of the last `history_size` event frames, each
//! the already-encoded `Bytes` slice of the tick buffer it was sent in (replay copies nothing and
//! encodes nothing), trimmed by count and by `history_ttl`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::form::{EventForms, Form};

/// One kept event.
#[derive(Clone, Debug)]
struct Kept {
    seq: u64,
    at: Instant,
    forms: EventForms,
}

/// The ring of one channel's recent events, oldest first.
#[derive(Clone, Debug, Default)]
pub struct History {
    events: VecDeque<Kept>,
}

impl History {
    /// Keeps the encodings of event `seq` (sequence numbers arrive in order), pushing out the
    /// oldest beyond `cap`.
    pub fn push(&mut self, seq: u64, forms: EventForms, at: Instant, cap: usize) {
        if cap == 0 {
            return;
        }
        while self.events.len() >= cap {
            self.events.pop_front();
        }
        self.events.push_back(Kept { seq, at, forms });
    }

    /// Drops events older than `ttl` (zero = keep until pushed out).
    pub fn expire(&mut self, now: Instant, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        while self
            .events
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > ttl)
        {
            self.events.pop_front();
        }
    }

    /// Every frame after `seq` up to `last_seq`, if all of them are still held (recovery is
    /// all or nothing); `Some(empty)` when the client is already at `last_seq`; each in the
    /// encoding a connection of `form` takes.
    pub fn after(&self, seq: u64, last_seq: u64, form: Form) -> Option<Vec<Bytes>> {
        if seq > last_seq {
            return None;
        }
        if seq == last_seq {
            return Some(Vec::new());
        }
        let first = self.events.front()?.seq;
        if first > seq + 1 || self.events.back()?.seq != last_seq {
            return None;
        }
        let skip = (seq + 1 - first) as usize;
        Some(
            self.events
                .iter()
                .skip(skip)
                .map(|e| e.forms.pick(form).clone())
                .collect(),
        )
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Bytes of frames held, twins included (slices may share their tick buffer).
    pub fn bytes(&self) -> usize {
        self.events.iter().map(|e| e.forms.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(frame: Bytes) -> EventForms {
        EventForms {
            plain: frame,
            ..EventForms::default()
        }
    }

    fn filled(n: u64, cap: usize) -> History {
        let mut h = History::default();
        let t = Instant::now();
        for seq in 1..=n {
            h.push(seq, plain(Bytes::from(seq.to_string())), t, cap);
        }
        h
    }

    #[test]
    fn recovery_returns_exactly_the_missed_events_in_order() {
        let h = filled(10, 100);
        let got = h.after(6, 10, Form::default()).unwrap();
        assert_eq!(got, vec!["7", "8", "9", "10"]);
        assert_eq!(h.after(10, 10, Form::default()).unwrap().len(), 0);
    }

    #[test]
    fn recovery_fails_when_an_event_was_pushed_out() {
        let h = filled(10, 4);
        assert_eq!(h.len(), 4);
        assert!(h.after(5, 10, Form::default()).is_none(), "event 6 is gone");
        assert_eq!(h.after(6, 10, Form::default()).unwrap().len(), 4);
        assert!(
            h.after(11, 10, Form::default()).is_none(),
            "ahead of the channel"
        );
    }

    #[test]
    fn expired_events_are_dropped() {
        let mut h = History::default();
        let t = Instant::now();
        h.push(1, plain(Bytes::from_static(b"a")), t, 10);
        let later = t + Duration::from_secs(5);
        h.push(2, plain(Bytes::from_static(b"b")), later, 10);
        h.expire(t + Duration::from_secs(6), Duration::from_secs(3));
        assert_eq!(h.len(), 1);
        assert!(h.after(0, 2, Form::default()).is_none());
        assert!(h.after(1, 2, Form::default()).is_some());
    }
}
