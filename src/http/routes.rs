//! The handlers: health, status, channels, broadcast.

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{HttpContext, Response};
use crate::distributor::{AckTo, PublishError};
use crate::limits::MAX_BROADCAST_BYTES;
use crate::protocol::handshake::HttpRequest;
use crate::status::ShardStats;
use crate::wire::channel;
use crate::wire::command::{self, Refusal};
use crate::wire::json::{self, Fields};

/// `GET /healthz`: 200 while serving, 503 while draining.
pub fn healthz(ctx: &HttpContext<'_>) -> Response {
    if ctx.state.is_draining() {
        Response::json(503, &json!({"status": "draining"}))
    } else {
        Response::json(200, &json!({"status": "ok"}))
    }
}

/// `GET /readyz`: 200 when this node should take traffic; 503 with the reason while it
/// drains or, in cluster mode, while the broker is unreachable, the node is still catching up
/// with the stream, or it lags past `cluster.max_lag`. For load balancers: no API key.
pub fn readyz(ctx: &HttpContext<'_>) -> Response {
    match ctx.state.not_ready_reason() {
        None => Response::json(200, &json!({"ready": true})),
        Some(reason) => Response::json(503, &json!({"ready": false, "reason": reason})),
    }
}

/// The cluster block of the status (`null` in single-node mode).
fn cluster_json(c: Option<&crate::status::ClusterStats>) -> Value {
    let Some(c) = c else { return Value::Null };
    let get = crate::status::ClusterStats::get;
    let commits = get(&c.commits);
    json!({
        "node": c.node,
        "connected": c.connected.load(std::sync::atomic::Ordering::Relaxed),
        "ready": c.ready(),
        "lag": get(&c.lag),
        "delivered_seq": get(&c.delivered_seq),
        "stream_last_seq": get(&c.stream_last_seq),
        "commits": commits,
        "committed_events": get(&c.committed_events),
        "retries": get(&c.retries),
        "received": get(&c.received),
        "replayed": get(&c.replayed),
        "unavailable": get(&c.unavailable),
        "lost": get(&c.lost),
        "pending_bytes": get(&c.pending_bytes),
        "connects": get(&c.connects),
        "commit_latency_us_mean": get(&c.commit_us_sum).checked_div(commits).unwrap_or(0),
    })
}

/// `GET /api/v1/status`.
pub fn status(ctx: &HttpContext<'_>) -> Response {
    let s = ctx.state;
    let t = s.totals();
    let d = &s.distributor;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let per_shard: Vec<u64> = s
        .shards
        .iter()
        .map(|x| ShardStats::get(&x.connections))
        .collect();
    Response::json(
        200,
        &json!({
            "status": if s.is_draining() { "draining" } else { "ok" },
            "uptime_seconds": s.uptime_seconds(),
            "backend": s.backend,
            "connections": {"total": t.connections, "per_shard": per_shard, "accepted_total": t.accepted},
            "channels": s.channels().len(),
            "events_in_per_second": s.rates.events_in(),
            "frames_out_per_second": s.rates.frames_out(),
            "bytes_out_per_second": s.rates.bytes_out(),
            "events_in_total": load(&d.events_in),
            "frames_out_total": t.frames_out,
            "bytes_out_total": t.bytes_out,
            "slow_consumer_drops": t.slow_consumers,
            "delivery": {
                "dropped_events_total": t.dropped_events,
                "gap_notices_total": t.gap_notices,
                "degraded_connections": t.degraded,
                "recoveries_total": load(&d.recoveries),
                "recovery_misses_total": load(&d.recovery_misses),
                "history_events": load(&d.history_events),
                "history_bytes": load(&d.history_bytes),
            },
            "cluster": cluster_json(s.cluster.as_deref()),
            "frame_clock": {
                "tick_hz": s.tick_hz,
                "ticks": load(&d.ticks),
                "merged_ticks": load(&d.merged_ticks),
                "last_tick_duration_us": load(&d.last_tick_us),
                "max_tick_duration_us": load(&d.max_tick_us),
                "max_lateness_us": load(&d.max_lateness_us),
                "last_lateness_us": load(&d.last_lateness_us),
                "host_degrade_level": load(&d.host_level),
            },
        }),
    )
}

fn channel_json(c: &crate::status::ChannelInfo) -> Value {
    json!({
        "name": &*c.name,
        "subscribers": c.subscribers,
        "last_seq": c.last_seq,
        "events_per_second": c.events_per_second,
        "epoch": &*c.epoch,
        "history": c.history,
    })
}

/// `GET /api/v1/channels`.
pub fn channels(ctx: &HttpContext<'_>) -> Response {
    let list: Vec<Value> = ctx.state.channels().iter().map(channel_json).collect();
    Response::json(200, &json!({"channels": list}))
}

/// Decodes `%XX` escapes in a path segment; `None` if an escape is malformed or the result is
/// not UTF-8.
pub fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `GET /api/v1/channels/{name}` (the name may be percent-encoded).
pub fn channel(raw: &str, ctx: &HttpContext<'_>) -> Response {
    let decoded = percent_decode(raw).unwrap_or_default();
    let name = decoded.as_str();
    if !channel::is_valid(name) {
        return Response::error(400, "invalid_channel", "invalid channel name");
    }
    let all = ctx.state.channels();
    match all.binary_search_by(|c| (*c.name).cmp(name)) {
        Ok(i) => Response::json(200, &channel_json(&all[i])),
        Err(_) => Response::error(
            404,
            "unknown_channel",
            &format!(
                "no channel `{name}` right now: a channel is listed while it has subscribers, history or a snapshot, and an idle one is forgotten about a second after its last event"
            ),
        ),
    }
}

/// `POST /api/v1/broadcast` with `{"channel"|"channels", "event_type", "data", "key"}`. `data`
/// is delivered exactly as sent; one request's work (data bytes × channels) is bounded by
/// [`MAX_BROADCAST_BYTES`], and a multi-channel broadcast is queued whole or not at all.
/// With [`HttpContext::reply_to`], a queued broadcast sets `owed` to its channels and is
/// answered later, with their seqs ([`super::pending`]).
pub fn broadcast(
    req: &HttpRequest,
    ctx: &HttpContext<'_>,
    owed: &mut Option<Vec<String>>,
) -> Response {
    if is_octet_stream(req.content_type.as_deref()) {
        return super::binary::broadcast(req, ctx, owed);
    }
    let fields = match Fields::parse(&req.body) {
        Ok(f) => f,
        Err(e) => return Response::error(400, "invalid_json", &e.to_string()),
    };
    let names: Vec<String> = match (fields.get("channel"), fields.get("channels")) {
        (Some(one), None) => match command::checked_channel(one) {
            Ok(name) => vec![name],
            Err(refusal) => return field_error(&refusal),
        },
        (None, Some(list)) => match json::value::<Vec<&RawValue>>(list) {
            Some(items) if !items.is_empty() => match command::checked_channels(&items) {
                Ok(names) => names,
                Err(refusal) => return field_error(&refusal),
            },
            _ => {
                return Response::error(
                    400,
                    "invalid_field",
                    "`channels` must be a non-empty array of channel names",
                )
            }
        },
        (None, None) => {
            return Response::error(400, "missing_field", "give `channel` or `channels`")
        }
        (Some(_), Some(_)) => {
            return Response::error(
                400,
                "invalid_field",
                "give either `channel` (a string) or `channels` (a non-empty array), not both",
            )
        }
    };
    let body = match command::publication_fields(&fields) {
        Ok(b) => b,
        Err(refusal) => return field_error(&refusal),
    };
    let data = body.data.get().as_bytes();
    // Everything encoded into each channel's frame counts, not only `data`.
    let per_channel = data.len() + body.event_type.len() + body.key.as_ref().map_or(0, String::len);
    let work = per_channel.saturating_mul(names.len());
    if work > MAX_BROADCAST_BYTES {
        return Response::error(
            413,
            "too_large",
            &format!(
                "{} channels × {per_channel} bytes (data, event_type and key) = {work} bytes to encode, more than the {MAX_BROADCAST_BYTES} one request may cause; split the broadcast",
                names.len(),
            ),
        );
    }
    let event = Broadcast {
        names,
        event_type: body.event_type,
        key: body.key,
        data: Bytes::copy_from_slice(data),
        binary: false,
    };
    queue(event, ctx, owed)
}

/// Whether a `Content-Type` says the body is raw bytes (a binary broadcast).
fn is_octet_stream(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/octet-stream"))
}

/// One broadcast, checked, on its way to the ingress.
pub(super) struct Broadcast {
    /// Its channels.
    pub(super) names: Vec<String>,
    /// Its event type.
    pub(super) event_type: String,
    /// Its key.
    pub(super) key: Option<String>,
    /// Its payload.
    pub(super) data: Bytes,
    /// `data` is raw bytes.
    pub(super) binary: bool,
}

/// Queues a checked broadcast and answers it (now, or with its seqs once numbered).
pub(super) fn queue(
    event: Broadcast,
    ctx: &HttpContext<'_>,
    owed: &mut Option<Vec<String>>,
) -> Response {
    let names = event.names;
    let reply = ctx
        .reply_to
        .map(|(shard, conn)| AckTo::Http { shard, conn });
    let waits = reply.is_some();
    match ctx.ingress.publish_to_all_replying(
        &names,
        &event.event_type,
        event.key.as_deref(),
        event.data,
        event.binary,
        reply,
    ) {
        Ok(()) if waits => {
            let response = Response::json(202, &json!({"status": "queued", "channels": names}));
            *owed = Some(names);
            response
        }
        Ok(()) => Response::json(202, &json!({"status": "queued", "channels": names})),
        Err(PublishError::Overloaded) => Response::error(
            503,
            "overloaded",
            "too many publications waiting; retry later",
        ),
        Err(e @ PublishError::Stopped) => Response::error(503, "unavailable", &e.to_string()),
        // Not reached (the names and `data` were checked above), but answered as what they are.
        Err(e @ PublishError::InvalidChannel(_)) => {
            Response::error(400, "invalid_channel", &e.to_string())
        }
        Err(e @ (PublishError::InvalidData(_) | PublishError::BinaryEventType(_))) => {
            Response::error(400, "invalid_field", &e.to_string())
        }
    }
}

/// A field problem as an HTTP 400 with the same code the WebSocket protocol uses, in lower case.
fn field_error(refusal: &Refusal) -> Response {
    Response::error(
        400,
        &refusal.code.as_str().to_ascii_lowercase(),
        &refusal.message,
    )
}
