//! Event frames: `{"type":"event","channel":..,"seq":..,"frame":..,"timestamp":..,
//! "event_type":..,"data":..}` written straight into a complete WebSocket text frame, once per
//! event, whatever the number of subscribers.

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
    /// JSON string literal, quotes included.
    pub event_type: &'a [u8],
    /// JSON text.
    pub data: &'a [u8],
    /// Conflation / snapshot key as a JSON string literal, when the event carries one.
    pub key: Option<&'a [u8]>,
    /// Marks an event sent from a namespace's snapshot to a new subscriber.
    pub snapshot: bool,
}

const P1: &[u8] = b"{\"type\":\"event\",\"channel\":\"";
const P2: &[u8] = b"\",\"seq\":";
const P3: &[u8] = b",\"frame\":";
const P4: &[u8] = b",\"timestamp\":\"";
const P5: &[u8] = b"\",\"event_type\":";
const P6: &[u8] = b",\"data\":";
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
        + P6.len()
        + e.data.len()
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
    for part in [P6, e.data, P7] {
        out.put_slice(part);
    }
    total
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
                event_type: b"\"x\"",
                data: br#"{"v":[1,2]}"#,
                key: None,
                snapshot: false,
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
                event_type: b"\"move\"",
                data: b"[1,2]",
                key: Some(b"\"avatar-7\""),
                snapshot: true,
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
                event_type: b"\"x\"",
                data: data.as_bytes(),
                key: None,
                snapshot: false,
            },
        );
        assert_eq!(out[1], 127);
        let v: serde_json::Value = serde_json::from_slice(&out[10..]).unwrap();
        assert_eq!(v["data"].as_str().unwrap().len(), 70_000);
    }
}
