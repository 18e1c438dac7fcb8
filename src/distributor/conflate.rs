//! Conflation for `delivery = "conflated"` channels. Per tick only the newest event per key
//! goes out (events without a key share one key: the channel). For subscribers stepped down to
//! every 2nd, 4th... tick (lagging, or `max_hz`), the distributor also keeps, per rate level, the
//! newest event per key since that level's last boundary and, when the frame clock crosses the
//! boundary, joins them into one shared buffer (a [`Variant`]), prefixed with a `gap` notice for
//! the events superseded in the window. Levels are aligned on frame numbers (level L's boundary
//! is crossed when `frame >> L` changes), so a subscriber moving between levels at a boundary
//! neither misses nor repeats an event.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::ingress::{Origin, Publication};
use super::Exclusion;
use crate::limits::MAX_RATE_LEVEL;
use crate::protocol::compress::FrameDeflater;
use crate::wire::reply;

/// Keeps, in order, only the publications that survive conflation: the last one per key.
pub fn retain_newest_per_key(
    pending: &mut Vec<Publication>,
    mut superseded: impl FnMut(&Publication),
) {
    let mut survives = vec![false; pending.len()];
    let mut seen: HashSet<&[u8]> = HashSet::with_capacity(pending.len().min(64));
    for (i, p) in pending.iter().enumerate().rev() {
        survives[i] = seen.insert(p.key.as_deref().unwrap_or_default());
    }
    let mut survivors = survives.into_iter();
    pending.retain(|p| {
        let keep = survivors.next().unwrap_or(false);
        if !keep {
            superseded(p);
        }
        keep
    });
}

/// Bit `L` (1..=MAX_RATE_LEVEL) is set when moving from frame `prev` to `frame` crosses a
/// level-L boundary.
pub fn boundaries(prev: u64, frame: u64) -> u8 {
    (1..=MAX_RATE_LEVEL)
        .filter(|&l| prev >> l != frame >> l)
        .fold(0, |bits, l| bits | 1 << l)
}

/// Whether `bits` (from [`boundaries`]) says level `level`'s boundary was crossed; level 0's
/// boundary is every tick.
pub fn crossed(bits: u8, level: u8) -> bool {
    level == 0 || bits & (1 << level) != 0
}

/// One level's frames for one boundary: a shared buffer for every subscriber at that level.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Optional `gap` notice, then the newest event frame per key of the window, in seq order.
    pub bytes: Bytes,
    /// First sequence number of the window.
    pub first_seq: u64,
    /// Last sequence number of the window.
    pub last_seq: u64,
    /// `echo = false`: byte ranges of `bytes` each publisher must not get back.
    pub exclusions: Option<Arc<[Exclusion]>>,
    /// The compressed twin of `bytes`, for connections that agreed to permessage-deflate.
    pub deflated: Option<super::Twin>,
}

/// Per rate level (index L-1 for level L), the variant built at this tick's boundary, if any.
pub type Variants = [Option<Variant>; MAX_RATE_LEVEL as usize];

/// One event a window keeps: its frame, its compressed frame (a slice of the tick's twin, empty
/// where that tick had none) and its publisher where echo is off.
#[derive(Clone, Debug)]
struct Kept {
    frame: Bytes,
    deflated: Bytes,
    origin: Option<Origin>,
}

#[derive(Clone, Debug, Default)]
struct Window {
    /// Sequence number before the window's first event.
    start_seq: u64,
    /// Kept events in arrival order (`None` where a newer one of the same key replaced it).
    kept: Vec<Option<Kept>>,
    /// Key → index in `kept`.
    index: HashMap<Bytes, usize>,
    live: usize,
}

/// A conflated channel's per-level windows.
#[derive(Clone, Debug, Default)]
pub struct RateLevels {
    windows: [Window; MAX_RATE_LEVEL as usize],
}

impl RateLevels {
    /// Adds one emitted event (seq in order) to every level's window: its `frame`, its
    /// `deflated` frame from the tick's compressed twin (empty without one), and `origin`, its
    /// publisher, when the namespace has `echo = false`.
    pub fn add(
        &mut self,
        key: Option<&Bytes>,
        seq: u64,
        (frame, deflated): (&Bytes, &Bytes),
        origin: Option<Origin>,
    ) {
        let slot = key.cloned().unwrap_or_default();
        for w in &mut self.windows {
            if w.live == 0 && w.kept.is_empty() {
                w.start_seq = seq - 1;
            }
            if let Some(&old) = w.index.get(&slot) {
                w.kept[old] = None;
                w.live -= 1;
            }
            w.index.insert(slot.clone(), w.kept.len());
            w.kept.push(Some(Kept {
                frame: frame.clone(),
                deflated: deflated.clone(),
                origin,
            }));
            w.live += 1;
        }
    }

    /// Whether any window holds an event (the channel must be visited at the next boundary).
    pub fn is_empty(&self) -> bool {
        self.windows.iter().all(|w| w.live == 0)
    }

    /// At a tick crossing `bits`, closes every crossed level's non-empty window into a variant;
    /// with a `deflater` (some connection agreed to compression), also its compressed twin, made
    /// of the events' compressed frames as their ticks made them (only the `gap` notice, and an
    /// event from a tick that had no twin, are compressed here).
    pub fn emit(
        &mut self,
        channel: &str,
        bits: u8,
        last_seq: u64,
        mut deflater: Option<&mut FrameDeflater>,
    ) -> Option<Box<Variants>> {
        let mut out: Option<Box<Variants>> = None;
        for level in 1..=MAX_RATE_LEVEL {
            let w = &mut self.windows[level as usize - 1];
            if !crossed(bits, level) || w.live == 0 {
                continue;
            }
            let first_seq = w.start_seq + 1;
            let skipped = (last_seq - w.start_seq).saturating_sub(w.live as u64);
            let gap = (skipped > 0).then(|| reply::gap(channel, skipped, first_seq, last_seq));
            let mut plain = Joined::new(w.kept.iter().flatten().map(|k| k.frame.len()));
            let mut twin = deflater
                .as_ref()
                .map(|_| Joined::new(w.kept.iter().flatten().map(|k| k.deflated.len())));
            if let Some(gap) = &gap {
                plain.buf.extend_from_slice(gap);
                if let (Some(t), Some(d)) = (&mut twin, deflater.as_deref_mut()) {
                    d.put_frame(&mut t.buf, gap);
                }
            }
            for k in w.kept.iter().flatten() {
                plain.push(&k.frame, k.origin);
                if let (Some(t), Some(d)) = (&mut twin, deflater.as_deref_mut()) {
                    match k.deflated.is_empty() {
                        false => t.push(&k.deflated, k.origin),
                        true => t.push_with(k.origin, |buf| d.put_frame(buf, &k.frame)),
                    }
                }
            }
            let (bytes, exclusions) = plain.finish();
            let deflated = twin.map(|t| {
                let (frames, exclusions) = t.finish();
                super::Twin { frames, exclusions }
            });
            out.get_or_insert_with(Default::default)[level as usize - 1] = Some(Variant {
                bytes,
                first_seq,
                last_seq,
                exclusions,
                deflated,
            });
            w.kept.clear();
            w.index.clear();
            w.live = 0;
        }
        out
    }
}

/// A variant's frames being joined, with the `echo = false` ranges of its events.
struct Joined {
    buf: BytesMut,
    exclusions: Vec<Exclusion>,
}

impl Joined {
    /// Room for frames of `lens`, and a `gap` notice.
    fn new(lens: impl Iterator<Item = usize>) -> Joined {
        Joined {
            buf: BytesMut::with_capacity(lens.sum::<usize>() + 128),
            exclusions: Vec::new(),
        }
    }

    /// Appends one event's frame, published by `origin` where echo is off.
    fn push(&mut self, frame: &[u8], origin: Option<Origin>) {
        self.push_with(origin, |buf| buf.extend_from_slice(frame));
    }

    /// Appends one event's frame as `write` puts it, published by `origin` where echo is off.
    fn push_with(&mut self, origin: Option<Origin>, write: impl FnOnce(&mut BytesMut)) {
        let start = self.buf.len() as u32;
        write(&mut self.buf);
        if let Some(origin) = origin {
            self.exclusions.push(Exclusion {
                origin,
                start,
                end: self.buf.len() as u32,
            });
        }
    }

    /// The joined frames and their exclusions (`None` without any).
    fn finish(self) -> (Bytes, Option<Arc<[Exclusion]>>) {
        let exclusions = (!self.exclusions.is_empty()).then(|| self.exclusions.into());
        (self.buf.freeze(), exclusions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: Option<&'static str>) -> Publication {
        Publication {
            origin: None,
            channel: Arc::from("c"),
            event_type: Bytes::from_static(b"\"t\""),
            data: Bytes::from_static(b"1"),
            binary: false,
            key: key.map(|k| Bytes::from(format!("\"{k}\""))),
            ack: None,
            committed: None,
        }
    }

    #[test]
    fn only_the_newest_per_key_survives_in_order() {
        let mut pending = vec![p(Some("a")), p(Some("b")), p(Some("a")), p(None), p(None)];
        pending[2].data = Bytes::from_static(b"2");
        pending[4].data = Bytes::from_static(b"4");
        retain_newest_per_key(&mut pending, |_| {});
        let keys: Vec<_> = pending.iter().map(|p| p.key.clone()).collect();
        assert_eq!(
            keys,
            vec![
                Some(Bytes::from_static(b"\"b\"")),
                Some(Bytes::from_static(b"\"a\"")),
                None
            ],
            "the newest of each key, in publication order"
        );
        assert_eq!(
            (&pending[1].data[..], &pending[2].data[..]),
            (&b"2"[..], &b"4"[..])
        );
    }

    #[test]
    fn boundaries_follow_frame_alignment() {
        assert_eq!(boundaries(1, 2), 0b10);
        assert_eq!(boundaries(3, 4), 0b110);
        assert_eq!(boundaries(4, 5), 0);
        assert_eq!(boundaries(15, 16), 0b11110);
        assert!(crossed(0, 0));
    }

    #[test]
    fn a_level_window_keeps_newest_per_key_and_reports_what_it_skipped() {
        let mut levels = RateLevels::default();
        let f = |s: &str| Bytes::from(s.to_string());
        let a = Bytes::from_static(b"\"a\"");
        let none = Bytes::new();
        levels.add(Some(&a), 11, (&f("A11"), &none), None);
        levels.add(None, 12, (&f("N12"), &none), None);
        let me = Origin {
            shard: 0,
            conn: crate::conn_id::ConnId::new(9, 1),
        };
        levels.add(Some(&a), 13, (&f("A13"), &none), Some(me));
        let v = levels.emit("c", boundaries(1, 2), 13, None).unwrap();
        let one = v[0].as_ref().expect("level 1 crossed");
        assert!(v[1].is_none(), "level 2 not crossed");
        let text = String::from_utf8_lossy(&one.bytes);
        assert!(
            text.contains("\"skipped\":1,\"from_seq\":11,\"to_seq\":13"),
            "{text}"
        );
        assert!(text.ends_with("N12A13"), "{text}");
        assert_eq!((one.first_seq, one.last_seq), (11, 13));
        let own = one
            .exclusions
            .as_deref()
            .expect("echo off: the publisher's frame is marked");
        assert_eq!(
            &one.bytes[own[0].start as usize..own[0].end as usize],
            b"A13"
        );
        assert!(!levels.is_empty(), "levels 2..4 still hold their windows");
    }

    #[test]
    fn a_variants_twin_reuses_each_events_compressed_frame() {
        use crate::protocol::frame::{server_frame, Kind};
        let json = |n: u32| {
            format!(
                r#"{{"type":"event","seq":{n},"data":"{}"}}"#,
                "ab".repeat(40)
            )
        };
        let frame = |n: u32| server_frame(Kind::Text, json(n).as_bytes());
        let mut levels = RateLevels::default();
        let a = Bytes::from_static(b"\"a\"");
        let b = Bytes::from_static(b"\"b\"");
        // Seq 21 is superseded by 22 (same key): the variant starts with a `gap`.
        let marker = Bytes::from_static(b"<tick twin of 22>");
        levels.add(Some(&a), 21, (&frame(21), &Bytes::new()), None);
        levels.add(Some(&a), 22, (&frame(22), &marker), None);
        // From a tick that had no twin (no connection compressed then).
        levels.add(Some(&b), 23, (&frame(23), &Bytes::new()), None);
        let mut deflater = FrameDeflater::new(1);
        let v = levels
            .emit("c", boundaries(1, 2), 23, Some(&mut deflater))
            .unwrap();
        let twin = v[0].as_ref().unwrap().deflated.as_ref().expect("a twin");
        let t = &twin.frames[..];
        assert_eq!(
            t[0] & 0x0f,
            0x1,
            "the gap notice first (compressed where that is smaller)"
        );
        let at = t
            .windows(marker.len())
            .position(|w| w == &marker[..])
            .expect("seq 22's frame from its tick's twin, as it was");
        let rest = &t[at + marker.len()..];
        assert_eq!(rest[0], 0xC1, "seq 23 compressed here");
        assert!(rest.len() < frame(23).len());
        assert!(levels.emit("c", boundaries(1, 2), 23, None).is_none());
    }
}
