//! Client requests: one JSON text (or binary) message → one [`Request`], or a
//! [`CommandError`] carrying the error code the client is sent (a [`Refusal`] and the request's
//! `id`). Fields are read with
//! [`json::Fields`], which validates the message once and keeps every value as the bytes sent.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::binary_event::BINARY_VERSION;
use super::json::{self, Fields, Str};
use super::{channel, compat};

pub mod binary;

/// Error codes sent in `{"type":"error","code":...}` replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The message is not a JSON object.
    InvalidJson,
    /// `type` names no known request.
    UnknownType,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type.
    InvalidField,
    /// A channel name breaks the naming rules.
    InvalidChannel,
    /// A per-connection or server-wide limit would be exceeded.
    LimitExceeded,
    /// The server cannot take more publications right now.
    Overloaded,
    /// The server is shutting down: nothing more is accepted on this connection.
    Unavailable,
    /// The connection may not do this on this channel.
    Forbidden,
    /// Publishing faster than the namespace's `publish_rate`.
    RateLimited,
    /// The connection must authenticate first (`{"type":"auth"}`).
    Unauthorized,
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::UnknownType => "UNKNOWN_TYPE",
            ErrorCode::MissingField => "MISSING_FIELD",
            ErrorCode::InvalidField => "INVALID_FIELD",
            ErrorCode::InvalidChannel => "INVALID_CHANNEL",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::Overloaded => "OVERLOADED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
        }
    }
}

/// A request refused, before its `id` is attached: the error code and the message the client is
/// told (an `error` reply on a WebSocket; the same code, in lower case, in an HTTP 400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The error code.
    pub code: ErrorCode,
    /// A human-readable message.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// The refusal of the request whose `id` (raw JSON) is `id`.
    fn with_id(self, id: Option<String>) -> CommandError {
        CommandError {
            code: self.code,
            message: self.message,
            id,
        }
    }
}

/// A request that could not be carried out, with what to tell the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError {
    /// The error code.
    pub code: ErrorCode,
    /// A human-readable message.
    pub message: String,
    /// The request's `id` as raw JSON, echoed in the reply.
    pub id: Option<String>,
}

/// One client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request's `id` as raw JSON (any JSON value), echoed in the reply.
    pub id: Option<String>,
    /// What is asked.
    pub command: Command,
}

/// Where a client left a channel's stream: the last `seq` it got in `epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamPosition {
    /// Last sequence number received.
    pub seq: u64,
    /// The channel's epoch that `seq` belongs to.
    pub epoch: String,
}

/// A `subscribe` request's fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscribeArgs {
    /// Channels to join.
    pub channels: Vec<String>,
    /// Per channel, where to resume from (`since`).
    pub since: Vec<(String, StreamPosition)>,
    /// Most updates per second the client wants on conflated channels.
    pub max_hz: Option<u32>,
}

impl SubscribeArgs {
    /// Plain subscription to `channels`.
    pub fn channels(channels: Vec<String>) -> SubscribeArgs {
        SubscribeArgs {
            channels,
            ..SubscribeArgs::default()
        }
    }
}

/// Longest conflation `key` in bytes.
pub const MAX_KEY_BYTES: usize = 200;

/// What a client may ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Subscribe to channels.
    Subscribe(SubscribeArgs),
    /// Unsubscribe from channels.
    Unsubscribe(Vec<String>),
    /// Publish an event; `data` is raw JSON text.
    Publish {
        /// Target channel.
        channel: String,
        /// Event type label.
        event_type: String,
        /// Payload, serialized JSON.
        data: Vec<u8>,
        /// Conflation / snapshot key, if the event carries one.
        key: Option<String>,
        /// `data` is raw bytes (a binary publish, see [`binary`]), not JSON text.
        binary: bool,
    },
    /// Application-level ping; `ping_id` (raw JSON) is echoed.
    Ping {
        /// The ping's identifier as raw JSON.
        ping_id: Option<String>,
    },
    /// List this connection's subscriptions.
    GetSubscriptions,
    /// Authenticate with a token.
    Auth {
        /// The JWT.
        token: String,
        /// Where the client left its default channels (read on the first `auth` only).
        since: Vec<(String, StreamPosition)>,
    },
}

/// Parses one client message (a text or binary WebSocket message holding one JSON object).
/// Fields are read from the exact bytes sent: `data`, `id` and `ping_id` are passed on
/// verbatim, never re-encoded (see [`json`]).
pub fn parse(message: &[u8]) -> Result<Request, CommandError> {
    if message.first() == Some(&BINARY_VERSION) {
        return binary::parse_publish(message);
    }
    let fields = Fields::parse(message)
        .map_err(|e| Refusal::new(ErrorCode::InvalidJson, e.to_string()).with_id(None))?;
    let id = fields.get("id").map(|v| v.get().to_string());
    let fail = |refusal: Refusal| refusal.with_id(id.clone());
    let kind = match fields.get("type") {
        None => {
            return Err(fail(Refusal::new(
                ErrorCode::MissingField,
                "field `type` is required",
            )))
        }
        Some(t) => string(t, "type").map_err(fail)?,
    };
    let command = match &*kind {
        "subscribe" => Command::Subscribe(SubscribeArgs {
            channels: channel_list(&fields).map_err(fail)?,
            since: since_list(&fields).map_err(fail)?,
            max_hz: match fields.get("max_hz") {
                None => None,
                Some(v) => Some(
                    json::value::<u32>(v)
                        .filter(|&n| n > 0)
                        .ok_or_else(|| {
                            Refusal::new(
                                ErrorCode::InvalidField,
                                "field `max_hz` must be a positive whole number",
                            )
                        })
                        .map_err(fail)?,
                ),
            },
        }),
        "unsubscribe" => Command::Unsubscribe(channel_list(&fields).map_err(fail)?),
        "publish" => {
            let channel = publish_channel(&fields).map_err(fail)?;
            let body = publication_fields(&fields).map_err(fail)?;
            Command::Publish {
                channel,
                event_type: body.event_type,
                data: body.data.get().as_bytes().to_vec(),
                key: body.key,
                binary: false,
            }
        }
        "ping" => Command::Ping {
            ping_id: fields.get("ping_id").map(|v| v.get().to_string()),
        },
        "get_subscriptions" => Command::GetSubscriptions,
        "auth" => match fields.get("token") {
            None => {
                return Err(fail(Refusal::new(
                    ErrorCode::MissingField,
                    "field `token` is required",
                )))
            }
            Some(t) => Command::Auth {
                token: string(t, "token").map_err(fail)?.into_owned(),
                since: since_list(&fields).map_err(fail)?,
            },
        },
        other => {
            return Err(fail(Refusal::new(
                ErrorCode::UnknownType,
                format!(
                    "unknown message type `{}`",
                    other.chars().take(64).collect::<String>()
                ),
            )))
        }
    };
    Ok(Request { id, command })
}

/// What a publication says besides its channel(s), as read from a client `publish` or an HTTP
/// broadcast body.
#[derive(Debug)]
pub struct PublicationFields<'a> {
    /// `event_type` (default `message`).
    pub event_type: String,
    /// `data`, exactly as sent.
    pub data: &'a RawValue,
    /// `key`, if given.
    pub key: Option<String>,
}

/// A publish's `channel`: present and a valid name.
pub(crate) fn publish_channel(fields: &Fields<'_>) -> Result<String, Refusal> {
    match fields.get("channel") {
        None => Err(Refusal::new(
            ErrorCode::MissingField,
            "field `channel` is required",
        )),
        Some(c) => checked_channel(c),
    }
}

/// Reads `event_type` (default `message`) and `key`, as every publication carries them.
pub(crate) fn event_type_and_key(fields: &Fields<'_>) -> Result<(String, Option<String>), Refusal> {
    let event_type = match fields.get("event_type") {
        None => "message".to_string(),
        Some(t) => string(t, "event_type")?.into_owned(),
    };
    let key = match fields.get("key") {
        None => None,
        Some(k) => Some(
            json::value::<Str<'_>>(k)
                .map(|s| s.0.into_owned())
                .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_BYTES)
                .ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::InvalidField,
                        format!("field `key` must be a string of 1-{MAX_KEY_BYTES} bytes"),
                    )
                })?,
        ),
    };
    Ok((event_type, key))
}

/// Reads `event_type`, `data` and `key`, the fields a `publish` and an HTTP broadcast share.
pub fn publication_fields<'a>(fields: &Fields<'a>) -> Result<PublicationFields<'a>, Refusal> {
    let (event_type, key) = event_type_and_key(fields)?;
    let data = fields
        .get("data")
        .ok_or_else(|| Refusal::new(ErrorCode::MissingField, "field `data` is required"))?;
    Ok(PublicationFields {
        event_type,
        data,
        key,
    })
}

/// A string field, or INVALID_FIELD naming it.
fn string<'a>(raw: &'a RawValue, name: &str) -> Result<Cow<'a, str>, Refusal> {
    json::value::<Str<'a>>(raw).map(|s| s.0).ok_or_else(|| {
        Refusal::new(
            ErrorCode::InvalidField,
            format!("field `{name}` must be a string"),
        )
    })
}

/// Reads `channels: [...]`, or the seed form `data: {events: [...]}` ([`compat`]), or a single
/// `channel`.
/// A name given twice counts once.
fn channel_list(fields: &Fields<'_>) -> Result<Vec<String>, Refusal> {
    let not_a_list = || {
        Refusal::new(
            ErrorCode::InvalidField,
            "field `channels` must be an array of strings",
        )
    };
    let list = match fields.get("channels") {
        Some(l) => Some(l),
        None => compat::data_events(fields).map_err(|_| not_a_list())?,
    };
    let items: Vec<&RawValue> = match (list, fields.get("channel")) {
        (Some(l), _) => json::value::<Vec<&RawValue>>(l).ok_or_else(not_a_list)?,
        (None, Some(one)) => vec![one],
        (None, None) => {
            return Err(Refusal::new(
                ErrorCode::MissingField,
                "field `channels` is required",
            ))
        }
    };
    checked_channels(&items)
}

/// Checks a list of channel names; a name given twice counts once (first occurrence kept), in
/// linear time however long the list.
pub fn checked_channels(items: &[&RawValue]) -> Result<Vec<String>, Refusal> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let name = checked_channel(item)?;
        if seen.insert(name.clone()) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Reads `since: {"channel": {"seq": n, "epoch": "..."}}`.
fn since_list(fields: &Fields<'_>) -> Result<Vec<(String, StreamPosition)>, Refusal> {
    match fields.get("since") {
        None => Ok(Vec::new()),
        Some(since) => since_positions(since),
    }
}

/// Reads a `since` object given on its own (the upgrade URL's `?since=`, percent-decoded).
pub fn since_from_json(text: &[u8]) -> Result<Vec<(String, StreamPosition)>, Refusal> {
    let bad = || {
        Refusal::new(
            ErrorCode::InvalidField,
            "`since` must be a JSON object mapping channels to {\"seq\": n, \"epoch\": \"...\"}",
        )
    };
    let text = std::str::from_utf8(text).map_err(|_| bad())?;
    json::check_depth(text.as_bytes()).map_err(|_| bad())?;
    let raw: &RawValue = serde_json::from_str(text).map_err(|_| bad())?;
    since_positions(raw)
}

/// Checks one `since` object.
fn since_positions(since: &RawValue) -> Result<Vec<(String, StreamPosition)>, Refusal> {
    let bad = || {
        Refusal::new(
            ErrorCode::InvalidField,
            "field `since` must map channels to {\"seq\": n, \"epoch\": \"...\"}",
        )
    };
    let object = json::object(since).map_err(|e| match e {
        json::JsonError::DuplicateField(name) => Refusal::new(
            ErrorCode::InvalidField,
            format!("field `since` names channel `{name}` twice"),
        ),
        _ => bad(),
    })?;
    let mut out = Vec::with_capacity(object.len());
    for (name, position) in object.iter() {
        if !channel::is_valid(name) {
            return Err(invalid_channel(name));
        }
        let position = json::object(position).map_err(|_| bad())?;
        let seq = position
            .get("seq")
            .and_then(json::value::<u64>)
            .ok_or_else(bad)?;
        let epoch = position
            .get("epoch")
            .and_then(json::value::<Str<'_>>)
            .ok_or_else(bad)?;
        out.push((
            name.to_string(),
            StreamPosition {
                seq,
                epoch: epoch.0.into_owned(),
            },
        ));
    }
    Ok(out)
}

/// A channel name field, checked against the naming rules.
pub fn checked_channel(raw: &RawValue) -> Result<String, Refusal> {
    let name = json::value::<Str<'_>>(raw)
        .ok_or_else(|| Refusal::new(ErrorCode::InvalidChannel, "channel names must be strings"))?;
    if !channel::is_valid(&name.0) {
        return Err(invalid_channel(&name.0));
    }
    Ok(name.0.into_owned())
}

/// INVALID_CHANNEL with the naming rules.
fn invalid_channel(name: &str) -> Refusal {
    Refusal::new(
        ErrorCode::InvalidChannel,
        channel::invalid_name_message(name),
    )
}

#[cfg(test)]
mod tests;
