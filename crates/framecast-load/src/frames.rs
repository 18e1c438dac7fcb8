//! The client side of WebSocket framing, just what a load generator needs: masked frames out,
//! unmasked server frames parsed in place.

use framecast::protocol::frame::{put_server_header, Kind};
use framecast::protocol::mask::unmask;

/// Appends a masked client frame (FIN set) of `kind` with `payload` to `out`: the server's header
/// encoding with the mask bit set, then the key, then the masked payload.
pub fn put_client_frame(out: &mut Vec<u8>, kind: Kind, payload: &[u8], mask: [u8; 4]) {
    let header_at = out.len();
    put_server_header(out, kind, payload.len());
    out[header_at + 1] |= 0x80;
    out.extend_from_slice(&mask);
    let body_at = out.len();
    out.extend_from_slice(payload);
    // XOR masking is its own inverse, so the server's unmask also masks.
    unmask(&mut out[body_at..], mask);
}

/// One parsed server frame.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerFrame<'a> {
    /// The opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub opcode: u8,
    /// The payload.
    pub payload: &'a [u8],
}

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
            payload,
        },
        header + len,
    ))
}

/// Finds `"t":<digits>` in an event and returns the number (publish time, ns since the epoch).
pub fn find_send_time(finder: &memchr::memmem::Finder<'_>, payload: &[u8]) -> Option<u64> {
    let at = finder.find(payload)? + finder.needle().len();
    let digits = payload[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut n: u64 = 0;
    let mut any = false;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(n)
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
    fn client_frames_parse_back_with_the_servers_own_parser() {
        for len in [0usize, 5, 125, 126, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            put_client_frame(&mut out, Kind::Binary, &payload, [1, 2, 3, 4]);
            let h = framecast::protocol::frame::parse_client_header(&out)
                .unwrap()
                .unwrap();
            assert_eq!((h.kind, h.payload_len as usize), (Kind::Binary, len));
            let mut body = out[h.header_len..].to_vec();
            unmask(&mut body, h.mask);
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn send_time_is_read_from_the_event_data() {
        let finder = memchr::memmem::Finder::new(b"\"t\":");
        let ev =
            br#"{"type":"event","channel":"c","seq":1,"data":{"t":1732245600123456789,"pad":"x"}}"#;
        assert_eq!(find_send_time(&finder, ev), Some(1_732_245_600_123_456_789));
        assert_eq!(find_send_time(&finder, b"{\"type\":\"pong\"}"), None);
    }
}
