//! Server → client messages other than events, each returned as one complete text frame.

use bytes::Bytes;

use super::command::{CommandError, ErrorCode, Refusal};
use super::WallTime;
use crate::protocol::frame::{server_frame, Kind};

/// Writes one flat JSON object field by field (values are either strings, escaped here, or
/// already-valid JSON text).
pub(super) struct Obj(Vec<u8>);

impl Obj {
    /// An object whose `type` is `kind`.
    pub(super) fn new(kind: &str) -> Obj {
        let mut o = Obj(Vec::with_capacity(128));
        o.0.push(b'{');
        o.str("type", kind);
        o
    }
    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        self.0.push(b'"');
        self.0.extend_from_slice(key.as_bytes());
        self.0.extend_from_slice(b"\":");
    }
    /// A string field.
    pub(super) fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        serde_json::to_writer(&mut self.0, value).expect("writing to a Vec cannot fail");
        self
    }
    /// A field whose value is `json`, already valid JSON text.
    pub(super) fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.0.extend_from_slice(json.as_bytes());
        self
    }
    fn list(&mut self, key: &str, items: &[&str]) -> &mut Self {
        self.key(key);
        serde_json::to_writer(&mut self.0, items).expect("writing to a Vec cannot fail");
        self
    }
    fn id(&mut self, id: Option<&str>) -> &mut Self {
        if let Some(id) = id {
            self.raw("id", id);
        }
        self
    }
    /// Closes the object into one text frame.
    pub(super) fn frame(&mut self) -> Bytes {
        self.0.push(b'}');
        server_frame(Kind::Text, &self.0)
    }
}

/// `expires_at_ms`: when the connection's token expires (Unix ms), `null` without one.
fn expiry(o: &mut Obj, expires_at_ms: Option<u64>) {
    match expires_at_ms {
        Some(ms) => o.raw("expires_at_ms", &ms.to_string()),
        None => o.raw("expires_at_ms", "null"),
    };
}

/// What `connected` tells a freshly upgraded connection about itself and the server.
#[derive(Clone, Copy, Debug)]
pub struct Greeting<'a> {
    /// The server's wall clock now.
    pub at: WallTime,
    /// The connection's identifier.
    pub client_id: &'a str,
    /// The upgrade's token's user, if any.
    pub user_id: Option<&'a str>,
    /// The frame clock's rate (0: immediate mode).
    pub tick_hz: u32,
    /// When the upgrade's token expires (Unix ms).
    pub expires_at_ms: Option<u64>,
    /// The connection must still send `auth`.
    pub auth_required: bool,
    /// The upgrade asked for tick batches (`?batch=1`) and gets them.
    pub batch: bool,
    /// The upgrade asked for binary frames (`?binary=1`) and gets them.
    pub binary: bool,
}

/// `connected`: the first message on every native connection.
pub fn connected(g: &Greeting<'_>) -> Bytes {
    let flag = |on: bool| if on { "true" } else { "false" };
    let mut o = Obj::new("connected");
    o.str("client_id", g.client_id);
    match g.user_id {
        Some(u) => o.str("user_id", u),
        None => o.raw("user_id", "null"),
    };
    o.str("timestamp", &g.at.rfc3339())
        .raw("server_time_ms", &g.at.unix_ms().to_string())
        .raw("tick_hz", &g.tick_hz.to_string());
    expiry(&mut o, g.expires_at_ms);
    o.raw("auth_required", flag(g.auth_required))
        .raw("batch", flag(g.batch))
        .raw("binary", flag(g.binary));
    o.frame()
}

/// One channel's stream position in a `subscribed` reply, with what the client needs to know
/// to follow the channel: how it is delivered and how many events precede the live ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position<'a> {
    /// The channel.
    pub channel: &'a str,
    /// Sequence number of the channel's last event at the moment of joining.
    pub seq: u64,
    /// The channel's epoch.
    pub epoch: &'a str,
    /// With `since`: whether every missed event follows (true) or the client must resync.
    pub recovered: Option<bool>,
    /// The namespace's options as this subscriber sees them.
    pub traits: ChannelTraits,
    /// `"snapshot":true` events that follow the reply for this channel.
    pub snapshot_events: usize,
    /// Recovered (missed) events that follow the reply for this channel.
    pub replay_events: usize,
}

/// How a channel is delivered to one subscriber, reported in its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelTraits {
    /// `reliable`, `conflated` or `volatile`.
    pub delivery: &'static str,
    /// Events kept for recovery (0 = none).
    pub history: u32,
    /// Whether new subscribers get the newest event per key first.
    pub snapshot: bool,
    /// Whether a publisher receives its own events.
    pub echo: bool,
    /// Events per second at most this subscriber gets (the frame-clock rate unless stepped
    /// down with `max_hz`; 0 in immediate mode).
    pub rate_hz: u32,
}

/// Which request a `subscribed` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribedTo<'a> {
    /// A client's `subscribe`, with its `id`.
    Request(Option<&'a str>),
    /// The server's `default_channels`, joined on connect (or on the first `auth`).
    Defaults,
}

/// `subscribed` with each channel's position (`seq`, `epoch`, traits, and `recovered` where
/// the request carried `since`); `recovered` at the top is true only if every asked-for
/// recovery succeeded.
pub fn subscribed(
    at: WallTime,
    channels: &[&str],
    positions: &[Position<'_>],
    to: SubscribedTo<'_>,
) -> Bytes {
    let mut o = Obj::new("subscribed");
    o.list("channels", channels);
    let id = match to {
        SubscribedTo::Request(id) => id,
        SubscribedTo::Defaults => {
            o.raw("default", "true");
            None
        }
    };
    o.key("positions");
    let mut map = serde_json::Map::new();
    for p in positions {
        let t = &p.traits;
        let mut v = serde_json::json!({
            "seq": p.seq,
            "epoch": p.epoch,
            "delivery": t.delivery,
            "history": t.history,
            "snapshot": t.snapshot,
            "echo": t.echo,
            "rate_hz": t.rate_hz,
            "snapshot_events": p.snapshot_events,
            "replay_events": p.replay_events,
        });
        if let Some(r) = p.recovered {
            v["recovered"] = r.into();
        }
        map.insert(p.channel.to_string(), v);
    }
    serde_json::to_writer(&mut o.0, &map).expect("writing to a Vec cannot fail");
    let asked: Vec<bool> = positions.iter().filter_map(|p| p.recovered).collect();
    if !asked.is_empty() {
        o.raw(
            "recovered",
            if asked.iter().all(|&r| r) {
                "true"
            } else {
                "false"
            },
        );
    }
    o.str("timestamp", &at.rfc3339()).id(id).frame()
}

/// `gap`: the client did not get `skipped` events of `channel` between `from_seq` and
/// `to_seq` (inclusive); the next event on the channel follows.
pub fn gap(channel: &str, skipped: u64, from_seq: u64, to_seq: u64) -> Bytes {
    Obj::new("gap")
        .str("channel", channel)
        .raw("skipped", &skipped.to_string())
        .raw("from_seq", &from_seq.to_string())
        .raw("to_seq", &to_seq.to_string())
        .frame()
}

/// `reconnect`: the server is going away; come back after `after_ms`.
pub fn reconnect(after_ms: u64, reason: &str) -> Bytes {
    Obj::new("reconnect")
        .raw("after_ms", &after_ms.to_string())
        .str("reason", reason)
        .frame()
}

/// `subscribed` or `unsubscribed` confirming the channels of a request.
pub fn subscription_change(at: WallTime, kind: &str, channels: &[&str], id: Option<&str>) -> Bytes {
    Obj::new(kind)
        .list("channels", channels)
        .str("timestamp", &at.rfc3339())
        .id(id)
        .frame()
}

/// `subscriptions`: the connection's current channels.
pub fn subscriptions(channels: &[&str], id: Option<&str>) -> Bytes {
    Obj::new("subscriptions")
        .list("channels", channels)
        .id(id)
        .frame()
}

/// `pong` answering an application-level ping.
pub fn pong(at: WallTime, ping_id: Option<&str>, id: Option<&str>) -> Bytes {
    let mut o = Obj::new("pong");
    if let Some(p) = ping_id {
        o.raw("ping_id", p);
    }
    o.str("timestamp", &at.rfc3339())
        .raw("server_time_ms", &at.unix_ms().to_string())
        .id(id)
        .frame()
}

/// `published`: acknowledges a publish that carried an `id`, with the `seq` the event got in
/// tick `frame`, or (`seq` = `None`) that a newer event of the same key replaced it on a
/// conflated channel.
pub fn published(channel: &str, seq: Option<u64>, frame: u64, id: Option<&str>) -> Bytes {
    let mut o = Obj::new("published");
    o.str("channel", channel);
    match seq {
        Some(seq) => o.raw("seq", &seq.to_string()),
        None => o.raw("superseded", "true"),
    };
    o.raw("frame", &frame.to_string()).id(id).frame()
}

/// `authenticated`: the `auth` message's token was accepted.
pub fn authenticated(
    at: WallTime,
    user_id: &str,
    expires_at_ms: Option<u64>,
    id: Option<&str>,
) -> Bytes {
    let mut o = Obj::new("authenticated");
    o.str("user_id", user_id).str("timestamp", &at.rfc3339());
    expiry(&mut o, expires_at_ms);
    o.id(id).frame()
}

/// `error` for a request that failed; the connection stays open.
pub fn error(code: ErrorCode, message: &str, id: Option<&str>) -> Bytes {
    Obj::new("error")
        .str("code", code.as_str())
        .str("message", message)
        .id(id)
        .frame()
}

/// `error` for a refused request.
pub fn refusal(refusal: &Refusal, id: Option<&str>) -> Bytes {
    error(refusal.code, &refusal.message, id)
}

/// `error` from a parse failure.
pub fn command_error(e: &CommandError) -> Bytes {
    error(e.code, &e.message, e.id.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: WallTime = WallTime::from_unix_ms(1_800_000_000_123);

    fn json(frame: &Bytes) -> serde_json::Value {
        let header = match frame[1] {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        serde_json::from_slice(&frame[header..]).unwrap()
    }

    #[test]
    fn connected_has_the_documented_fields() {
        let v = json(&connected(&Greeting {
            at: AT,
            client_id: "c-1",
            user_id: None,
            tick_hz: 60,
            expires_at_ms: Some(1_800_000_000_000),
            auth_required: true,
            batch: true,
            binary: false,
        }));
        assert_eq!(
            v["server_time_ms"], 1_800_000_000_123u64,
            "the time passed in"
        );
        assert_eq!(v["timestamp"], "2027-01-15T08:00:00.123Z");
        assert_eq!(v["auth_required"], true);
        assert_eq!(v["expires_at_ms"], 1_800_000_000_000u64);
        assert_eq!(v["type"], "connected");
        assert_eq!(v["client_id"], "c-1");
        assert!(v["user_id"].is_null());
        assert_eq!(v["tick_hz"], 60);
        assert_eq!((&v["batch"], &v["binary"]), (&true.into(), &false.into()));
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn subscribed_reports_positions_and_overall_recovery() {
        let v = json(&subscribed(
            AT,
            &["a", "b"],
            &[
                Position {
                    channel: "a",
                    seq: 5,
                    epoch: "e1",
                    recovered: Some(true),
                    traits: TRAITS,
                    snapshot_events: 0,
                    replay_events: 2,
                },
                Position {
                    channel: "b",
                    seq: 0,
                    epoch: "e2",
                    recovered: Some(false),
                    traits: TRAITS,
                    snapshot_events: 1,
                    replay_events: 0,
                },
            ],
            SubscribedTo::Request(None),
        ));
        assert_eq!(v["positions"]["a"]["seq"], 5);
        assert_eq!(v["positions"]["b"]["epoch"], "e2");
        assert_eq!(v["recovered"], false);
        assert_eq!(v["positions"]["a"]["replay_events"], 2);
        assert_eq!(v["positions"]["b"]["snapshot_events"], 1);
        assert_eq!(v["positions"]["b"]["delivery"], "conflated");
        assert_eq!(v["positions"]["b"]["rate_hz"], 30);
        assert!(v.get("default").is_none());
    }

    const TRAITS: ChannelTraits = ChannelTraits {
        delivery: "conflated",
        history: 10,
        snapshot: true,
        echo: false,
        rate_hz: 30,
    };

    #[test]
    fn subscribed_to_defaults_says_so_and_has_no_id() {
        let v = json(&subscribed(AT, &["news"], &[], SubscribedTo::Defaults));
        assert_eq!(v["default"], true);
        assert!(v.get("id").is_none());
    }

    #[test]
    fn gap_names_the_skipped_range() {
        let v = json(&gap("pos", 3, 10, 14));
        assert_eq!(
            v,
            serde_json::json!({"type":"gap","channel":"pos","skipped":3,"from_seq":10,"to_seq":14})
        );
    }

    #[test]
    fn error_escapes_message_and_echoes_id() {
        let v = json(&error(
            ErrorCode::InvalidJson,
            "bad \"quote\"",
            Some("{\"n\":1}"),
        ));
        assert_eq!(v["code"], "INVALID_JSON");
        assert_eq!(v["message"], "bad \"quote\"");
        assert_eq!(v["id"]["n"], 1);
    }
}
