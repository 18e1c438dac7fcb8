//! A `snapshot = true` channel's latest state: the newest event per `key` (events without a key
//! share one slot, so a keyless channel keeps just its newest event). New subscribers get it,
//! marked `"snapshot":true`, before live events.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use crate::config::limits::MAX_SNAPSHOT_KEYS;
use crate::wire::event::{put_event_frame, EventFields};

/// One kept event (not yet encoded: it is encoded per joining subscriber, with the mark).
#[derive(Clone, Debug)]
struct Latest {
    seq: u64,
    frame: u64,
    event_type: Bytes,
    data: Bytes,
    key: Option<Bytes>,
}

/// Newest event per key of one channel.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    by_key: HashMap<Bytes, Latest>,
}

impl Snapshot {
    /// Records event `seq` as the newest for its key; beyond [`MAX_SNAPSHOT_KEYS`] keys the
    /// oldest key is forgotten.
    pub fn put(
        &mut self,
        seq: u64,
        frame: u64,
        event_type: &Bytes,
        data: &Bytes,
        key: Option<&Bytes>,
    ) {
        let slot = key.cloned().unwrap_or_default();
        if !self.by_key.contains_key(&slot) && self.by_key.len() >= MAX_SNAPSHOT_KEYS {
            if let Some(oldest) = self
                .by_key
                .iter()
                .min_by_key(|(_, l)| l.seq)
                .map(|(k, _)| k.clone())
            {
                self.by_key.remove(&oldest);
            }
        }
        self.by_key.insert(
            slot,
            Latest {
                seq,
                frame,
                event_type: event_type.clone(),
                data: data.clone(),
                key: key.cloned(),
            },
        );
    }

    /// The snapshot as event frames marked `"snapshot":true`, oldest first.
    pub fn frames(&self, channel: &str, timestamp: &str) -> Vec<Bytes> {
        let mut latest: Vec<&Latest> = self.by_key.values().collect();
        latest.sort_by_key(|l| l.seq);
        latest
            .into_iter()
            .map(|l| {
                let mut out = BytesMut::new();
                put_event_frame(
                    &mut out,
                    &EventFields {
                        channel,
                        seq: l.seq,
                        frame: l.frame,
                        timestamp,
                        event_type: &l.event_type,
                        data: &l.data,
                        key: l.key.as_deref(),
                        snapshot: true,
                    },
                );
                out.freeze()
            })
            .collect()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Keys kept.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_event_per_key_in_seq_order() {
        let mut s = Snapshot::default();
        let t = Bytes::from_static(b"\"pos\"");
        let a = Some(Bytes::from_static(b"\"a\""));
        let b = Some(Bytes::from_static(b"\"b\""));
        s.put(1, 1, &t, &Bytes::from_static(b"1"), a.as_ref());
        s.put(2, 1, &t, &Bytes::from_static(b"2"), b.as_ref());
        s.put(3, 2, &t, &Bytes::from_static(b"3"), a.as_ref());
        let frames = s.frames("c", "ts");
        assert_eq!(frames.len(), 2);
        let v: Vec<serde_json::Value> = frames
            .iter()
            .map(|f| serde_json::from_slice(&f[if f[1] == 126 { 4 } else { 2 }..]).unwrap())
            .collect();
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
}
