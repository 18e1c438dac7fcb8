//! Client messages from raw bytes: frames are parsed in place where they arrived (a shared
//! receive buffer), only an incomplete trailing frame is carried per connection, fragments are
//! reassembled up to `max_message_bytes`, text is checked for UTF-8, and every violation maps to
//! the close code RFC 6455 asks for.

use super::deflate::{inflate, InflateError};
use super::frame::{parse_client_header, HeaderError, Kind};
use super::mask::unmask;
use crate::limits::RETAINED_PARTIAL_BYTES;

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
    /// 1013: the server is overloaded (at `max_connections`); reconnect later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
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

impl From<HeaderError> for Violation {
    fn from(e: HeaderError) -> Violation {
        Violation {
            code: e.close_code(),
            reason: e.reason(),
        }
    }
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
    /// Payload bytes of the incomplete frame at the start of `partial` already unmasked and,
    /// for text, UTF-8 checked (so a long frame arriving in pieces is checked once, as it comes).
    progress: u32,
    /// UTF-8 state of the text message being read (across fragments and partial frames), so
    /// invalid text fails at the first bad byte rather than when the message completes.
    utf8: Utf8Stream,
    /// permessage-deflate was agreed: RSV1 may mark a message compressed.
    deflate: bool,
    /// The message being read is compressed (checked for UTF-8 once inflated).
    compressed: bool,
}

#[derive(Debug)]
struct Fragments {
    text: bool,
    data: Vec<u8>,
}

/// Streaming UTF-8 validation: the incomplete code point at the end of what was checked so far
/// (at most 3 bytes) waits for the next piece.
#[derive(Debug, Default, Clone, Copy)]
struct Utf8Stream {
    pending: [u8; 3],
    pending_len: u8,
}

/// Text that cannot be UTF-8, however it continues (closed with [`NOT_UTF8`]).
#[derive(Debug)]
struct InvalidUtf8;

impl Utf8Stream {
    /// Checks the next piece of text; `Err` at the first byte that cannot be UTF-8.
    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let width = match self.pending[0] {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            let mut char_buf = [0u8; 4];
            char_buf[..have].copy_from_slice(&self.pending[..have]);
            let take = (width - have).min(bytes.len());
            char_buf[have..have + take].copy_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            match std::str::from_utf8(&char_buf[..have + take]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) if have + take == width => return Err(InvalidUtf8),
                Err(_) => {
                    self.pending[..have + take].copy_from_slice(&char_buf[..have + take]);
                    self.pending_len = (have + take) as u8;
                    return Ok(());
                }
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let tail = &bytes[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Whether the text so far ends on a whole code point.
    fn is_complete(&self) -> bool {
        self.pending_len == 0
    }
}

/// The close for text that is not UTF-8.
const NOT_UTF8: Violation = Violation {
    code: CloseCode::INVALID_DATA,
    reason: "text is not valid UTF-8",
};

impl MessageReader {
    /// Accepts compressed messages from now on (permessage-deflate was agreed).
    pub fn accept_deflate(&mut self) {
        self.deflate = true;
    }

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
        on_message: &mut impl FnMut(Incoming<'_>),
    ) -> Result<(), Violation> {
        if self.partial.is_empty() {
            let used = self.parse_frames(data, max_message, on_message)?;
            self.partial.extend_from_slice(&data[used..]);
        } else {
            self.partial.extend_from_slice(data);
            let mut buf = std::mem::take(&mut self.partial);
            let used = self.parse_frames(&mut buf, max_message, on_message)?;
            buf.drain(..used);
            self.partial = buf;
        }
        if self.partial.is_empty() && self.partial.capacity() > RETAINED_PARTIAL_BYTES {
            self.partial = Vec::new();
        }
        Ok(())
    }

    /// Parses every complete frame at the start of `buf`; returns how many bytes were consumed.
    /// The payload of an incomplete last frame is unmasked and checked as far as it arrived.
    fn parse_frames(
        &mut self,
        buf: &mut [u8],
        max_message: usize,
        on_message: &mut impl FnMut(Incoming<'_>),
    ) -> Result<usize, Violation> {
        let mut pos = 0;
        // Progress belongs to the frame at the start of `buf` (the carried partial frame).
        let mut done = std::mem::take(&mut self.progress) as usize;
        loop {
            let header = match parse_client_header(&buf[pos..], self.deflate) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(pos),
                Err(e) => return Err(e.into()),
            };
            let so_far = self.fragments.as_ref().map_or(0, |f| f.data.len()) as u64;
            let total = so_far.checked_add(header.payload_len);
            if !header.kind.is_control() && total.is_none_or(|t| t > max_message as u64) {
                return Err(Violation {
                    code: CloseCode::TOO_BIG,
                    reason: "message too big",
                });
            }
            // A data frame that does not fit the message in progress is refused as soon as its
            // header is read, before any of its payload is buffered.
            if let Some(v) = self.misplaced(header.kind) {
                return Err(v);
            }
            // At most `max_message` (data) or 125 (control) from here on: fits a usize.
            let len = header.payload_len as usize;
            let start = pos + header.header_len;
            let arrived = len.min(buf.len() - start);
            let text = match header.kind {
                Kind::Text => true,
                Kind::Continuation => self.fragments.as_ref().is_some_and(|f| f.text),
                _ => false,
            };
            if matches!(header.kind, Kind::Text | Kind::Binary) && done == 0 {
                self.utf8 = Utf8Stream::default(); // a new message (a misplaced one failed above)
                self.compressed = header.compressed;
            }
            // Compressed text is checked once inflated.
            let text = text && !self.compressed;
            let fresh = &mut buf[start + done..start + arrived];
            unmask(fresh, rotate(header.mask, done));
            if text && self.utf8.feed(fresh).is_err() {
                return Err(NOT_UTF8);
            }
            if arrived < len {
                self.progress = arrived as u32;
                return Ok(pos);
            }
            done = 0;
            pos = start + len;
            let payload = &mut buf[start..pos];
            self.deliver(header.kind, header.fin, payload, max_message, on_message)?;
        }
    }

    /// Why a frame of `kind` does not fit the message in progress, if it does not: a new data
    /// message before the fragmented one ended, or a continuation of nothing. Control frames
    /// always fit (they may come between fragments).
    fn misplaced(&self, kind: Kind) -> Option<Violation> {
        let reason = match kind {
            Kind::Continuation if self.fragments.is_none() => "continuation without a message",
            Kind::Text | Kind::Binary if self.fragments.is_some() => {
                "new message before the previous one ended"
            }
            _ => return None,
        };
        Some(Violation {
            code: CloseCode::PROTOCOL,
            reason,
        })
    }

    fn deliver(
        &mut self,
        kind: Kind,
        fin: bool,
        payload: &mut [u8],
        max_message: usize,
        on_message: &mut impl FnMut(Incoming<'_>),
    ) -> Result<(), Violation> {
        match kind {
            Kind::Ping => on_message(Incoming::Ping(payload)),
            Kind::Pong => on_message(Incoming::Pong),
            Kind::Close => {
                let (code, reason) = parse_close(payload)?;
                on_message(Incoming::Close(code, reason));
            }
            // `parse_frames` refused misplaced data frames at their header (`misplaced`).
            Kind::Text | Kind::Binary => {
                let text = kind == Kind::Text;
                if fin {
                    return self.complete(text, payload, max_message, on_message);
                } else {
                    self.fragments = Some(Box::new(Fragments {
                        text,
                        data: payload.to_vec(),
                    }));
                }
            }
            Kind::Continuation => {
                let f = (self.fragments.as_mut()).expect("refused at its header otherwise");
                f.data.extend_from_slice(payload);
                if fin {
                    let mut f = self.fragments.take().expect("checked above");
                    return self.complete(f.text, &mut f.data, max_message, on_message);
                }
            }
        }
        Ok(())
    }

    /// Hands up a whole data message: as it came, or inflated (and then checked for UTF-8 and
    /// against `max_message`) when it was compressed.
    fn complete(
        &mut self,
        text: bool,
        payload: &mut [u8],
        max_message: usize,
        on_message: &mut impl FnMut(Incoming<'_>),
    ) -> Result<(), Violation> {
        let mut wrap = |m: &mut [u8]| {
            on_message(if text {
                Incoming::Text(m)
            } else {
                Incoming::Binary(m)
            })
        };
        if !std::mem::take(&mut self.compressed) {
            if text && !self.utf8.is_complete() {
                return Err(NOT_UTF8);
            }
            wrap(payload);
            return Ok(());
        }
        let inflated = inflate(payload, max_message, |m| {
            if text && std::str::from_utf8(m).is_err() {
                return Err(NOT_UTF8);
            }
            wrap(m);
            Ok(())
        });
        match inflated {
            Ok(read) => read,
            Err(InflateError::TooBig) => Err(Violation {
                code: CloseCode::TOO_BIG,
                reason: "message too big once inflated",
            }),
            Err(InflateError::Corrupt) => Err(Violation {
                code: CloseCode::INVALID_DATA,
                reason: "invalid compressed data",
            }),
        }
    }
}

/// The mask as it applies from payload offset `offset` on.
fn rotate(mask: [u8; 4], offset: usize) -> [u8; 4] {
    let k = offset & 3;
    [
        mask[k],
        mask[(k + 1) & 3],
        mask[(k + 2) & 3],
        mask[(k + 3) & 3],
    ]
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
