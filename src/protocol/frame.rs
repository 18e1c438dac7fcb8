//! Frame headers: client headers are parsed with tungstenite's `FrameHeader`; server frames are
//! unmasked, so framecast encodes them itself, once, and every client gets the same bytes.

use std::io::Cursor;

use bytes::{BufMut, Bytes, BytesMut};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use super::message::CloseCode;

/// What a frame carries, reduced to what the server acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Continuation of a fragmented message.
    Continuation,
    /// Text data.
    Text,
    /// Binary data.
    Binary,
    /// Close control frame.
    Close,
    /// Ping control frame.
    Ping,
    /// Pong control frame.
    Pong,
}

impl Kind {
    /// Control frames may not be fragmented and carry at most 125 bytes.
    pub fn is_control(self) -> bool {
        matches!(self, Kind::Close | Kind::Ping | Kind::Pong)
    }

    fn opcode(self) -> u8 {
        match self {
            Kind::Continuation => 0x0,
            Kind::Text => 0x1,
            Kind::Binary => 0x2,
            Kind::Close => 0x8,
            Kind::Ping => 0x9,
            Kind::Pong => 0xA,
        }
    }
}

/// A parsed client frame header.
#[derive(Clone, Copy, Debug)]
pub struct ClientHeader {
    /// FIN bit.
    pub fin: bool,
    /// Frame kind.
    pub kind: Kind,
    /// The client's masking key.
    pub mask: [u8; 4],
    /// Bytes of header (2 to 14).
    pub header_len: usize,
    /// Bytes of payload that follow the header.
    pub payload_len: u64,
    /// RSV1: the message this frame starts is compressed (permessage-deflate).
    pub compressed: bool,
}

/// How a client frame header breaks RFC 6455. Every one is a protocol error (close code 1002);
/// [`reason`](Self::reason) is the close frame's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The header cannot be read at all.
    Malformed,
    /// RSV1, RSV2 or RSV3 is set, and no extension that would give them a meaning was agreed.
    ReservedBits,
    /// The opcode is one RFC 6455 reserves.
    ReservedOpcode,
    /// A 64-bit payload length with its most significant bit set (§5.2: it MUST be 0).
    LengthTopBit,
    /// The frame is not masked (§5.1: a client masks every frame).
    Unmasked,
    /// A control frame that is fragmented or carries more than 125 bytes (§5.5).
    OversizedControl,
}

impl HeaderError {
    /// The close code to send: always 1002.
    pub fn close_code(self) -> CloseCode {
        CloseCode::PROTOCOL
    }

    /// The close frame's reason text.
    pub fn reason(self) -> &'static str {
        match self {
            HeaderError::Malformed => "invalid frame header",
            HeaderError::ReservedBits => "reserved bits set without an extension",
            HeaderError::ReservedOpcode => "reserved opcode",
            HeaderError::LengthTopBit => "payload length with the most significant bit set",
            HeaderError::Unmasked => "client frames must be masked",
            HeaderError::OversizedControl => "control frames must be final and at most 125 bytes",
        }
    }
}

/// Parses the header at the start of `buf`: `Ok(None)` if more bytes are needed, an error if the
/// frame breaks RFC 6455 as a client frame. With `deflate` (permessage-deflate agreed), RSV1 may
/// mark the first frame of a data message as compressed (RFC 7692 §6: never a continuation or a
/// control frame).
pub fn parse_client_header(buf: &[u8], deflate: bool) -> Result<Option<ClientHeader>, HeaderError> {
    let mut cursor = Cursor::new(buf);
    let (header, payload_len) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Ok(None),
        Err(_) => return Err(HeaderError::Malformed),
    };
    if header.rsv2 || header.rsv3 {
        return Err(HeaderError::ReservedBits);
    }
    let kind = match header.opcode {
        OpCode::Data(Data::Continue) => Kind::Continuation,
        OpCode::Data(Data::Text) => Kind::Text,
        OpCode::Data(Data::Binary) => Kind::Binary,
        OpCode::Control(Control::Close) => Kind::Close,
        OpCode::Control(Control::Ping) => Kind::Ping,
        OpCode::Control(Control::Pong) => Kind::Pong,
        _ => return Err(HeaderError::ReservedOpcode),
    };
    if payload_len >> 63 != 0 {
        return Err(HeaderError::LengthTopBit);
    }
    let Some(mask) = header.mask else {
        return Err(HeaderError::Unmasked);
    };
    if kind.is_control() && (!header.is_final || payload_len > 125) {
        return Err(HeaderError::OversizedControl);
    }
    if header.rsv1 && !(deflate && matches!(kind, Kind::Text | Kind::Binary)) {
        return Err(HeaderError::ReservedBits);
    }
    Ok(Some(ClientHeader {
        fin: header.is_final,
        kind,
        mask,
        header_len: cursor.position() as usize,
        payload_len,
        compressed: header.rsv1,
    }))
}

/// Bytes a server frame header takes for a payload of `len` bytes.
pub fn server_header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

/// Appends an unmasked, final server frame header for a payload of `len` bytes.
pub fn put_server_header(out: &mut impl BufMut, kind: Kind, len: usize) {
    out.put_u8(0x80 | kind.opcode());
    match len {
        0..=125 => out.put_u8(len as u8),
        126..=65535 => {
            out.put_u8(126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
}

/// The server frame at the start of `buf` (as [`put_server_header`] writes them): its header
/// length, opcode and payload length; `None` when `buf` does not hold a whole one.
pub fn server_frame_at(buf: &[u8]) -> Option<(usize, u8, usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let (header, len): (usize, usize) = match b1 & 0x7f {
        126 => (
            4,
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
        ),
        127 => (
            10,
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
        ),
        n => (2, n as usize),
    };
    (buf.len() >= header.checked_add(len)?).then_some((header, b0 & 0x0f, len))
}

/// One complete server frame holding `payload`.
pub fn server_frame(kind: Kind, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(server_header_len(payload.len()) + payload.len());
    put_server_header(&mut out, kind, payload.len());
    out.put_slice(payload);
    out.freeze()
}

/// A close frame with `code` and a reason (cut to fit the 125-byte control frame limit).
pub fn close_frame(code: CloseCode, reason: &str) -> Bytes {
    let mut reason = reason;
    while reason.len() > 123 {
        let mut cut = 123;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason = &reason[..cut];
    }
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.0.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    server_frame(Kind::Close, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::client_frame;

    #[test]
    fn header_parses_at_every_length_format() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let frame = client_frame(0x81, &vec![b'a'; len]);
            let h = parse_client_header(&frame, false).unwrap().unwrap();
            assert_eq!(h.payload_len as usize, len);
            assert_eq!(h.header_len + len, frame.len());
            assert_eq!(h.kind, Kind::Text);
        }
    }

    #[test]
    fn incomplete_header_asks_for_more() {
        let frame = client_frame(0x82, &[0; 300]);
        for cut in 0..8 {
            assert!(
                parse_client_header(&frame[..cut], false).unwrap().is_none(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn unmasked_client_frame_is_a_protocol_error() {
        let err = parse_client_header(&[0x81, 0x01, b'a'], false).unwrap_err();
        assert_eq!(err, HeaderError::Unmasked);
        assert_eq!(err.close_code(), CloseCode::PROTOCOL);
    }

    #[test]
    fn long_or_fragmented_control_frames_are_protocol_errors() {
        for frame in [client_frame(0x89, &[0; 126]), client_frame(0x09, &[0; 4])] {
            let err = parse_client_header(&frame, false).unwrap_err();
            assert_eq!(err, HeaderError::OversizedControl);
        }
    }

    #[test]
    fn rsv1_marks_a_compressed_message_only_where_deflate_was_agreed() {
        let first = client_frame(0xC1, b"z");
        assert_eq!(
            parse_client_header(&first, false).unwrap_err(),
            HeaderError::ReservedBits
        );
        assert!(
            parse_client_header(&first, true)
                .unwrap()
                .unwrap()
                .compressed
        );
        // Never on a continuation or a control frame, nor RSV2/RSV3 at all.
        for bad in [0xC0, 0xC9, 0xA1, 0x91] {
            let frame = client_frame(bad, b"z");
            assert!(parse_client_header(&frame, true).is_err(), "{bad:#x}");
        }
    }

    #[test]
    fn a_64_bit_length_with_the_top_bit_set_is_a_protocol_error() {
        // RFC 6455 §5.2: "the most significant bit MUST be 0".
        let mut frame = vec![0x81, 0x80 | 127];
        frame.extend_from_slice(&(1u64 << 63).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]);
        let err = parse_client_header(&frame, false).unwrap_err();
        assert_eq!(err, HeaderError::LengthTopBit);
    }

    #[test]
    fn server_frame_roundtrips_lengths() {
        for len in [0usize, 1, 125, 126, 65535, 65536, 100_000] {
            let f = server_frame(Kind::Binary, &vec![7; len]);
            assert_eq!(f.len(), server_header_len(len) + len);
            assert_eq!(f[0], 0x82);
        }
    }
}
