//! The handlers: health, status, channels, broadcast.

use serde_json::{json, Value};

use super::{HttpContext, Response};
use crate::distributor::PublishError;
use crate::shard::ShardStats;
use crate::wire::channel;

/// `GET /healthz`: 200 while serving, 503 while draining.
pub fn healthz(ctx: &HttpContext<'_>) -> Response {
    if ctx.state.is_draining() {
        Response::json(503, &json!({"status": "draining"}))
    } else {
        Response::json(200, &json!({"status": "ok"}))
    }
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
        Err(_) => Response::error(404, "unknown_channel", &format!("no channel `{name}`")),
    }
}

/// `POST /api/v1/broadcast` with `{"channel"|"channels", "event_type", "data"}`.
pub fn broadcast(body: &[u8], ctx: &HttpContext<'_>) -> Response {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Response::error(400, "invalid_json", &format!("body is not valid JSON: {e}"))
        }
    };
    let Some(obj) = value.as_object() else {
        return Response::error(400, "invalid_json", "body must be a JSON object");
    };
    let names: Vec<&str> = match (obj.get("channel"), obj.get("channels")) {
        (Some(Value::String(c)), None) => vec![c.as_str()],
        (None, Some(Value::Array(list))) if !list.is_empty() => {
            match list.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                Some(v) => v,
                None => return Response::error(400, "invalid_channel", "channels must be strings"),
            }
        }
        (None, None) => {
            return Response::error(400, "missing_field", "give `channel` or `channels`")
        }
        _ => {
            return Response::error(
                400,
                "invalid_field",
                "give either `channel` (a string) or `channels` (a non-empty array)",
            )
        }
    };
    if let Some(bad) = names.iter().find(|n| !channel::is_valid(n)) {
        return Response::error(
            400,
            "invalid_channel",
            &format!(
                "invalid channel name `{}`: use 1-200 bytes of letters, digits and _-.:/@",
                bad.chars().take(64).collect::<String>()
            ),
        );
    }
    let key = match obj.get("key") {
        None => None,
        Some(Value::String(k))
            if !k.is_empty() && k.len() <= crate::wire::command::MAX_KEY_BYTES =>
        {
            Some(k.as_str())
        }
        Some(_) => {
            return Response::error(
                400,
                "invalid_field",
                "`key` must be a string of 1-200 bytes",
            )
        }
    };
    let event_type = match obj.get("event_type") {
        None => "message",
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Response::error(400, "invalid_field", "`event_type` must be a string"),
    };
    let Some(data) = obj.get("data") else {
        return Response::error(400, "missing_field", "field `data` is required");
    };
    let data = serde_json::to_vec(data).expect("a Value always serializes");
    for name in &names {
        match ctx
            .ingress
            .publish_keyed(name, event_type, key, data.clone())
        {
            Ok(()) => {}
            Err(PublishError::Overloaded) => {
                return Response::error(
                    503,
                    "overloaded",
                    "too many publications waiting; retry later",
                )
            }
            Err(e) => return Response::error(503, "unavailable", &e.to_string()),
        }
    }
    Response::json(202, &json!({"status": "queued", "channels": names}))
}
