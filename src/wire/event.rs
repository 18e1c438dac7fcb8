//! Event frames: `{"type":"event","channel":..,"seq":..,"frame":..,"timestamp":..,
//! "event_type":..,"data":..}` written straight into a complete WebSocket text frame, once per
//! event, whatever the number of subscribers. A binary event's JSON form carries its payload in
//! base64 (`"encoding":"base64"`); its binary form is in [`super::binary_event`].

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{BufMut, BytesMut};

use crate::protocol::frame::{put_server_header, server_header_len, Kind};

/// The parts of one event frame that vary; `event_type` is already a JSON string literal and
/// `data` already JSON text.
#[derive(Clone, Copy, Debug)]
pub struct EventFields<'a> {
    /// Channel name (valid names need no escaping).
    pub channel: &'a str,
    /// Per-channel sequence number, from 1.
    pub seq: u64,
    /// Frame-clock tick that carries the event.
    pub frame: u64,
    /// RFC 3339 time of the tick.
    pub timestamp: &'a str,
    /// The same moment in ms since the Unix epoch (the binary form's `time`).
    pub unix_ms: u64,
    /// JSON string literal, quotes included.
    pub event_type: &'a [u8],
    /// JSON text, or with `binary` the raw payload (written in base64).
    pub data: &'a [u8],
    /// Conflation / snapshot key as a JSON string literal, when the event carries one.
    pub key: Option<&'a [u8]>,
    /// Marks an event sent from a namespace's snapshot to a new subscriber.
    pub snapshot: bool,
    /// `data` is raw bytes (a binary event), not JSON text.
    pub binary: bool,
}

const P1: &[u8] = b"{\"type\":\"event\",\"channel\":\"";
const P2: &[u8] = b"\",\"seq\":";
const P3: &[u8] = b",\"frame\":";
const P4: &[u8] = b",\"timestamp\":\"";
const P5: &[u8] = b"\",\"event_type\":";
const P6: &[u8] = b",\"data\":";
const P6_BASE64: &[u8] = b",\"encoding\":\"base64\",\"data\":\"";
const KEY: &[u8] = b",\"key\":";
const SNAPSHOT: &[u8] = b",\"snapshot\":true";
const P7: &[u8] = b"}";

/// Appends one complete text frame for the event to `out`; returns the frame's length.
pub fn put_event_frame(out: &mut BytesMut, e: &EventFields<'_>) -> usize {
    let mut seq = itoa::Buffer::new();
    let mut frame = itoa::Buffer::new();
    let seq = seq.format(e.seq).as_bytes();
    let frame = frame.format(e.frame).as_bytes();
    let payload = P1.len()
        + e.channel.len()
        + P2.len()
        + seq.len()
        + P3.len()
        + frame.len()
        + P4.len()
        + e.timestamp.len()
        + P5.len()
        + e.event_type.len()
        + e.key.map_or(0, |k| KEY.len() + k.len())
        + if e.snapshot { SNAPSHOT.len() } else { 0 }
        + data_len(e)
        + P7.len();
    let total = server_header_len(payload) + payload;
    out.reserve(total);
    put_server_header(out, Kind::Text, payload);
    for part in [
        P1,
        e.channel.as_bytes(),
        P2,
        seq,
        P3,
        frame,
        P4,
        e.timestamp.as_bytes(),
        P5,
        e.event_type,
    ] {
        out.put_slice(part);
    }
    if let Some(key) = e.key {
        out.put_slice(KEY);
        out.put_slice(key);
    }
    if e.snapshot {
        out.put_slice(SNAPSHOT);
    }
    if e.binary {
        out.put_slice(P6_BASE64);
        let at = out.len();
        let encoded = base64_len(e.data.len());
        out.resize(at + encoded, 0);
        let written = BASE64
            .encode_slice(e.data, &mut out[at..])
            .expect("sized by base64_len");
        debug_assert_eq!(written, encoded);
        out.put_u8(b'"');
    } else {
        out.put_slice(P6);
        out.put_slice(e.data);
    }
    out.put_slice(P7);
    total
}

/// Bytes of the `data` member's name and value.
fn data_len(e: &EventFields<'_>) -> usize {
    match e.binary {
        true => P6_BASE64.len() + base64_len(e.data.len()) + 1,
        false => P6.len() + e.data.len(),
    }
}

/// Length of padded standard base64 for `n` bytes.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_frame_is_one_valid_text_frame_with_every_field() {
        let mut out = BytesMut::new();
        let n = put_event_frame(
            &mut out,
            &EventFields {
                channel: "a",
                seq: 42,
                frame: 1234,
                timestamp: "2026-11-22T00:00:00.000Z",
                unix_ms: 0,
                event_type: b"\"x\"",
                data: br#"{"v":[1,2]}"#,
                key: None,
                snapshot: false,
                binary: false,
            },
        );
        assert_eq!(n, out.len());
        assert_eq!(out[0], 0x81);
        let (header, len) = match out[1] {
            126 => (4, u16::from_be_bytes([out[2], out[3]]) as usize),
            n => (2, n as usize),
        };
        assert_eq!(header + len, out.len());
        let v: serde_json::Value = serde_json::from_slice(&out[header..]).unwrap();
        assert_eq!(v["type"], "event");
        assert_eq!(v["channel"], "a");
        assert_eq!(v["seq"], 42);
        assert_eq!(v["frame"], 1234);
        assert_eq!(v["event_type"], "x");
        assert_eq!(v["data"]["v"][1], 2);
    }

    #[test]
    fn key_and_snapshot_mark_appear_when_set() {
        let mut out = BytesMut::new();
        let n = put_event_frame(
            &mut out,
            &EventFields {
                channel: "pos",
                seq: 3,
                frame: 9,
                timestamp: "t",
                unix_ms: 0,
                event_type: b"\"move\"",
                data: b"[1,2]",
                key: Some(b"\"avatar-7\""),
                snapshot: true,
                binary: false,
            },
        );
        assert_eq!(n, out.len());
        let header = if out[1] == 126 { 4 } else { 2 };
        let v: serde_json::Value = serde_json::from_slice(&out[header..]).unwrap();
        assert_eq!(v["key"], "avatar-7");
        assert_eq!(v["snapshot"], true);
        assert_eq!(v["data"][1], 2);
    }

    #[test]
    fn a_binary_events_json_form_carries_its_bytes_in_base64() {
        let bytes = [0u8, 1, 2, 0xfe, 0xff];
        let mut out = BytesMut::new();
        let n = put_event_frame(
            &mut out,
            &EventFields {
                channel: "pos",
                seq: 1,
                frame: 2,
                timestamp: "t",
                unix_ms: 0,
                event_type: b"\"f32\"",
                data: &bytes,
                key: None,
                snapshot: false,
                binary: true,
            },
        );
        assert_eq!(n, out.len());
        let v: serde_json::Value = serde_json::from_slice(&out[2..]).unwrap();
        assert_eq!(v["encoding"], "base64");
        assert_eq!(v["data"], "AAEC/v8=");
    }

    #[test]
    fn large_payload_uses_extended_length() {
        let data = format!("\"{}\"", "z".repeat(70_000));
        let mut out = BytesMut::new();
        put_event_frame(
            &mut out,
            &EventFields {
                channel: "big",
                seq: 1,
                frame: 1,
                timestamp: "t",
                unix_ms: 0,
                event_type: b"\"x\"",
                data: data.as_bytes(),
                key: None,
                snapshot: false,
                binary: false,
            },
        );
        assert_eq!(out[1], 127);
        let v: serde_json::Value = serde_json::from_slice(&out[10..]).unwrap();
        assert_eq!(v["data"].as_str().unwrap().len(), 70_000);
    }
}
