//! A channel's tick with its binary events as binary frames, for connections that opened with
//! `?binary=1`: built beside the plain (JSON) frames, once per tick, and, for those that also
//! agreed to deflate, mixed with the compressed twin's JSON events, so nothing is compressed twice.

use std::ops::Range;
use std::sync::Arc;

use bytes::BytesMut;

use super::deflated::Boundaries;
use super::form::Twin;
use super::{Exclusion, Origin};
use crate::wire::binary_event::put_binary_event_frame;
use crate::wire::event::EventFields;

/// A channel's tick with its binary events as binary frames, built beside the plain frames.
pub(crate) struct BinaryTwin {
    bin: BytesMut,
    /// Where each event is, in order.
    events: Vec<TwinEvent>,
}

/// One event of a [`BinaryTwin`].
pub(crate) struct TwinEvent {
    /// Its bytes in the twin.
    pub(crate) bin: Range<usize>,
    /// Its JSON frame's bytes in the tick's plain frames.
    plain: Range<usize>,
    /// It is a binary event (`bin` is its binary frame, not a copy of `plain`).
    binary: bool,
    /// The publisher that must not get it back.
    excluded: Option<Origin>,
}

impl BinaryTwin {
    /// A twin starting with `prefix` (the frames before the tick's events), with room for `size`.
    pub(crate) fn new(prefix: &[u8], size: usize) -> BinaryTwin {
        let mut bin = BytesMut::with_capacity(size);
        bin.extend_from_slice(prefix);
        BinaryTwin {
            bin,
            events: Vec::new(),
        }
    }

    /// Adds the next event, whose JSON frame is `out[start..]`: its binary frame if it is a
    /// binary event, else a copy of the JSON frame; `excluded` is the publisher that must not
    /// get it back.
    pub(crate) fn add(
        &mut self,
        fields: &EventFields<'_>,
        out: &[u8],
        start: usize,
        excluded: Option<Origin>,
    ) {
        let at = self.bin.len();
        match fields.binary {
            true => {
                put_binary_event_frame(&mut self.bin, fields);
            }
            false => self.bin.extend_from_slice(&out[start..]),
        }
        self.events.push(TwinEvent {
            bin: at..self.bin.len(),
            plain: start..out.len(),
            binary: fields.binary,
            excluded,
        });
    }

    /// The twin, and where each event is in it.
    pub(crate) fn freeze(self) -> (Twin, Vec<TwinEvent>) {
        let exclusions = excluded_ranges(&self.events, |_, e| e.bin.clone());
        let frames = self.bin.freeze();
        (Twin { frames, exclusions }, self.events)
    }
}

/// The `echo = false` ranges of `events`, the `i`th event at `range(i, event)`.
fn excluded_ranges(
    events: &[TwinEvent],
    range: impl Fn(usize, &TwinEvent) -> Range<usize>,
) -> Option<Arc<[Exclusion]>> {
    let ranges = events.iter().enumerate().filter_map(|(i, e)| {
        let r = range(i, e);
        e.excluded.map(|origin| Exclusion {
            origin,
            start: r.start as u32,
            end: r.end as u32,
        })
    });
    let ranges: Vec<Exclusion> = ranges.collect();
    (!ranges.is_empty()).then(|| Arc::from(ranges))
}

/// The binary twin for connections that also agreed to deflate: each binary event's binary
/// frame (sent uncompressed, as history and snapshots send it) and each JSON event's frame from
/// the compressed twin, copied; the frames before the events (`events_from`: a `gap`) compressed.
pub(crate) fn mix_deflated(
    bin: &Twin,
    events: &[TwinEvent],
    deflated: &Twin,
    bounds: &Boundaries,
    events_from: usize,
) -> Twin {
    let mut out = BytesMut::with_capacity(bin.frames.len());
    out.extend_from_slice(&deflated.frames[..bounds.twin(events_from)]);
    let mut at = Vec::with_capacity(events.len());
    for e in events {
        let start = out.len();
        match e.binary {
            true => out.extend_from_slice(&bin.frames[e.bin.clone()]),
            false => out.extend_from_slice(
                &deflated.frames[bounds.twin(e.plain.start)..bounds.twin(e.plain.end)],
            ),
        }
        at.push(start..out.len());
    }
    let exclusions = excluded_ranges(events, |i, _| at[i].clone());
    Twin {
        frames: out.freeze(),
        exclusions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn_id::ConnId;
    use crate::distributor::deflated::deflate_frames;
    use crate::protocol::compress::FrameDeflater;
    use crate::wire::event::put_event_frame;

    fn fields(seq: u64, data: &[u8], binary: bool) -> EventFields<'_> {
        EventFields {
            channel: "pos:1",
            seq,
            frame: 7,
            timestamp: "2026-12-08T00:00:00.000Z",
            unix_ms: 1_796_688_000_000,
            event_type: b"\"t\"",
            data,
            key: None,
            snapshot: false,
            binary,
        }
    }

    #[test]
    fn binary_connections_that_deflate_get_json_compressed_and_binary_frames_as_they_are() {
        let me = Origin {
            shard: 0,
            conn: ConnId::new(3, 1),
        };
        let json = br#"[{"id":"unit-1","pos":{"x":12.5,"y":-3.25,"z":101.75},"state":"moving"},{"id":"unit-2","pos":{"x":13.5,"y":-3.25,"z":100.75},"state":"moving"}]"#;
        let floats: Vec<u8> = (0..32u8).flat_map(|i| f32::from(i).to_le_bytes()).collect();
        let events = [
            (fields(1, json, false), Some(me)),
            (fields(2, &floats, true), None),
            (fields(3, json, false), None),
        ];
        let mut out = BytesMut::new();
        out.extend_from_slice(&crate::wire::reply::gap("pos:1", 2, 1, 2));
        let events_from = out.len();
        let mut twin = BinaryTwin::new(&out, 1024);
        let mut plain_exclusions = Vec::new();
        for (f, excluded) in &events {
            let start = out.len();
            put_event_frame(&mut out, f);
            twin.add(f, &out, start, *excluded);
            if let Some(origin) = excluded {
                plain_exclusions.push(Exclusion {
                    origin: *origin,
                    start: start as u32,
                    end: out.len() as u32,
                });
            }
        }
        let frames = out.freeze();
        let mut d = FrameDeflater::new(2);
        let (deflated, bounds) = deflate_frames(&mut d, &frames, Some(&plain_exclusions));
        let (bin, spans) = twin.freeze();
        let mixed = mix_deflated(&bin, &spans, &deflated, &bounds, events_from);

        let binary_frame = &bin.frames[spans[1].bin.clone()];
        assert_eq!(binary_frame[0], 0x82, "a binary frame, uncompressed");
        let m = &mixed.frames[..];
        let at = (m.windows(binary_frame.len()))
            .position(|w| w == binary_frame)
            .expect("the binary frame as it is");
        assert!(
            m.starts_with(&deflated.frames[..bounds.twin(events_from)]),
            "the gap notice as the compressed twin has it"
        );
        let x = mixed.exclusions.as_deref().expect("the publisher's event")[0];
        assert_eq!(x.origin, me);
        assert_eq!(m[x.start as usize], 0xC1, "seq 1 compressed, excluded");
        assert_eq!(
            x.end as usize, at,
            "seq 1 ends where the binary frame starts"
        );
        assert_eq!(m[at + binary_frame.len()], 0xC1, "seq 3 compressed");
        assert!(mixed.frames.len() < bin.frames.len());
    }
}
