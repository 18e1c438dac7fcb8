//! Client requests: one JSON text (or binary) message → one [`Request`], parsed in place with
//! simd-json, or a [`CommandError`] carrying the error code the client is sent.

use simd_json::prelude::*;
use simd_json::{BorrowedValue, Buffers};

use super::channel;

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
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
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
    },
}

/// Parses one client message. `buf` is used as scratch by simd-json (parsed in place).
pub fn parse(buf: &mut [u8], scratch: &mut Buffers) -> Result<Request, CommandError> {
    let value =
        simd_json::to_borrowed_value_with_buffers(buf, scratch).map_err(|e| CommandError {
            code: ErrorCode::InvalidJson,
            message: format!("message is not valid JSON: {e}"),
            id: None,
        })?;
    if !value.is_object() {
        return Err(CommandError {
            code: ErrorCode::InvalidJson,
            message: "message must be a JSON object".into(),
            id: None,
        });
    }
    let id = value.get("id").map(|v| v.encode());
    let fail = |code: ErrorCode, message: String| CommandError {
        code,
        message,
        id: id.clone(),
    };
    let kind = match value.get("type") {
        None => {
            return Err(fail(
                ErrorCode::MissingField,
                "field `type` is required".into(),
            ))
        }
        Some(t) => t.as_str().ok_or_else(|| {
            fail(
                ErrorCode::InvalidField,
                "field `type` must be a string".into(),
            )
        })?,
    };
    let command = match kind {
        "subscribe" => Command::Subscribe(SubscribeArgs {
            channels: channel_list(&value).map_err(|(c, m)| fail(c, m))?,
            since: since_list(&value).map_err(|(c, m)| fail(c, m))?,
            max_hz: match value.get("max_hz") {
                None => None,
                Some(v) => Some(v.as_u32().filter(|&n| n > 0).ok_or_else(|| {
                    fail(
                        ErrorCode::InvalidField,
                        "field `max_hz` must be a positive whole number".into(),
                    )
                })?),
            },
        }),
        "unsubscribe" => Command::Unsubscribe(channel_list(&value).map_err(|(c, m)| fail(c, m))?),
        "publish" => {
            let channel = match value.get("channel") {
                None => {
                    return Err(fail(
                        ErrorCode::MissingField,
                        "field `channel` is required".into(),
                    ))
                }
                Some(c) => checked_channel(c).map_err(|(c, m)| fail(c, m))?,
            };
            let event_type = match value.get("event_type") {
                None => "message".to_string(),
                Some(t) => t
                    .as_str()
                    .ok_or_else(|| {
                        fail(
                            ErrorCode::InvalidField,
                            "field `event_type` must be a string".into(),
                        )
                    })?
                    .to_string(),
            };
            let data = match value.get("data") {
                None => {
                    return Err(fail(
                        ErrorCode::MissingField,
                        "field `data` is required".into(),
                    ))
                }
                Some(d) => d.encode().into_bytes(),
            };
            let key = match value.get("key") {
                None => None,
                Some(k) => Some(
                    k.as_str()
                        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_BYTES)
                        .ok_or_else(|| {
                            fail(
                                ErrorCode::InvalidField,
                                format!("field `key` must be a string of 1-{MAX_KEY_BYTES} bytes"),
                            )
                        })?
                        .to_string(),
                ),
            };
            Command::Publish {
                channel,
                event_type,
                data,
                key,
            }
        }
        "ping" => Command::Ping {
            ping_id: value.get("ping_id").map(|v| v.encode()),
        },
        "get_subscriptions" => Command::GetSubscriptions,
        "auth" => match value.get("token") {
            None => {
                return Err(fail(
                    ErrorCode::MissingField,
                    "field `token` is required".into(),
                ))
            }
            Some(t) => Command::Auth {
                token: t
                    .as_str()
                    .ok_or_else(|| {
                        fail(
                            ErrorCode::InvalidField,
                            "field `token` must be a string".into(),
                        )
                    })?
                    .to_string(),
            },
        },
        other => {
            return Err(fail(
                ErrorCode::UnknownType,
                format!(
                    "unknown message type `{}`",
                    other.chars().take(64).collect::<String>()
                ),
            ))
        }
    };
    Ok(Request { id, command })
}

/// Reads `channels: [...]`, or the seed form `data: {events: [...]}`, or a single `channel`.
fn channel_list(value: &BorrowedValue<'_>) -> Result<Vec<String>, (ErrorCode, String)> {
    let list = value
        .get("channels")
        .or_else(|| value.get("data").and_then(|d| d.get("events")));
    let items: Vec<&BorrowedValue<'_>> = match (list, value.get("channel")) {
        (Some(l), _) => l
            .as_array()
            .ok_or((
                ErrorCode::InvalidField,
                "field `channels` must be an array of strings".to_string(),
            ))?
            .iter()
            .collect(),
        (None, Some(one)) => vec![one],
        (None, None) => {
            return Err((
                ErrorCode::MissingField,
                "field `channels` is required".into(),
            ))
        }
    };
    items.into_iter().map(checked_channel).collect()
}

/// Reads `since: {"channel": {"seq": n, "epoch": "..."}}`.
fn since_list(
    value: &BorrowedValue<'_>,
) -> Result<Vec<(String, StreamPosition)>, (ErrorCode, String)> {
    let Some(since) = value.get("since") else {
        return Ok(Vec::new());
    };
    let bad = || {
        (
            ErrorCode::InvalidField,
            "field `since` must map channels to {\"seq\": n, \"epoch\": \"...\"}".to_string(),
        )
    };
    let object = since.as_object().ok_or_else(bad)?;
    let mut out = Vec::with_capacity(object.len());
    for (name, position) in object.iter() {
        let name = checked_channel(&BorrowedValue::from(name.as_ref()))?;
        let seq = position
            .get("seq")
            .and_then(|s| s.as_u64())
            .ok_or_else(bad)?;
        let epoch = position
            .get("epoch")
            .and_then(|e| e.as_str())
            .ok_or_else(bad)?;
        out.push((
            name,
            StreamPosition {
                seq,
                epoch: epoch.to_string(),
            },
        ));
    }
    Ok(out)
}

fn checked_channel(v: &BorrowedValue<'_>) -> Result<String, (ErrorCode, String)> {
    let name = v.as_str().ok_or((
        ErrorCode::InvalidChannel,
        "channel names must be strings".to_string(),
    ))?;
    if !channel::is_valid(name) {
        return Err((
            ErrorCode::InvalidChannel,
            format!(
                "invalid channel name `{}`: use 1-200 bytes of letters, digits and _-.:/@",
                name.chars().take(64).collect::<String>()
            ),
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests;
