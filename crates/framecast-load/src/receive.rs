//! What one subscriber connection makes of the frames it reads: the data to scan for `T=`
//! markers, after inflating compressed messages (permessage-deflate), and the protocol errors
//! that end the connection. Uncompressed data frames are handed on one by one, fragments
//! included, as they come; a compressed message is handed on whole, decompressed, at its last
//! frame. RSV1 is allowed only on the first frame of a data message, and only when the server
//! agreed to permessage-deflate; RSV2 and RSV3 never.

use thiserror::Error;

use crate::deflate::Params;
use crate::frames::{ServerFrame, RSV1};
use crate::inflate::{InflateError, Inflater, Shared};

/// Why a connection's frames cannot be read on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// RSV2 or RSV3 set (no extension defines them here).
    #[error("reserved bits {0:#05b} set")]
    ReservedBits(u8),
    /// RSV1 set, but permessage-deflate was not agreed.
    #[error("RSV1 set without permessage-deflate")]
    CompressedWithoutDeflate,
    /// RSV1 set on a continuation or a control frame.
    #[error("RSV1 set on a frame that is not the first of a data message")]
    CompressedNotFirst,
    /// A continuation frame outside a fragmented message.
    #[error("continuation frame outside a message")]
    UnexpectedContinuation,
    /// A new data message before the last frame of the previous one.
    #[error("data message inside a fragmented one")]
    Interleaved,
    /// A compressed message that does not inflate.
    #[error("{0}")]
    Inflate(#[from] InflateError),
}

/// Data to scan, from one frame or one whole compressed message.
#[derive(Debug, PartialEq, Eq)]
pub struct Data<'a> {
    /// The payload (decompressed, for a compressed message).
    pub payload: &'a [u8],
    /// It came compressed.
    pub compressed: bool,
    /// It came compressed, and the inflate cache already had it.
    pub cached: bool,
}

/// Where the connection is between data frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Message {
    /// Between messages.
    None,
    /// Inside a fragmented uncompressed message.
    Plain,
    /// Inside a fragmented compressed message.
    Compressed,
}

/// The receive state of one connection.
pub struct Receiver {
    /// Set when the server agreed to permessage-deflate.
    inflater: Option<Inflater>,
    message: Message,
}

impl Receiver {
    /// The state of a connection that agreed to `deflate`, or to no extension.
    pub fn new(deflate: Option<&Params>) -> Receiver {
        Receiver {
            inflater: deflate.map(Inflater::new),
            message: Message::None,
        }
    }

    /// Reads one frame: `Some` data to scan, `None` for a control frame, a reserved opcode
    /// (ignored) or a compressed message's frame before its last. `shared` is the worker
    /// thread's inflater and cache.
    pub fn frame<'a>(
        &'a mut self,
        f: &ServerFrame<'a>,
        shared: &'a mut Shared,
    ) -> Result<Option<Data<'a>>, ProtocolError> {
        if f.rsv & !RSV1 != 0 {
            return Err(ProtocolError::ReservedBits(f.rsv));
        }
        let rsv1 = f.rsv & RSV1 != 0;
        let plain = |payload| {
            Ok(Some(Data {
                payload,
                compressed: false,
                cached: false,
            }))
        };
        match (f.opcode, self.message) {
            (0x8..=0xf, _) if rsv1 => Err(ProtocolError::CompressedNotFirst),
            (0x1 | 0x2, Message::None) if rsv1 => {
                let inf = self
                    .inflater
                    .as_mut()
                    .ok_or(ProtocolError::CompressedWithoutDeflate)?;
                inf.trim();
                self.message = if f.fin {
                    Message::None
                } else {
                    Message::Compressed
                };
                Ok(inf.frame(true, f.fin, f.payload, shared)?.map(compressed))
            }
            (0x1 | 0x2, Message::None) => {
                if !f.fin {
                    self.message = Message::Plain;
                }
                plain(f.payload)
            }
            (0x1 | 0x2, _) => Err(ProtocolError::Interleaved),
            (0x0, _) if rsv1 => Err(ProtocolError::CompressedNotFirst),
            (0x0, Message::None) => Err(ProtocolError::UnexpectedContinuation),
            (0x0, Message::Plain) => {
                if f.fin {
                    self.message = Message::None;
                }
                plain(f.payload)
            }
            (0x0, Message::Compressed) => {
                if f.fin {
                    self.message = Message::None;
                }
                let inf = self.inflater.as_mut().expect("a compressed message began");
                Ok(inf.frame(false, f.fin, f.payload, shared)?.map(compressed))
            }
            _ => Ok(None),
        }
    }
}

fn compressed(m: crate::inflate::Inflated<'_>) -> Data<'_> {
    Data {
        payload: m.data,
        compressed: true,
        cached: m.cached,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inflate::deflate_message;
    use flate2::{Compress, Compression};

    fn frame(opcode: u8, fin: bool, rsv: u8, payload: &[u8]) -> ServerFrame<'_> {
        ServerFrame {
            opcode,
            fin,
            rsv,
            payload,
        }
    }

    fn agreed() -> Params {
        // framecast's answer
        Params {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: None,
        }
    }

    /// What `frames` give, in order: (payload, compressed) for every `Some`.
    fn read(
        r: &mut Receiver,
        frames: &[ServerFrame<'_>],
    ) -> Result<Vec<(Vec<u8>, bool)>, ProtocolError> {
        let mut shared = Shared::new();
        let mut got = Vec::new();
        for f in frames {
            if let Some(d) = r.frame(f, &mut shared)? {
                got.push((d.payload.to_vec(), d.compressed));
            }
        }
        Ok(got)
    }

    #[test]
    fn plain_frames_are_handed_on_as_they_come_with_or_without_deflate() {
        for deflate in [None, Some(agreed())] {
            let mut r = Receiver::new(deflate.as_ref());
            let got = read(
                &mut r,
                &[
                    frame(1, true, 0, b"T=1 a"),
                    frame(9, true, 0, b"ping"),
                    frame(1, false, 0, b"T=2 "),
                    frame(9, true, 0, b""), // a control frame between fragments
                    frame(0, true, 0, b"b"),
                    frame(2, true, 0, b"T=3"),
                ],
            )
            .unwrap();
            let want: Vec<(Vec<u8>, bool)> = [&b"T=1 a"[..], b"T=2 ", b"b", b"T=3"]
                .iter()
                .map(|p| (p.to_vec(), false))
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_compressed_message_is_handed_on_whole_and_inflated_in_one_frame_or_many() {
        let msg = br#"{"type":"event","channel":"load-0","data":{"t":"T=1796180400123456789","pad":[{"id":"av100","x":12.345}]}}"#;
        let z = deflate_message(&mut Compress::new(Compression::new(6), false), msg);
        let mut r = Receiver::new(Some(&agreed()));
        // one frame
        assert_eq!(
            read(&mut r, &[frame(1, true, RSV1, &z)]).unwrap(),
            [(msg.to_vec(), true)]
        );
        // three frames, a ping between them; RSV1 on the first only
        let (a, rest) = z.split_at(z.len() / 3);
        let (b, c) = rest.split_at(rest.len() / 2);
        let got = read(
            &mut r,
            &[
                frame(1, false, RSV1, a),
                frame(0, false, 0, b),
                frame(9, true, 0, b"p"),
                frame(0, true, 0, c),
                frame(1, true, 0, b"T=5 plain after"),
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            [(msg.to_vec(), true), (b"T=5 plain after".to_vec(), false)]
        );
    }

    #[test]
    fn rsv1_without_deflate_is_a_protocol_error() {
        let z = deflate_message(&mut Compress::new(Compression::new(6), false), b"T=1");
        let mut r = Receiver::new(None);
        assert_eq!(
            read(&mut r, &[frame(1, true, RSV1, &z)]),
            Err(ProtocolError::CompressedWithoutDeflate)
        );
    }

    #[test]
    fn misplaced_bits_and_fragments_are_protocol_errors() {
        use ProtocolError::*;
        let cases: [(&[ServerFrame<'_>], ProtocolError); 6] = [
            (&[frame(1, true, 0b010, b"x")], ReservedBits(0b010)),
            (&[frame(9, true, RSV1, b"")], CompressedNotFirst),
            (
                &[frame(1, false, RSV1, b""), frame(0, true, RSV1, b"")],
                CompressedNotFirst,
            ),
            (&[frame(0, true, 0, b"x")], UnexpectedContinuation),
            (
                &[frame(1, false, 0, b"x"), frame(1, true, 0, b"y")],
                Interleaved,
            ),
            (
                &[frame(2, true, RSV1, &[0xff, 0xff])],
                Inflate(InflateError::Corrupt),
            ),
        ];
        for (frames, want) in cases {
            let mut r = Receiver::new(Some(&agreed()));
            assert_eq!(read(&mut r, frames), Err(want));
        }
    }
}
