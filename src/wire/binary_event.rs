//! Binary event frames (docs/protocol.md, "Binary events"): a binary event for a connection that
//! opened with `?binary=1` is one binary WebSocket frame, a small little-endian header (version,
//! flags, header length, seq, frame, time, channel, event type, key) and then the payload as it
//! was published, starting at a multiple of 8 so a browser views it as a `Float32Array` without
//! a copy. Written once per event, like the JSON form.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

use super::event::EventFields;
use crate::protocol::frame::{put_server_header, server_header_len, Kind};

/// The format's version byte (first byte of every binary event and binary publish).
pub const BINARY_VERSION: u8 = 0x01;

/// Fixed part of the header: version, flags, header length, three lengths, seq, frame, time.
const FIXED: usize = 32;

/// Flag bit: sent from a snapshot.
const FLAG_SNAPSHOT: u8 = 1;
/// Flag bit: a key follows the event type.
const FLAG_KEY: u8 = 2;

/// Longest event type a binary event may carry (its length is one byte).
pub const MAX_BINARY_EVENT_TYPE: usize = 255;

/// The text of a JSON string literal (quotes included), unescaped only where it has escapes.
fn literal_text(literal: &[u8]) -> Cow<'_, [u8]> {
    let inner = literal
        .strip_prefix(b"\"")
        .and_then(|l| l.strip_suffix(b"\""))
        .unwrap_or(literal);
    if !inner.contains(&b'\\') {
        return Cow::Borrowed(inner);
    }
    match serde_json::from_slice::<String>(literal) {
        Ok(text) => Cow::Owned(text.into_bytes()),
        Err(_) => Cow::Borrowed(inner),
    }
}

/// Appends one complete binary frame for binary event `e` (its `data` the raw payload); returns
/// the frame's length.
pub fn put_binary_event_frame(out: &mut BytesMut, e: &EventFields<'_>) -> usize {
    let event_type = literal_text(e.event_type);
    let key = e.key.map(literal_text);
    let channel = e.channel.as_bytes();
    // Lengths were checked at publish time; clamped so a bad caller cannot corrupt the frame.
    let channel = &channel[..channel.len().min(255)];
    let event_type = &event_type[..event_type.len().min(MAX_BINARY_EVENT_TYPE)];
    let key = key.as_deref().map(|k| &k[..k.len().min(u16::MAX as usize)]);
    let names = channel.len() + event_type.len() + key.map_or(0, <[u8]>::len);
    let header = (FIXED + names).next_multiple_of(8);
    let payload = header + e.data.len();
    let total = server_header_len(payload) + payload;
    out.reserve(total);
    put_server_header(out, Kind::Binary, payload);
    out.put_u8(BINARY_VERSION);
    let flags =
        if e.snapshot { FLAG_SNAPSHOT } else { 0 } | if key.is_some() { FLAG_KEY } else { 0 };
    out.put_u8(flags);
    out.put_u16_le(header as u16);
    out.put_u8(channel.len() as u8);
    out.put_u8(event_type.len() as u8);
    out.put_u16_le(key.map_or(0, <[u8]>::len) as u16);
    out.put_u64_le(e.seq);
    out.put_u64_le(e.frame);
    out.put_u64_le(e.unix_ms);
    out.put_slice(channel);
    out.put_slice(event_type);
    if let Some(key) = key {
        out.put_slice(key);
    }
    out.put_bytes(0, header - FIXED - names);
    out.put_slice(e.data);
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(data: &'a [u8], key: Option<&'a [u8]>) -> EventFields<'a> {
        EventFields {
            channel: "pos:1",
            seq: 0x0102_0304_0506_0708,
            frame: 77,
            timestamp: "2026-12-07T15:00:00.000Z",
            unix_ms: 1_765_119_600_000,
            event_type: b"\"f32\"",
            data,
            key,
            snapshot: false,
            binary: true,
        }
    }

    #[test]
    fn header_fields_sit_where_the_protocol_says_and_the_payload_is_8_aligned() {
        let payload: Vec<u8> = [1.5f32, -2.25, 3e9]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let mut out = BytesMut::new();
        let n = put_binary_event_frame(&mut out, &event(&payload, None));
        assert_eq!(n, out.len());
        assert_eq!(out[0], 0x82, "final binary frame");
        let m = &out[2..];
        assert_eq!(out[1] as usize, m.len());
        assert_eq!((m[0], m[1]), (1, 0));
        let h = u16::from_le_bytes([m[2], m[3]]) as usize;
        assert_eq!(h % 8, 0);
        assert_eq!((m[4], m[5], m[6], m[7]), (5, 3, 0, 0));
        assert_eq!(
            u64::from_le_bytes(m[8..16].try_into().unwrap()),
            0x0102_0304_0506_0708
        );
        assert_eq!(u64::from_le_bytes(m[16..24].try_into().unwrap()), 77);
        assert_eq!(
            u64::from_le_bytes(m[24..32].try_into().unwrap()),
            1_765_119_600_000
        );
        assert_eq!(&m[32..40], b"pos:1f32");
        assert!(m[40..h].iter().all(|&b| b == 0));
        assert_eq!(&m[h..], &payload[..]);
    }

    #[test]
    fn a_key_sets_its_flag_and_escapes_are_undone() {
        let mut out = BytesMut::new();
        let mut e = event(b"xyz", Some(b"\"a\\\"b\""));
        e.snapshot = true;
        put_binary_event_frame(&mut out, &e);
        let m = &out[2..];
        assert_eq!(m[1], FLAG_SNAPSHOT | FLAG_KEY);
        assert_eq!(u16::from_le_bytes([m[6], m[7]]), 3);
        assert_eq!(&m[32..43], b"pos:1f32a\"b");
        let h = u16::from_le_bytes([m[2], m[3]]) as usize;
        assert_eq!(&m[h..], b"xyz");
    }
}
