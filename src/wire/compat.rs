//! The seeds' forms: what the hand-written servers framecast replaces accepted or sent, kept so
//! the seeds' clients work unchanged. Nothing outside this module spells a seed's form; each is
//! documented with the protocol it belongs to (docs/protocol.md, docs/http-api.md; docs/clients.md
//! shows each seed's client on framecast) and covered by tests/native_protocol.rs,
//! tests/protocol_schemas.rs, tests/http_api.rs and the clients' seed tests.
//!
//! | form | seed | used by |
//! |---|---|---|
//! | `subscribe` / `unsubscribe` listing the channels as `data: {events: [...]}` | SigmaVault | [`command`](super::command) |
//! | the `welcome` text sent as `{"type":"notification","data":{"message","level"}}` | SigmaVault | the shard, right after `connected` |
//! | the HTTP API under `/api/v1/websocket/*` as well as `/api/v1/*` | NeuroGraph | `http` routing |
//!
//! The built-in channels the seeds subscribe to (`system.status`, `heartbeat`) are features of
//! their own, published by the observer.

use bytes::Bytes;
use serde_json::value::RawValue;

use super::json::{self, Fields, JsonError};
use super::reply::Obj;
use super::WallTime;

/// SigmaVault's channel list, `{"data": {"events": [...]}}`: the `events` value, when `data` is
/// an object that has one. `Err` when `data` is an object that does not read as one (a field
/// named twice); a `data` that is not an object is not this form.
pub(super) fn data_events<'a>(fields: &Fields<'a>) -> Result<Option<&'a RawValue>, JsonError> {
    match fields.get("data") {
        Some(data) if data.get().starts_with('{') => Ok(json::object(data)?.get("events")),
        _ => Ok(None),
    }
}

/// The `welcome` text in SigmaVault's form,
/// `{"type":"notification","timestamp":...,"data":{"message":...,"level":"info"}}`.
pub(crate) fn welcome(at: WallTime, message: &str) -> Bytes {
    let data = serde_json::json!({"message": message, "level": "info"});
    Obj::new("notification")
        .str("timestamp", &at.rfc3339())
        .raw("data", &data.to_string())
        .frame()
}

/// What follows the HTTP API prefix in NeuroGraph's spelling, `/api/v1/websocket/<route>`
/// (the same routes as `/api/v1/<route>`), or `None` for any other path.
pub(crate) fn neurograph_api_route(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/websocket/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_welcome_is_a_notification_with_message_and_level() {
        let frame = welcome(WallTime::from_unix_ms(1_800_000_000_123), "hi \"you\"");
        assert_eq!(
            std::str::from_utf8(&frame[2..]).unwrap(),
            r#"{"type":"notification","timestamp":"2027-01-15T08:00:00.123Z","data":{"level":"info","message":"hi \"you\""}}"#
        );
    }

    #[test]
    fn the_channel_list_may_come_as_data_events() {
        let events = |text: &str| {
            let fields = Fields::parse(text.as_bytes()).unwrap();
            data_events(&fields).map(|list| list.map(|l| l.get().to_string()))
        };
        assert_eq!(
            events(r#"{"data":{"events":["a","b"]}}"#)
                .unwrap()
                .as_deref(),
            Some(r#"["a","b"]"#)
        );
        assert_eq!(events(r#"{"data":{"other":1}}"#).unwrap(), None);
        assert_eq!(events(r#"{"data":["a"]}"#).unwrap(), None);
        assert!(events(r#"{"data":{"events":[],"events":[]}}"#).is_err());
    }

    #[test]
    fn the_http_api_answers_under_neurograph_s_prefix() {
        assert_eq!(
            neurograph_api_route("/api/v1/websocket/broadcast"),
            Some("broadcast")
        );
        assert_eq!(neurograph_api_route("/api/v1/broadcast"), None);
    }
}
