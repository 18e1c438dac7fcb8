//! Server frames compressed for permessage-deflate (RFC 7692), once for every connection that
//! negotiated it: each message is compressed alone (`server_no_context_takeover`), so the same
//! bytes are valid on all of them, and a compressed message may sit next to plain ones (RSV1 is
//! per message). The distributor keeps one [`FrameDeflater`] and turns a tick's joined frames
//! into their compressed twin; the echo endpoint uses the shard's own.

use std::cell::RefCell;

use bytes::BytesMut;
use flate2::{Compress, Compression, FlushCompress};

use super::frame::{put_server_header, server_frame_at, Kind};

/// RSV1 in the first header byte: "this message is compressed".
const RSV1: u8 = 0x40;

/// Level the echo endpoint compresses with.
const ECHO_LEVEL: u32 = 2;

/// A raw-DEFLATE compressor reset for every message, with its scratch buffer.
pub struct FrameDeflater {
    compress: Compress,
    level: u32,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for FrameDeflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDeflater")
            .field("level", &self.level)
            .finish()
    }
}

impl FrameDeflater {
    /// A compressor at `level` (1 fastest .. 9 smallest) with a 15-bit window.
    pub fn new(level: u32) -> FrameDeflater {
        FrameDeflater::with_window(level, 15)
    }

    /// A compressor at `level` whose back-references stay within `window` bits (9..=15).
    pub fn with_window(level: u32, window: u8) -> FrameDeflater {
        FrameDeflater {
            compress: Compress::new_with_window_bits(Compression::new(level), false, window),
            level,
            scratch: Vec::new(),
        }
    }

    /// Appends the compressed form of the server frame `frame` (one complete frame as
    /// [`put_server_header`] writes them) to `out`. Control frames, and messages compression
    /// would not shrink, are appended as they are.
    pub fn put_frame(&mut self, out: &mut BytesMut, frame: &[u8]) {
        let Some((header, opcode, len)) = server_frame_at(frame) else {
            debug_assert!(false, "not a server frame");
            out.extend_from_slice(frame);
            return;
        };
        let kind = match opcode {
            0x1 => Kind::Text,
            0x2 => Kind::Binary,
            _ => {
                out.extend_from_slice(&frame[..header + len]);
                return;
            }
        };
        let payload = &frame[header..header + len];
        if !self.put_message(out, kind, payload) {
            out.extend_from_slice(&frame[..header + len]);
        }
    }

    /// Appends `payload` as one compressed message of `kind`; `false` (nothing appended) when
    /// it would not get smaller.
    pub fn put_message(&mut self, out: &mut BytesMut, kind: Kind, payload: &[u8]) -> bool {
        if payload.is_empty() {
            return false;
        }
        self.compress.reset();
        self.scratch.clear();
        self.scratch.reserve(payload.len() + payload.len() / 8 + 64);
        let mut input = payload;
        loop {
            let before = self.compress.total_in();
            if self
                .compress
                .compress_vec(input, &mut self.scratch, FlushCompress::Sync)
                .is_err()
            {
                return false;
            }
            input = &input[(self.compress.total_in() - before) as usize..];
            if input.is_empty() && self.scratch.len() < self.scratch.capacity() {
                break;
            }
            self.scratch.reserve(self.scratch.capacity());
        }
        // §7.2.1: the sync flush's empty stored block (00 00 ff ff) is not sent.
        let body = match self.scratch.strip_suffix(&[0x00, 0x00, 0xff, 0xff]) {
            Some(body) => body,
            None => return false,
        };
        if body.len() >= payload.len() {
            return false;
        }
        let at = out.len();
        put_server_header(out, kind, body.len());
        out[at] |= RSV1;
        out.extend_from_slice(body);
        true
    }

    /// Appends the compressed twin of `frames` (complete server frames, joined) to `out`,
    /// calling `boundary(plain_end, twin_end)` after each frame with both buffers' offsets.
    pub fn put_joined(
        &mut self,
        out: &mut BytesMut,
        frames: &[u8],
        mut boundary: impl FnMut(usize, usize),
    ) {
        let mut at = 0;
        while at < frames.len() {
            let Some((header, _, len)) = server_frame_at(&frames[at..]) else {
                debug_assert!(false, "joined frames end in a partial frame");
                out.extend_from_slice(&frames[at..]);
                return;
            };
            self.put_frame(out, &frames[at..at + header + len]);
            at += header + len;
            boundary(at, out.len());
        }
    }
}

thread_local! {
    /// The thread's compressors by window size (index = bits), made on first use.
    static ECHO: RefCell<[Option<FrameDeflater>; 16]> = RefCell::new(Default::default());
}

/// A message for one connection that agreed to deflate with a `window`-bit server window,
/// compressed with the thread's compressor for that window (the echo endpoint: one message,
/// one connection), or plain where that is smaller.
pub fn message_frame(kind: Kind, payload: &[u8], window: u8) -> bytes::Bytes {
    let window = window.clamp(9, 15);
    ECHO.with(|cell| {
        let mut by_window = cell.borrow_mut();
        let deflater = by_window[usize::from(window)]
            .get_or_insert_with(|| FrameDeflater::with_window(ECHO_LEVEL, window));
        let mut out = BytesMut::with_capacity(payload.len() + 10);
        if !deflater.put_message(&mut out, kind, payload) {
            put_server_header(&mut out, kind, payload.len());
            out.extend_from_slice(payload);
        }
        out.freeze()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::server_frame;

    /// What a client reads from one frame: whether it was compressed, and the message.
    fn read(frame: &[u8]) -> (bool, Vec<u8>) {
        crate::testing::read_server_frames(frame).remove(0)
    }

    #[test]
    fn an_event_frame_is_compressed_with_rsv1_and_inflates_back() {
        let json = br#"{"type":"event","channel":"pos:1","seq":7,"data":{"x":1.25,"y":2.5,"z":3.75,"x2":1.25,"y2":2.5}}"#;
        let mut out = BytesMut::new();
        FrameDeflater::new(1).put_frame(&mut out, &server_frame(Kind::Text, json));
        assert_eq!(out[0], 0x80 | RSV1 | 0x1, "FIN, RSV1, text");
        assert!(out.len() < json.len());
        assert_eq!(read(&out), (true, json.to_vec()));
    }

    #[test]
    fn control_and_incompressible_frames_pass_through_unchanged() {
        let mut d = FrameDeflater::new(1);
        for frame in [
            server_frame(Kind::Close, b"\x03\xe8bye"),
            server_frame(Kind::Text, b"{}"),
        ] {
            let mut out = BytesMut::new();
            d.put_frame(&mut out, &frame);
            assert_eq!(&out[..], &frame[..]);
        }
    }

    #[test]
    fn a_joined_buffer_keeps_its_frame_boundaries() {
        let mut plain = BytesMut::new();
        let messages: Vec<Vec<u8>> = (0..5)
            .map(|i| format!(r#"{{"seq":{i},"data":"{}"}}"#, "ab".repeat(40 * i + 1)).into_bytes())
            .collect();
        for m in &messages {
            plain.extend_from_slice(&server_frame(Kind::Text, m));
        }
        let mut twin = BytesMut::new();
        let mut bounds = Vec::new();
        FrameDeflater::new(4).put_joined(&mut twin, &plain, |p, t| bounds.push((p, t)));
        assert_eq!(bounds.len(), 5);
        assert_eq!(bounds.last().unwrap(), &(plain.len(), twin.len()));
        let mut start = 0;
        for ((_, end), m) in bounds.iter().zip(&messages) {
            assert_eq!(read(&twin[start..*end]).1, *m);
            start = *end;
        }
    }
}
