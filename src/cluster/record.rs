//! One committed batch as it is stored in JetStream: the events of one channel from one
//! writer's tick. framecast's own numbering travels in headers (`Fc-Seq` of the first event,
//! `Fc-Count`, `Fc-Epoch`, `Fc-Node`); the payload holds each event's fields, length-prefixed,
//! so every node encodes exactly the same WebSocket frames from it. The frame number's top bit
//! marks a binary payload (frame numbers never reach 2^63).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Header: framecast seq of the batch's first event.
pub(crate) const SEQ: &str = "Fc-Seq";
/// Header: events in the batch.
pub(crate) const COUNT: &str = "Fc-Count";
/// Header: the channel's epoch.
pub(crate) const EPOCH: &str = "Fc-Epoch";
/// Header: the writing node.
pub(crate) const NODE: &str = "Fc-Node";

/// One event's fields, as its writer's distributor numbered it (the seq is implied by its
/// place in the batch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EventRecord {
    /// Event type, a JSON string literal.
    pub(crate) event_type: Bytes,
    /// Payload, JSON text, or with `binary` raw bytes.
    pub(crate) data: Bytes,
    /// `data` is a binary event's raw bytes.
    pub(crate) binary: bool,
    /// Conflation / snapshot key, a JSON string literal.
    pub(crate) key: Option<Bytes>,
    /// The writer's frame number.
    pub(crate) frame: u64,
    /// The writer's tick time, RFC 3339.
    pub(crate) timestamp: Bytes,
}

/// Set in a stored frame number: the event's data is raw bytes.
const BINARY_BIT: u64 = 1 << 63;

/// Why a stored payload could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed framecast batch: {0}")]
pub(crate) struct RecordError(&'static str);

/// Encodes `events` into one payload.
pub(crate) fn encode(events: &[EventRecord]) -> Bytes {
    let size: usize = events
        .iter()
        .map(|e| {
            24 + e.event_type.len()
                + e.data.len()
                + e.timestamp.len()
                + e.key.as_ref().map_or(0, Bytes::len)
        })
        .sum();
    let mut out = BytesMut::with_capacity(size);
    for e in events {
        out.put_u64_le(e.frame | if e.binary { BINARY_BIT } else { 0 });
        put(&mut out, &e.event_type);
        put(&mut out, &e.data);
        put(&mut out, &e.timestamp);
        match &e.key {
            Some(k) => put(&mut out, k),
            None => out.put_u32_le(u32::MAX),
        }
    }
    out.freeze()
}

fn put(out: &mut BytesMut, field: &[u8]) {
    out.put_u32_le(field.len() as u32);
    out.put_slice(field);
}

/// Decodes a payload of exactly `count` events; the fields share `payload`'s buffer.
pub(crate) fn decode(payload: &Bytes, count: usize) -> Result<Vec<EventRecord>, RecordError> {
    let mut rest = payload.clone();
    let mut events = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        if rest.remaining() < 8 {
            return Err(RecordError("truncated frame number"));
        }
        let frame = rest.get_u64_le();
        let (frame, binary) = (frame & !BINARY_BIT, frame & BINARY_BIT != 0);
        let event_type = take(&mut rest)?.ok_or(RecordError("no event type"))?;
        let data = take(&mut rest)?.ok_or(RecordError("no data"))?;
        let timestamp = take(&mut rest)?.ok_or(RecordError("no timestamp"))?;
        let key = take(&mut rest)?;
        events.push(EventRecord {
            event_type,
            data,
            binary,
            key,
            frame,
            timestamp,
        });
    }
    if rest.has_remaining() {
        return Err(RecordError("bytes after the last event"));
    }
    Ok(events)
}

/// One length-prefixed field; `None` for the absent marker.
fn take(rest: &mut Bytes) -> Result<Option<Bytes>, RecordError> {
    if rest.remaining() < 4 {
        return Err(RecordError("truncated length"));
    }
    let len = rest.get_u32_le();
    if len == u32::MAX {
        return Ok(None);
    }
    let len = len as usize;
    if rest.remaining() < len {
        return Err(RecordError("field longer than the payload"));
    }
    Ok(Some(rest.split_to(len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64, key: Option<&'static str>) -> EventRecord {
        EventRecord {
            event_type: Bytes::from_static(b"\"t\""),
            data: Bytes::from(format!("{{\"n\":{n}}}")),
            binary: false,
            key: key.map(|k| Bytes::from_static(k.as_bytes())),
            frame: 1000 + n,
            timestamp: Bytes::from_static(b"2026-12-03T10:00:00.000Z"),
        }
    }

    #[test]
    fn a_batch_decodes_to_what_was_encoded() {
        let events = vec![
            event(1, None),
            event(2, Some("\"k\"")),
            event(3, Some("\"\"")),
        ];
        let payload = encode(&events);
        assert_eq!(decode(&payload, 3).unwrap(), events);
    }

    #[test]
    fn a_damaged_payload_is_an_error_not_a_panic() {
        let payload = encode(&[event(1, Some("\"k\""))]);
        for cut in 0..payload.len() {
            assert!(decode(&payload.slice(..cut), 1).is_err(), "cut at {cut}");
        }
        assert!(decode(&payload, 2).is_err());
        assert!(decode(&payload, 0).is_err());
    }
}
