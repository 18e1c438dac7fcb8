//! Client messages from raw bytes: frames are parsed in place where they arrived (a shared
//! receive buffer), only an incomplete trailing frame is carried per connection, fragments are
//! reassembled up to `max_message_bytes`, text is checked for UTF-8, and every violation maps to
//! the close code RFC 6455 asks for.

use super::frame::{parse_client_header, Kind};
use super::mask::unmask;
use crate::config::limits::RETAINED_PARTIAL_BYTES;

/// A WebSocket close status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: going away (server shutdown).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1007: invalid payload data (bad UTF-8 in text).
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    /// 1008: policy violation (slow consumer, pong timeout).
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: message too big.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: internal error.
    pub const INTERNAL: CloseCode = CloseCode(1011);
    /// 4001 (application range): authentication failed or the token expired.
    pub const UNAUTHORIZED: CloseCode = CloseCode(4001);

    /// Whether a peer may send this code in a close frame (RFC 6455 §7.4).
    pub fn is_valid_from_peer(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// A reason to close the connection, found while reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Close code to send.
    pub code: CloseCode,
    /// Short reason for the close frame and the log.
    pub reason: &'static str,
}

/// One complete thing read from the client.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A whole text message, UTF-8 checked; mutable so a JSON parser may work in place.
    Text(&'a mut [u8]),
    /// A whole binary message.
    Binary(&'a mut [u8]),
    /// A ping with its payload (to be echoed in a pong).
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// The client's close frame: its code (if any) and reason.
    Close(Option<CloseCode>, &'a str),
}

/// Per-connection reading state: a few words while idle.
#[derive(Debug, Default)]
pub struct MessageReader {
    /// Bytes of an incomplete frame carried to the next read (empty and unallocated when idle).
    partial: Vec<u8>,
    /// A fragmented data message being reassembled (boxed: rare, and one pointer per idle
    /// connection instead of 32 bytes).
    fragments: Option<Box<Fragments>>,
}

#[derive(Debug)]
struct Fragments {
    text: bool,
    data: Vec<u8>,
}

impl MessageReader {
    /// Bytes held for an incomplete frame or message (for memory accounting).
    pub fn buffered(&self) -> usize {
        self.partial.capacity() + self.fragments.as_ref().map_or(0, |f| f.data.capacity())
    }

    /// Feeds freshly received bytes, calling `on_message` for each complete message or control
    /// frame. Stops at the first violation and returns it; the caller then closes.
    pub fn feed(
        &mut self,
        data: &mut [u8],
        max_message: usize,
        on_message: &mut dyn FnMut(Incoming<'_>),
    ) -> Result<(), Violation> {
        if self.partial.is_empty() {
            let used = parse_frames(data, &mut self.fragments, max_message, on_message)?;
            self.partial.extend_from_slice(&data[used..]);
        } else {
            self.partial.extend_from_slice(data);
            let mut buf = std::mem::take(&mut self.partial);
            let used = parse_frames(&mut buf, &mut self.fragments, max_message, on_message)?;
            buf.drain(..used);
            self.partial = buf;
        }
        if self.partial.is_empty() && self.partial.capacity() > RETAINED_PARTIAL_BYTES {
            self.partial = Vec::new();
        }
        Ok(())
    }
}

/// Parses every complete frame at the start of `buf`; returns how many bytes were consumed.
fn parse_frames(
    buf: &mut [u8],
    fragments: &mut Option<Box<Fragments>>,
    max_message: usize,
    on_message: &mut dyn FnMut(Incoming<'_>),
) -> Result<usize, Violation> {
    let mut pos = 0;
    loop {
        let header = match parse_client_header(&buf[pos..]) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(pos),
            Err((code, reason)) => return Err(Violation { code, reason }),
        };
        let so_far = fragments.as_ref().map_or(0, |f| f.data.len()) as u64;
        if !header.kind.is_control() && so_far + header.payload_len > max_message as u64 {
            return Err(Violation {
                code: CloseCode::TOO_BIG,
                reason: "message too big",
            });
        }
        let len = header.payload_len as usize;
        let start = pos + header.header_len;
        if buf.len() - start < len {
            return Ok(pos);
        }
        let payload = &mut buf[start..start + len];
        unmask(payload, header.mask);
        pos = start + len;
        deliver(header.kind, header.fin, payload, fragments, on_message)?;
    }
}

fn deliver(
    kind: Kind,
    fin: bool,
    payload: &mut [u8],
    fragments: &mut Option<Box<Fragments>>,
    on_message: &mut dyn FnMut(Incoming<'_>),
) -> Result<(), Violation> {
    const NOT_UTF8: Violation = Violation {
        code: CloseCode::INVALID_DATA,
        reason: "text is not valid UTF-8",
    };
    match kind {
        Kind::Ping => on_message(Incoming::Ping(payload)),
        Kind::Pong => on_message(Incoming::Pong),
        Kind::Close => {
            let (code, reason) = parse_close(payload)?;
            on_message(Incoming::Close(code, reason));
        }
        Kind::Text | Kind::Binary => {
            if fragments.is_some() {
                return Err(Violation {
                    code: CloseCode::PROTOCOL,
                    reason: "new message before the previous one ended",
                });
            }
            let text = kind == Kind::Text;
            if fin {
                if text && std::str::from_utf8(payload).is_err() {
                    return Err(NOT_UTF8);
                }
                on_message(if text {
                    Incoming::Text(payload)
                } else {
                    Incoming::Binary(payload)
                });
            } else {
                *fragments = Some(Box::new(Fragments {
                    text,
                    data: payload.to_vec(),
                }));
            }
        }
        Kind::Continuation => {
            let Some(f) = fragments.as_mut() else {
                return Err(Violation {
                    code: CloseCode::PROTOCOL,
                    reason: "continuation without a message",
                });
            };
            f.data.extend_from_slice(payload);
            if fin {
                let mut f = fragments.take().expect("checked above");
                if f.text && std::str::from_utf8(&f.data).is_err() {
                    return Err(NOT_UTF8);
                }
                on_message(if f.text {
                    Incoming::Text(&mut f.data)
                } else {
                    Incoming::Binary(&mut f.data)
                });
            }
        }
    }
    Ok(())
}

fn parse_close(payload: &[u8]) -> Result<(Option<CloseCode>, &str), Violation> {
    match payload.len() {
        0 => Ok((None, "")),
        1 => Err(Violation {
            code: CloseCode::PROTOCOL,
            reason: "close payload of one byte",
        }),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_valid_from_peer() {
                return Err(Violation {
                    code: CloseCode::PROTOCOL,
                    reason: "invalid close code",
                });
            }
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| Violation {
                code: CloseCode::INVALID_DATA,
                reason: "close reason is not valid UTF-8",
            })?;
            Ok((Some(code), reason))
        }
    }
}

#[cfg(test)]
mod tests;
