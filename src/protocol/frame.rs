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
}

/// Parses the header at the start of `buf`: `Ok(None)` if more bytes are needed, an error with
/// the close code to send if the frame breaks RFC 6455 as a client frame.
pub fn parse_client_header(buf: &[u8]) -> Result<Option<ClientHeader>, (CloseCode, &'static str)> {
    let mut cursor = Cursor::new(buf);
    let (header, payload_len) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Ok(None),
        Err(_) => return Err((CloseCode::PROTOCOL, "invalid frame header")),
    };
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return Err((
            CloseCode::PROTOCOL,
            "reserved bits set without an extension",
        ));
    }
    let kind = match header.opcode {
        OpCode::Data(Data::Continue) => Kind::Continuation,
        OpCode::Data(Data::Text) => Kind::Text,
        OpCode::Data(Data::Binary) => Kind::Binary,
        OpCode::Control(Control::Close) => Kind::Close,
        OpCode::Control(Control::Ping) => Kind::Ping,
        OpCode::Control(Control::Pong) => Kind::Pong,
        _ => return Err((CloseCode::PROTOCOL, "reserved opcode")),
    };
    if payload_len >> 63 != 0 {
        return Err((
            CloseCode::PROTOCOL,
            "payload length with the most significant bit set",
        ));
    }
    let Some(mask) = header.mask else {
        return Err((CloseCode::PROTOCOL, "client frames must be masked"));
    };
    if kind.is_control() && (!header.is_final || payload_len > 125) {
        return Err((
            CloseCode::PROTOCOL,
            "control frames must be final and at most 125 bytes",
        ));
    }
    Ok(Some(ClientHeader {
        fin: header.is_final,
        kind,
        mask,
        header_len: cursor.position() as usize,
        payload_len,
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

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![first];
        let mask = [1, 2, 3, 4];
        match payload.len() {
            n @ 0..=125 => v.push(0x80 | n as u8),
            n @ 126..=65535 => {
                v.push(0x80 | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(0x80 | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        v
    }

    #[test]
    fn header_parses_at_every_length_format() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let frame = masked(0x81, &vec![b'a'; len]);
            let h = parse_client_header(&frame).unwrap().unwrap();
            assert_eq!(h.payload_len as usize, len);
            assert_eq!(h.header_len + len, frame.len());
            assert_eq!(h.kind, Kind::Text);
        }
    }

    #[test]
    fn incomplete_header_asks_for_more() {
        let frame = masked(0x82, &[0; 300]);
        for cut in 0..8 {
            assert!(
                parse_client_header(&frame[..cut]).unwrap().is_none(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn unmasked_client_frame_is_a_protocol_error() {
        let err = parse_client_header(&[0x81, 0x01, b'a']).unwrap_err();
        assert_eq!(err.0, CloseCode::PROTOCOL);
    }

    #[test]
    fn long_or_fragmented_control_frames_are_protocol_errors() {
        assert!(parse_client_header(&masked(0x89, &[0; 126])).is_err());
        assert!(parse_client_header(&masked(0x09, &[0; 4])).is_err());
    }

    #[test]
    fn a_64_bit_length_with_the_top_bit_set_is_a_protocol_error() {
        // RFC 6455 §5.2: "the most significant bit MUST be 0".
        let mut frame = vec![0x81, 0x80 | 127];
        frame.extend_from_slice(&(1u64 << 63).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]);
        let err = parse_client_header(&frame).unwrap_err();
        assert_eq!(err.0, CloseCode::PROTOCOL);
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
