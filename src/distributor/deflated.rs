//! The compressed twin of shared frames (permessage-deflate): a channel's tick, a rate-level
//! variant or a snapshot is compressed once, event by event, next to its plain frames, and every
//! connection that agreed to deflate gets the twin by reference. Each event is compressed alone,
//! never with another channel's (a compression side channel), so the bytes suit every such
//! connection; `echo = false` ranges and history slices are mapped onto the twin.

use bytes::{Bytes, BytesMut};

use super::form::Twin;
use super::Exclusion;
use crate::protocol::compress::FrameDeflater;

/// Where each plain frame ends in the twin: `(plain_end, twin_end)`, in order.
#[derive(Debug, Default)]
pub(crate) struct Boundaries(Vec<(u32, u32)>);

impl Boundaries {
    /// The twin offset of plain offset `at`, which must be a frame boundary (anything else maps
    /// to the next boundary, so a slice between two mapped offsets is always in range).
    pub(crate) fn twin(&self, at: usize) -> usize {
        if at == 0 {
            return 0;
        }
        match self.0.binary_search_by_key(&(at as u32), |&(p, _)| p) {
            Ok(i) => self.0[i].1 as usize,
            Err(i) => {
                debug_assert!(false, "{at} is not a frame boundary");
                let last = self.0.last().map_or(0, |&(_, t)| t);
                self.0.get(i).map_or(last, |&(_, t)| t) as usize
            }
        }
    }
}

/// Compresses `frames` (complete server frames, joined) into their twin, with `exclusions`
/// mapped onto it; also returns the frame boundaries (for history slices).
pub(crate) fn deflate_frames(
    deflater: &mut FrameDeflater,
    frames: &Bytes,
    exclusions: Option<&[Exclusion]>,
) -> (Twin, Boundaries) {
    let mut out = BytesMut::with_capacity(frames.len());
    let mut bounds = Vec::new();
    deflater.put_joined(&mut out, frames, |plain, twin| {
        bounds.push((plain as u32, twin as u32));
    });
    let bounds = Boundaries(bounds);
    let exclusions = exclusions.map(|ex| {
        ex.iter()
            .map(|x| Exclusion {
                origin: x.origin,
                start: bounds.twin(x.start as usize) as u32,
                end: bounds.twin(x.end as usize) as u32,
            })
            .collect()
    });
    // An exact-size copy: history slices keep the whole buffer alive, and `out` was sized for
    // the plain frames.
    let deflated = Twin {
        frames: Bytes::copy_from_slice(&out),
        exclusions,
    };
    (deflated, bounds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn_id::ConnId;
    use crate::distributor::Origin;
    use crate::protocol::frame::{server_frame, Kind};

    #[test]
    fn exclusions_cover_the_same_events_in_the_twin() {
        let events: Vec<Bytes> = (0..3)
            .map(|i| {
                let json = format!(
                    r#"{{"type":"event","seq":{i},"data":"{}"}}"#,
                    "xy".repeat(50)
                );
                server_frame(Kind::Text, json.as_bytes())
            })
            .collect();
        let mut plain = BytesMut::new();
        for e in &events {
            plain.extend_from_slice(e);
        }
        let plain = plain.freeze();
        let origin = Origin {
            shard: 0,
            conn: ConnId::default(),
        };
        let middle = Exclusion {
            origin,
            start: events[0].len() as u32,
            end: (events[0].len() + events[1].len()) as u32,
        };
        let (twin, bounds) =
            deflate_frames(&mut FrameDeflater::new(1), &plain, Some(&[middle][..]));
        let x = twin.exclusions.unwrap()[0];
        assert!(twin.frames.len() < plain.len());
        assert_eq!(x.start as usize, bounds.twin(events[0].len()));
        assert!(x.start < x.end && (x.end as usize) < twin.frames.len());
        assert_eq!(
            twin.frames[x.start as usize], 0xC1,
            "a whole compressed frame"
        );
        assert_eq!(bounds.twin(plain.len()), twin.frames.len());
    }
}
