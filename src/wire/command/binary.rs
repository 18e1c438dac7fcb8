//! A binary publish (docs/protocol.md, "Binary events"): a binary WebSocket message starting with
//! the format's version byte, a reserved byte, the little-endian length of a JSON part, the JSON
//! part (a `publish` object without `data`) and then the payload, raw. The JSON part is read by
//! the same rules as a JSON `publish`, so `id`, `event_type` and `key` mean what they mean there.

use super::{
    event_type_and_key, publish_channel, string, Command, CommandError, ErrorCode, Refusal, Request,
};
use crate::wire::binary_event::MAX_BINARY_EVENT_TYPE;
use crate::wire::json::Fields;

/// Version byte, reserved byte, JSON length.
const HEADER: usize = 4;

/// Parses a binary publish (`message[0]` is the version byte).
pub(super) fn parse_publish(message: &[u8]) -> Result<Request, CommandError> {
    let bad = |text: &str| Refusal::new(ErrorCode::InvalidField, text).with_id(None);
    if message.len() < HEADER {
        return Err(bad("binary publish: shorter than its 4-byte header"));
    }
    if message[1] != 0 {
        return Err(bad("binary publish: byte 1 is reserved and must be 0"));
    }
    let json_len = u16::from_le_bytes([message[2], message[3]]) as usize;
    let Some(json) = message.get(HEADER..HEADER + json_len) else {
        return Err(bad(
            "binary publish: the JSON length in bytes 2-3 runs past the message",
        ));
    };
    let data = message[HEADER + json_len..].to_vec();
    let fields = Fields::parse(json).map_err(|e| {
        Refusal::new(
            ErrorCode::InvalidJson,
            format!("binary publish: JSON part: {e}"),
        )
        .with_id(None)
    })?;
    let id = fields.get("id").map(|v| v.get().to_string());
    let fail = |refusal: Refusal| refusal.with_id(id.clone());
    match fields.get("type").map(|t| string(t, "type")) {
        Some(Ok(t)) if t == "publish" => {}
        _ => {
            return Err(fail(Refusal::new(
                ErrorCode::InvalidField,
                "binary publish: the JSON part must have \"type\":\"publish\"",
            )))
        }
    }
    if fields.get("data").is_some() {
        return Err(fail(Refusal::new(
            ErrorCode::InvalidField,
            "binary publish: the payload follows the JSON part; remove its `data` field",
        )));
    }
    let channel = publish_channel(&fields).map_err(fail)?;
    let (event_type, key) = event_type_and_key(&fields).map_err(fail)?;
    if event_type.len() > MAX_BINARY_EVENT_TYPE {
        return Err(fail(Refusal::new(
            ErrorCode::InvalidField,
            format!("field `event_type` of a binary event must be at most {MAX_BINARY_EVENT_TYPE} bytes"),
        )));
    }
    Ok(Request {
        id,
        command: Command::Publish {
            channel,
            event_type,
            data,
            key,
            binary: true,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn message(json: &str, payload: &[u8]) -> Vec<u8> {
        let mut m = vec![1, 0];
        m.extend_from_slice(&(json.len() as u16).to_le_bytes());
        m.extend_from_slice(json.as_bytes());
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn a_binary_publish_carries_its_payload_raw_and_its_fields_from_the_json_part() {
        let json = r#"{"type":"publish","channel":"pos:1","event_type":"f32","key":"a","id":7}"#;
        let req = parse(&message(json, &[0, 0, 0xc0, 0x3f])).unwrap();
        assert_eq!(req.id.as_deref(), Some("7"));
        assert_eq!(
            req.command,
            Command::Publish {
                channel: "pos:1".into(),
                event_type: "f32".into(),
                data: vec![0, 0, 0xc0, 0x3f],
                key: Some("a".into()),
                binary: true,
            }
        );
    }

    #[test]
    fn a_broken_binary_publish_is_refused_with_a_reason() {
        let refused = |m: &[u8]| parse(m).unwrap_err();
        assert!(refused(&[1, 0, 9]).message.contains("4-byte header"));
        assert!(refused(&[1, 1, 0, 0]).message.contains("reserved"));
        assert!(refused(&[1, 0, 200, 0, b'{']).message.contains("runs past"));
        let e = refused(&message(r#"{"type":"ping","id":3}"#, b""));
        assert_eq!(
            (e.code, e.id.as_deref()),
            (ErrorCode::InvalidField, Some("3"))
        );
        let e = refused(&message(
            r#"{"type":"publish","channel":"a","data":1}"#,
            b"x",
        ));
        assert!(e.message.contains("remove its `data`"));
        let e = refused(&message(r#"{"type":"publish"}"#, b"x"));
        assert_eq!(e.code, ErrorCode::MissingField);
        let long = format!(
            r#"{{"type":"publish","channel":"a","event_type":"{}"}}"#,
            "t".repeat(256)
        );
        assert!(refused(&message(&long, b"x")).message.contains("255"));
        assert_eq!(refused(&message("{", b"")).code, ErrorCode::InvalidJson);
    }

    #[test]
    fn a_json_message_in_a_binary_frame_is_still_json() {
        let req = parse(br#"{"type":"publish","channel":"a","data":[1]}"#).unwrap();
        assert!(matches!(
            req.command,
            Command::Publish { binary: false, .. }
        ));
    }
}
