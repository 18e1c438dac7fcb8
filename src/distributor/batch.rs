//! Tick batches: for connections that asked for them (`?batch=1`), a channel's events of one
//! tick go out as one WebSocket message holding a JSON array of the same event objects, built
//! once per channel per tick (and compressed once, where compression is on). One message
//! instead of N saves a frame header and a client wake-up per event, and compressed together
//! the events share one DEFLATE context: 0.16-0.30 of the raw size instead of 0.6-0.8 each
//! (../shared/research/wire.md). Only one channel's events are ever joined (no compression
//! side channel across channels).

use bytes::{Bytes, BytesMut};

use crate::protocol::compress::FrameDeflater;
use crate::protocol::frame::{put_server_header, server_frame_at, Kind};

/// Largest batch message: a busier tick goes out event by event (a client's message limit, such
/// as the Python client's 16 MiB, must not be crossed by batching what it could read alone).
const MAX_BATCH_BYTES: usize = 1 << 20;

/// One channel's tick as a single message.
#[derive(Clone, Debug)]
pub struct Batch {
    /// A `gap` notice first where the tick has one, then one text frame: `[event,event,...]`.
    pub frames: Bytes,
    /// The same compressed, for connections that agreed to permessage-deflate.
    pub deflated: Option<Bytes>,
}

/// The batch of a tick's joined event frames, whose events start at `events_from` (a `gap`
/// notice may come before); `None` for fewer than two events (one event is sent as it is) or
/// beyond [`MAX_BATCH_BYTES`].
pub(crate) fn tick_batch(
    frames: &Bytes,
    events_from: usize,
    count: u32,
    deflater: Option<&mut FrameDeflater>,
) -> Option<Batch> {
    if count < 2 {
        return None;
    }
    let mut payloads = Vec::with_capacity(count as usize);
    let mut at = events_from;
    while at < frames.len() {
        let (header, _, len) = server_frame_at(&frames[at..])?;
        payloads.push(&frames[at + header..at + header + len]);
        at += header + len;
    }
    let len = payloads.iter().map(|p| p.len() + 1).sum::<usize>() + 1;
    if len > MAX_BATCH_BYTES {
        return None;
    }
    let mut out = BytesMut::with_capacity(events_from + 10 + len);
    out.extend_from_slice(&frames[..events_from]);
    put_server_header(&mut out, Kind::Text, len);
    for (i, p) in payloads.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"[" } else { b"," });
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"]");
    let frames = out.freeze();
    let deflated = deflater.map(|d| {
        let mut twin = BytesMut::with_capacity(frames.len() / 2);
        d.put_joined(&mut twin, &frames, |_, _| {});
        twin.freeze()
    });
    Some(Batch { frames, deflated })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::server_frame;

    #[test]
    fn a_tick_of_events_becomes_one_json_array_message() {
        let gap = server_frame(Kind::Text, br#"{"type":"gap","channel":"c"}"#);
        let mut joined = BytesMut::from(&gap[..]);
        for i in 0..3 {
            let event = format!(r#"{{"type":"event","channel":"c","seq":{i},"data":{{"x":{i}}}}}"#);
            joined.extend_from_slice(&server_frame(Kind::Text, event.as_bytes()));
        }
        let joined = joined.freeze();
        let batch = tick_batch(&joined, gap.len(), 3, Some(&mut FrameDeflater::new(1))).unwrap();
        let messages = crate::testing::read_server_frames(&batch.frames);
        assert_eq!(messages.len(), 2, "the gap notice, then the batch");
        let array: serde_json::Value = serde_json::from_slice(&messages[1].1).unwrap();
        let seqs: Vec<_> = array
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].clone())
            .collect();
        assert_eq!(seqs, [0, 1, 2]);
        let twin = crate::testing::read_server_frames(batch.deflated.as_ref().unwrap());
        assert_eq!(twin[1], (true, messages[1].1.clone()));
        let single = server_frame(Kind::Text, b"{}");
        assert!(tick_batch(&single, 0, 1, None).is_none());
    }
}
