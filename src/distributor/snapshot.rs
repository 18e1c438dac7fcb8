//! A `snapshot = true` channel's latest state: the newest event per `key` (events without a key
//! share one slot, so a keyless channel keeps just its newest event). New subscribers get it
//! first, marked `"snapshot":true`, before live events.
//!
//! Each kept event is encoded once, when its tick numbers it (with that tick's `frame` and
//! `timestamp`), and every subscriber joining before the next change shares one buffer holding
//! the whole snapshot: a reconnect storm onto a 10k-key channel costs one copy, not one encoding
//! per joiner. Keys are also indexed by `seq`, so forgetting the oldest at the cap is O(log n).

use std::collections::{BTreeMap, HashMap};

use bytes::{Bytes, BytesMut};

use super::form::{EventForms, Form};
use crate::limits::MAX_SNAPSHOT_KEYS;
use crate::protocol::compress::FrameDeflater;
use crate::wire::binary_event::put_binary_event_frame;
use crate::wire::event::{put_event_frame, EventFields};

/// One kept event: its key and its encodings as a joiner receives them.
#[derive(Clone, Debug)]
struct Kept {
    key: Bytes,
    forms: EventForms,
}

/// Newest event per key of one channel.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// seq → newest event of its key, oldest first: the order joiners get, and the key to
    /// forget at the cap.
    by_seq: BTreeMap<u64, Kept>,
    /// Key (empty for keyless events) → seq of its newest event.
    seq_of: HashMap<Bytes, u64>,
    /// Total bytes of the kept plain frames.
    bytes: usize,
    /// Per [`Form`] (by [`Form::index`]): every kept frame in seq order in one buffer, in that
    /// form, shared by joiners until the next change.
    joined: [Option<Bytes>; 4],
}

impl Snapshot {
    /// Keeps `event` (numbered, with its tick's frame and timestamp) as the newest for `key`,
    /// encoded with the snapshot mark; beyond [`MAX_SNAPSHOT_KEYS`] keys the oldest key is
    /// forgotten.
    pub fn put(&mut self, key: Option<&Bytes>, event: &EventFields<'_>) {
        self.put_with(key, event, None);
    }

    /// [`put`](Self::put), also compressing the event once with `deflater` (compression on);
    /// a binary event is also kept as its binary frame.
    pub fn put_with(
        &mut self,
        key: Option<&Bytes>,
        event: &EventFields<'_>,
        deflater: Option<&mut FrameDeflater>,
    ) {
        let mut out = BytesMut::new();
        let event = EventFields {
            snapshot: true,
            ..*event
        };
        put_event_frame(&mut out, &event);
        let binary = match event.binary {
            true => {
                let mut bin = BytesMut::new();
                put_binary_event_frame(&mut bin, &event);
                bin.freeze()
            }
            false => Bytes::new(),
        };
        let key = key.cloned().unwrap_or_default();
        if let Some(old) = self
            .seq_of
            .insert(key.clone(), event.seq)
            .and_then(|seq| self.by_seq.remove(&seq))
        {
            self.bytes -= old.forms.plain.len();
        }
        let deflated = deflater.map_or(Bytes::new(), |d| {
            let mut twin = BytesMut::with_capacity(out.len());
            d.put_frame(&mut twin, &out);
            twin.freeze()
        });
        self.bytes += out.len();
        self.by_seq.insert(
            event.seq,
            Kept {
                key,
                forms: EventForms {
                    plain: out.freeze(),
                    deflated,
                    binary,
                },
            },
        );
        if self.seq_of.len() > MAX_SNAPSHOT_KEYS {
            if let Some((_, oldest)) = self.by_seq.pop_first() {
                self.bytes -= oldest.forms.plain.len();
                self.seq_of.remove(&oldest.key);
            }
        }
        self.joined = Default::default();
    }

    /// The seq of the newest event kept for `key` (`None`: keyless events' slot).
    pub fn seq_of_key(&self, key: Option<&Bytes>) -> Option<u64> {
        let empty = Bytes::new();
        self.seq_of.get(key.unwrap_or(&empty)).copied()
    }

    /// The whole snapshot as consecutive event frames, oldest `seq` first, in one shared
    /// buffer (built on the first call after a change); `None` when nothing is kept.
    pub fn frames(&mut self) -> Option<Bytes> {
        self.frames_for(Form::default())
    }

    /// [`frames`](Self::frames), each event in the encoding a connection of `form` takes.
    pub fn frames_for(&mut self, form: Form) -> Option<Bytes> {
        if self.by_seq.is_empty() {
            return None;
        }
        let (by_seq, bytes) = (&self.by_seq, self.bytes);
        let joined = self.joined[form.index()].get_or_insert_with(|| {
            let mut out = BytesMut::with_capacity(bytes);
            for kept in by_seq.values() {
                out.extend_from_slice(kept.forms.pick(form));
            }
            out.freeze()
        });
        Some(joined.clone())
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// Keys kept.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(seq: u64, frame: u64, timestamp: &'a str, data: &'a [u8]) -> EventFields<'a> {
        EventFields {
            channel: "c",
            seq,
            frame,
            timestamp,
            unix_ms: 0,
            event_type: b"\"pos\"",
            data,
            key: None,
            snapshot: false,
            binary: false,
        }
    }

    fn put(s: &mut Snapshot, key: Option<&str>, seq: u64, data: &str) {
        let key = key.map(|k| Bytes::from(format!("\"{k}\"")));
        let mut e = event(seq, seq, "ts", data.as_bytes());
        e.key = key.as_deref();
        s.put(key.as_ref(), &e);
    }

    /// Splits the joined buffer back into the JSON of each event frame.
    fn events(s: &mut Snapshot) -> Vec<serde_json::Value> {
        let Some(joined) = s.frames() else {
            return Vec::new();
        };
        let mut rest = &joined[..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let (start, len) = match rest[1] {
                126 => (4, u16::from_be_bytes([rest[2], rest[3]]) as usize),
                n => (2, n as usize),
            };
            out.push(serde_json::from_slice(&rest[start..start + len]).unwrap());
            rest = &rest[start + len..];
        }
        out
    }

    #[test]
    fn keeps_the_newest_event_per_key_in_seq_order() {
        let mut s = Snapshot::default();
        put(&mut s, Some("a"), 1, "1");
        put(&mut s, Some("b"), 2, "2");
        put(&mut s, Some("a"), 3, "3");
        let v = events(&mut s);
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0]["seq"].as_u64(), v[0]["key"].as_str()),
            (Some(2), Some("b"))
        );
        assert_eq!(
            (v[1]["seq"].as_u64(), v[1]["data"].as_u64()),
            (Some(3), Some(3))
        );
        assert_eq!(v[1]["snapshot"], true);
    }

    #[test]
    fn a_kept_event_carries_the_frame_and_timestamp_of_the_tick_that_numbered_it() {
        let mut s = Snapshot::default();
        s.put(None, &event(7, 120, "2026-11-22T04:20:00.500Z", b"{}"));
        let v = events(&mut s);
        assert_eq!(v[0]["frame"], 120);
        assert_eq!(v[0]["timestamp"], "2026-11-22T04:20:00.500Z");
    }

    #[test]
    fn a_joiner_after_a_change_gets_the_new_state() {
        let mut s = Snapshot::default();
        put(&mut s, Some("a"), 1, "1");
        assert_eq!(events(&mut s)[0]["data"], 1);
        put(&mut s, Some("a"), 2, "2");
        let v = events(&mut s);
        assert_eq!((v.len(), &v[0]["data"]), (1, &serde_json::json!(2)));
    }

    #[test]
    fn joiners_without_a_change_between_them_share_one_buffer() {
        let mut s = Snapshot::default();
        put(&mut s, Some("a"), 1, "1");
        put(&mut s, Some("b"), 2, "2");
        let (first, second) = (s.frames().unwrap(), s.frames().unwrap());
        assert_eq!(first.as_ptr(), second.as_ptr());
    }

    #[test]
    fn beyond_the_key_cap_the_oldest_key_is_forgotten() {
        let mut s = Snapshot::default();
        for seq in 1..=MAX_SNAPSHOT_KEYS as u64 + 2 {
            put(&mut s, Some(&format!("k{seq}")), seq, "0");
        }
        // k1 and k2, the two oldest, are gone.
        let v = events(&mut s);
        assert_eq!(s.len(), MAX_SNAPSHOT_KEYS);
        assert_eq!(v.len(), MAX_SNAPSHOT_KEYS);
        assert_eq!(v[0]["key"], "k3");
        assert_eq!(v.last().unwrap()["seq"], MAX_SNAPSHOT_KEYS as u64 + 2);
    }

    #[test]
    fn an_empty_snapshot_has_no_frames() {
        assert!(Snapshot::default().frames().is_none());
    }
}
