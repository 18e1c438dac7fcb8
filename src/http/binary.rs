//! `POST /api/v1/broadcast` with `Content-Type: application/octet-stream`: a binary event whose
//! payload is the body, raw, and whose channel(s), `event_type` and `key` are in the query
//! string (docs/protocol.md, "Binary events"). Checked as a JSON broadcast is, then queued the
//! same way.

use bytes::Bytes;

use super::routes::{percent_decode, queue, Broadcast};
use super::{HttpContext, Response};
use crate::limits::MAX_BROADCAST_BYTES;
use crate::protocol::handshake::HttpRequest;
use crate::wire::binary_event::MAX_BINARY_EVENT_TYPE;
use crate::wire::channel;
use crate::wire::command::MAX_KEY_BYTES;

/// The decoded value of query parameter `name`; `Err` names it when it is not valid
/// percent-encoding.
fn param(query: &str, name: &str) -> Result<Option<String>, Response> {
    let Some(raw) = query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    else {
        return Ok(None);
    };
    // A form-encoded `+` is a space; channel names and types never hold one anyway.
    match percent_decode(&raw.replace('+', " ")) {
        Some(text) => Ok(Some(text)),
        None => Err(Response::error(
            400,
            "invalid_field",
            &format!("query parameter `{name}` is not valid percent-encoding"),
        )),
    }
}

/// Answers a binary broadcast.
pub(crate) fn broadcast(
    req: &HttpRequest,
    ctx: &HttpContext<'_>,
    owed: &mut Option<Vec<String>>,
) -> Response {
    match checked(req) {
        Ok(event) => queue(event, ctx, owed),
        Err(response) => response,
    }
}

/// The broadcast `req` asks for, or the 400/413 that says what is wrong with it.
fn checked(req: &HttpRequest) -> Result<Broadcast, Response> {
    let query = req.query.as_deref().unwrap_or("");
    let names: Vec<String> = match (param(query, "channel")?, param(query, "channels")?) {
        (Some(one), None) => vec![one],
        (None, Some(list)) => list.split(',').map(str::to_string).collect(),
        (None, None) => return Err(Response::error(
            400,
            "missing_field",
            "a binary broadcast names its channel in the query: `?channel=NAME` or `?channels=a,b`",
        )),
        (Some(_), Some(_)) => {
            return Err(Response::error(
                400,
                "invalid_field",
                "give either `channel` or `channels` in the query, not both",
            ))
        }
    };
    if let Some(bad) = names.iter().find(|n| !channel::is_valid(n)) {
        return Err(Response::error(
            400,
            "invalid_channel",
            &channel::invalid_name_message(bad),
        ));
    }
    let event_type = param(query, "event_type")?.unwrap_or_else(|| "message".into());
    if event_type.len() > MAX_BINARY_EVENT_TYPE {
        return Err(Response::error(
            400,
            "invalid_field",
            &format!(
                "`event_type` of a binary event must be at most {MAX_BINARY_EVENT_TYPE} bytes"
            ),
        ));
    }
    let key = param(query, "key")?;
    if key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > MAX_KEY_BYTES)
    {
        return Err(Response::error(
            400,
            "invalid_field",
            &format!("`key` must be 1-{MAX_KEY_BYTES} bytes"),
        ));
    }
    let per_channel = req.body.len() + event_type.len() + key.as_ref().map_or(0, String::len);
    let work = per_channel.saturating_mul(names.len());
    if work > MAX_BROADCAST_BYTES {
        return Err(Response::error(
            413,
            "too_large",
            &format!(
                "{} channels × {per_channel} bytes = {work} bytes to encode, more than the {MAX_BROADCAST_BYTES} one request may cause; split the broadcast",
                names.len()
            ),
        ));
    }
    Ok(Broadcast {
        names,
        event_type,
        key,
        data: Bytes::copy_from_slice(&req.body),
        binary: true,
    })
}
