//! The client side of WebSocket framing (RFC 6455), just what a load generator needs: masked
//! frames out, unmasked server frames parsed in place, and the `T=<digits>` send-time markers the
//! publisher's template put into every message. Self-contained, so the load generator does not
//! depend on the server it measures.

/// Frame opcodes the load generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// A text message.
    Text = 0x1,
    /// A binary message.
    Binary = 0x2,
    /// Close.
    Close = 0x8,
    /// Ping.
    Ping = 0x9,
    /// Pong.
    Pong = 0xA,
}

/// Appends a masked client frame (FIN set) of `opcode` with `payload` to `out`.
pub fn put_client_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode as u8);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// One parsed server frame.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerFrame<'a> {
    /// The opcode (0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub opcode: u8,
    /// FIN: the last frame of its message.
    pub fin: bool,
    /// The RSV1, RSV2, RSV3 bits, in that order from the most significant of three (RSV1 set:
    /// `0b100`, a compressed message with permessage-deflate).
    pub rsv: u8,
    /// The payload.
    pub payload: &'a [u8],
}

/// [`ServerFrame::rsv`] with RSV1 set.
pub const RSV1: u8 = 0b100;

/// Parses the frame at the start of `buf`: `Some((frame, bytes used))`, or `None` if incomplete.
pub fn parse_server_frame(buf: &[u8]) -> Option<(ServerFrame<'_>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let (header, len): (usize, usize) = match buf[1] & 0x7f {
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
    let payload = buf.get(header..header.checked_add(len)?)?;
    Some((
        ServerFrame {
            opcode: buf[0] & 0x0f,
            fin: buf[0] & 0x80 != 0,
            rsv: (buf[0] >> 4) & 0b111,
            payload,
        },
        header + len,
    ))
}

/// The number right after `T=` at the start of `digits`, if there is one (at most 19 digits, so
/// it fits a `u64`).
pub fn parse_marker(digits: &[u8]) -> Option<u64> {
    let n = digits
        .iter()
        .take(20)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if n == 0 || n > 19 {
        return None;
    }
    Some(
        digits[..n]
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')),
    )
}

/// Calls `f` with every send time marked `T=<digits>` in `payload` and returns how many there
/// were. A server that joins several messages into one frame (the gorilla hub joins queued
/// messages with `\n`) is counted right; a `T=` without digits is not a marker.
pub fn for_each_marker(payload: &[u8], mut f: impl FnMut(u64)) -> u64 {
    let mut count = 0;
    for at in memchr::memmem::find_iter(payload, b"T=") {
        if let Some(t) = parse_marker(&payload[at + 2..]) {
            f(t);
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_frames_parse_at_every_length_format_and_wait_when_cut() {
        for len in [0usize, 125, 126, 70_000] {
            let mut f = vec![0x81];
            match len {
                0..=125 => f.push(len as u8),
                126..=65535 => {
                    f.push(126);
                    f.extend_from_slice(&(len as u16).to_be_bytes());
                }
                _ => {
                    f.push(127);
                    f.extend_from_slice(&(len as u64).to_be_bytes());
                }
            }
            f.extend(std::iter::repeat_n(b'a', len));
            let (frame, used) = parse_server_frame(&f).unwrap();
            assert_eq!((frame.opcode, frame.payload.len(), used), (1, len, f.len()));
            assert!(parse_server_frame(&f[..f.len() - 1]).is_none() || len == 0);
        }
    }

    #[test]
    fn fin_and_reserved_bits_are_read_from_the_first_byte() {
        let cases = [
            (0x81u8, (1u8, true, 0u8)), // final text
            (0xc1, (1, true, RSV1)),    // final compressed text
            (0x42, (2, false, RSV1)),   // first frame of a compressed binary message
            (0x00, (0, false, 0)),      // a continuation, more to come
            (0x80, (0, true, 0)),       // the last continuation
            (0xb9, (9, true, 0b011)),   // a ping with RSV2 and RSV3
        ];
        for (b0, want) in cases {
            let buf = [b0, 2, b'h', b'i'];
            let (f, used) = parse_server_frame(&buf).unwrap();
            assert_eq!((f.opcode, f.fin, f.rsv), want, "{b0:#04x}");
            assert_eq!((f.payload, used), (&b"hi"[..], 4));
        }
    }

    /// Decodes a client frame by the RFC: FIN + opcode, mask bit, length, key, masked payload.
    fn decode_client_frame(f: &[u8]) -> (u8, Vec<u8>) {
        assert_eq!(f[0] & 0xf0, 0x80, "FIN set, no RSV bits");
        assert_eq!(f[1] & 0x80, 0x80, "client frames are masked");
        let (len, at) = match f[1] & 0x7f {
            126 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let key = &f[at..at + 4];
        assert_eq!(f.len(), at + 4 + len);
        let body = f[at + 4..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        (f[0] & 0x0f, body)
    }

    #[test]
    fn client_frames_are_masked_with_the_shortest_length_encoding() {
        for (len, header) in [
            (0usize, 2),
            (5, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (70_000, 10),
        ] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            put_client_frame(&mut out, Opcode::Binary, &payload, [1, 2, 3, 4]);
            assert_eq!(out.len(), header + 4 + len, "length {len}");
            assert_eq!(decode_client_frame(&out), (2, payload));
        }
        let mut out = Vec::new();
        put_client_frame(&mut out, Opcode::Pong, b"hi", [9, 9, 9, 9]);
        assert_eq!(decode_client_frame(&out), (0xA, b"hi".to_vec()));
    }

    #[test]
    fn send_times_are_read_from_raw_payloads_and_json_events() {
        let mut seen = Vec::new();
        // a raw peer's rebroadcast, and the gorilla hub's coalesced frame
        assert_eq!(for_each_marker(b"T=17 SEQ=0 xxxx", |t| seen.push(t)), 1);
        assert_eq!(
            for_each_marker(b"T=1 SEQ=1 xx\nT=2 SEQ=2 xx\nT=3 SEQ=3 xx", |t| seen
                .push(t)),
            3
        );
        // framecast's event envelope: the timestamp field's `T1` is not a marker
        let ev = br#"{"type":"event","channel":"c","seq":1,"timestamp":"2026-12-02T06:40:00.000Z","data":{"t":"T=1796180400123456789","pad":"x"}}"#;
        assert_eq!(for_each_marker(ev, |t| seen.push(t)), 1);
        assert_eq!(seen, [17, 1, 2, 3, 1_796_180_400_123_456_789]);
        // no digits, too many digits, cut at the end
        assert_eq!(for_each_marker(b"T= T=x {\"type\":\"pong\"}", |_| {}), 0);
        assert_eq!(for_each_marker(b"T=123456789012345678901", |_| {}), 0);
        assert_eq!(parse_marker(b"42"), Some(42));
        assert_eq!(parse_marker(b"18446744073709551615"), None, "20 digits");
        assert_eq!(
            parse_marker(b"9999999999999999999 "),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_marker(b""), None);
    }
}
