//! What the official clients rely on from the server, over real sockets on both backends:
//! default channels reported with positions and resumable with `since`, each position's channel
//! traits and the number of snapshot / replayed events that follow, the token's expiry in
//! `connected` and `authenticated`, the `seq` in `published`, a full server's `reconnect` hint
//! and 1013, and CORS for browser apps calling the HTTP API.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use framecast::{Config, IoBackend};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "contract-secret-0123456789";

fn with_toml(io: IoBackend, toml: &str) -> Config {
    let mut c = config(io);
    c.apply_toml(toml, "test").unwrap();
    c
}

fn token(exp: u64) -> String {
    encode(
        &Header::default(),
        &json!({"sub": "ada", "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Every byte but unreserved ones percent-encoded, as `encodeURIComponent` does at least.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Publishes from a client and waits for `published`: the event is numbered (and in history
/// and snapshot) when this returns.
async fn publish_acked(ws: &mut Ws, channel: &str, key: Option<&str>, data: Value) -> Value {
    let mut msg = json!({"type":"publish","channel":channel,"data":data,"id":"ack"});
    if let Some(k) = key {
        msg["key"] = k.into();
    }
    send(ws, msg).await;
    loop {
        let m = recv(ws).await;
        if m["type"] == "published" {
            assert!(m["seq"].is_u64(), "{m}");
            return m;
        }
    }
}

async fn next_event(ws: &mut Ws) -> Value {
    let m = recv(ws).await;
    assert_eq!(m["type"], "event", "{m}");
    m
}

const FEED: &str = "default_channels = [\"feed:main\"]\n[namespaces.feed]\nhistory_size = 10\n";

async fn default_channels_are_reported_with_positions_right_after_connected(io: IoBackend) {
    let server = start(with_toml(io, FEED));
    let (mut publisher, _) = connect(server.local_addr()).await;
    publish_acked(&mut publisher, "feed:main", None, json!(1)).await;
    publish_acked(&mut publisher, "feed:main", None, json!(2)).await;
    let (mut ws, _) = connect(server.local_addr()).await;
    let reply = recv(&mut ws).await;
    assert_eq!(reply["type"], "subscribed");
    assert_eq!(reply["default"], true);
    assert!(reply.get("id").is_none());
    assert_eq!(reply["channels"], json!(["feed:main"]));
    let pos = &reply["positions"]["feed:main"];
    assert_eq!(pos["seq"], 2);
    assert_eq!(pos["delivery"], "reliable");
    assert_eq!(pos["history"], 10);
    server.publish("feed:main", "m", &3).unwrap();
    assert_eq!(
        next_event(&mut ws).await["seq"],
        3,
        "live events follow at seq + 1"
    );
}

async fn default_channels_resume_from_since_in_the_upgrade_url(io: IoBackend) {
    let server = start(with_toml(io, FEED));
    let (mut first, _) = connect(server.local_addr()).await;
    let reply = recv(&mut first).await;
    let epoch = reply["positions"]["feed:main"]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    server.publish("feed:main", "m", &1).unwrap();
    assert_eq!(next_event(&mut first).await["seq"], 1);
    drop(first);
    let (mut publisher, _) = connect(server.local_addr()).await;
    publish_acked(&mut publisher, "feed:main", None, json!(2)).await;
    publish_acked(&mut publisher, "feed:main", None, json!(3)).await;
    let since = json!({"feed:main": {"seq": 1, "epoch": epoch}}).to_string();
    let url = format!(
        "{}?since={}",
        url(server.local_addr()),
        percent_encode(&since)
    );
    let (mut ws, _) = connect_url(&url).await;
    let reply = recv(&mut ws).await;
    assert_eq!(reply["default"], true, "{reply}");
    assert_eq!(reply["recovered"], true, "{reply}");
    let pos = &reply["positions"]["feed:main"];
    assert_eq!(pos["seq"], 3, "the channel head, not the since point");
    assert_eq!(pos["recovered"], true);
    assert_eq!(pos["replay_events"], 2);
    assert_eq!(next_event(&mut ws).await["seq"], 2);
    assert_eq!(next_event(&mut ws).await["seq"], 3);
}

async fn a_bad_since_in_the_upgrade_url_is_refused_with_400(io: IoBackend) {
    let server = start(with_toml(io, FEED));
    let url = format!("{}?since=%7Bnot-json", url(server.local_addr()));
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 400);
            let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("since"), "{body}");
        }
        other => panic!("expected HTTP 400, got {other:?}"),
    }
}

async fn defaults_wait_for_the_first_auth_and_resume_from_its_since(io: IoBackend) {
    let toml = format!("allow_anonymous = false\n{FEED}");
    let mut cfg = with_toml(io, &toml);
    cfg.jwt_secret = Some(SECRET.into());
    let server = start(cfg);
    let (mut ws, hello) = connect(server.local_addr()).await;
    assert!(hello["expires_at_ms"].is_null(), "no token yet: {hello}");
    assert_eq!(hello["auth_required"], true, "{hello}");
    let exp = unix_now() + 3600;
    send(
        &mut ws,
        json!({"type":"auth","token":token(exp),"id":1,"since":{"feed:main":{"seq":0,"epoch":"old"}}}),
    )
    .await;
    let auth = recv(&mut ws).await;
    assert_eq!(auth["type"], "authenticated", "{auth}");
    assert_eq!(auth["expires_at_ms"], exp * 1000);
    let reply = recv(&mut ws).await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    assert_eq!(reply["default"], true);
    assert_eq!(reply["recovered"], false, "the epoch did not match");
    // A later auth (token refresh) joins nothing again.
    send(
        &mut ws,
        json!({"type":"auth","token":token(exp + 60),"id":2}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["expires_at_ms"], (exp + 60) * 1000);
    send(&mut ws, json!({"type":"get_subscriptions"})).await;
    assert_eq!(recv(&mut ws).await["channels"], json!(["feed:main"]));
}

async fn connected_carries_the_expiry_of_an_upgrade_token(io: IoBackend) {
    let mut cfg = config(io);
    cfg.jwt_secret = Some(SECRET.into());
    let server = start(cfg);
    let exp = unix_now() + 600;
    let url = format!("{}?token={}", url(server.local_addr()), token(exp));
    let (_ws, hello) = connect_url(&url).await;
    assert_eq!(hello["expires_at_ms"], exp * 1000);
    assert_eq!(hello["user_id"], "ada");
    assert_eq!(hello["auth_required"], false, "already authenticated");
}

const TRAITS: &str = "tick_hz = 60\n\
    [namespaces.pos]\ndelivery = \"conflated\"\nsnapshot = true\necho = false\n\
    [namespaces.chat]\nhistory_size = 50\n";

async fn positions_say_how_the_channel_is_delivered_and_what_follows(io: IoBackend) {
    let server = start(with_toml(io, TRAITS));
    let (mut publisher, _) = connect(server.local_addr()).await;
    publish_acked(&mut publisher, "pos:map", Some("a"), json!(1)).await;
    publish_acked(&mut publisher, "pos:map", Some("b"), json!(2)).await;
    let (mut ws, _) = connect(server.local_addr()).await;
    send(
        &mut ws,
        json!({"type":"subscribe","channels":["pos:map","chat:x"],"max_hz":15}),
    )
    .await;
    let reply = recv(&mut ws).await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    let pos = reply["positions"].clone();
    assert_eq!(pos["pos:map"]["snapshot_events"], 2, "{reply}");
    let mut snapshot = Vec::new();
    for _ in 0..2 {
        let ev = next_event(&mut ws).await;
        assert_eq!(ev["snapshot"], true, "{ev}");
        snapshot.push(ev["key"].clone());
    }
    assert_eq!(snapshot, vec![json!("a"), json!("b")]);
    let map = &pos["pos:map"];
    assert_eq!(map["delivery"], "conflated");
    assert_eq!(map["snapshot"], true);
    assert_eq!(map["echo"], false);
    assert_eq!(map["history"], 0);
    assert_eq!(map["rate_hz"], 15, "max_hz 15 on a 60 Hz clock");
    assert_eq!(map["replay_events"], 0);
    let chat = &pos["chat:x"];
    assert_eq!(chat["delivery"], "reliable");
    assert_eq!(chat["history"], 50);
    assert_eq!(chat["snapshot"], false);
    assert_eq!(chat["echo"], true);
    assert_eq!(
        chat["rate_hz"], 60,
        "max_hz only steps conflated channels down"
    );
    assert_eq!(chat["snapshot_events"], 0);
}

async fn published_carries_the_seq_its_event_got(io: IoBackend) {
    let server = start(config(io));
    let (mut publisher, _) = connect(server.local_addr()).await;
    let (mut reader, _) = connect(server.local_addr()).await;
    subscribe(&mut reader, &["c"]).await;
    for i in 1..=3 {
        send(
            &mut publisher,
            json!({"type":"publish","channel":"c","data":i,"id":format!("p{i}")}),
        )
        .await;
    }
    for i in 1..=3u64 {
        let ack = recv(&mut publisher).await;
        assert_eq!(ack["type"], "published", "{ack}");
        assert_eq!(ack["id"], format!("p{i}"));
        assert_eq!(ack["seq"], i);
        let ev = next_event(&mut reader).await;
        assert_eq!(
            (ev["seq"].clone(), ev["frame"].clone()),
            (ack["seq"].clone(), ack["frame"].clone())
        );
    }
    // Without an `id` there is no reply: the next message is the pong.
    send(
        &mut publisher,
        json!({"type":"publish","channel":"c","data":0}),
    )
    .await;
    send(&mut publisher, json!({"type":"ping","ping_id":9})).await;
    assert_eq!(recv(&mut publisher).await["type"], "pong");
}

async fn a_conflated_publication_replaced_within_its_tick_is_reported_superseded(io: IoBackend) {
    let server = start(with_toml(
        io,
        "tick_hz = 2\n[namespaces.pos]\ndelivery = \"conflated\"\n",
    ));
    let (mut publisher, _) = connect(server.local_addr()).await;
    let (mut reader, _) = connect(server.local_addr()).await;
    subscribe(&mut reader, &["pos:x"]).await;
    for i in 0..5 {
        send(
            &mut publisher,
            json!({"type":"publish","channel":"pos:x","data":i,"id":i}),
        )
        .await;
    }
    // However the five fall into ticks, each is either numbered (and delivered) or replaced by
    // a later one; the last is always numbered.
    let mut numbered = Vec::new();
    let mut acks = Vec::new();
    for _ in 0..5 {
        let ack = recv(&mut publisher).await;
        assert_eq!(ack["type"], "published", "{ack}");
        acks.push(ack["id"].as_u64().unwrap());
        match ack["seq"].as_u64() {
            Some(seq) => numbered.push((seq, ack["id"].as_u64().unwrap())),
            None => assert_eq!(ack["superseded"], true, "{ack}"),
        }
    }
    acks.sort_unstable();
    assert_eq!(
        acks,
        vec![0, 1, 2, 3, 4],
        "every publication is answered once"
    );
    assert_eq!(numbered.last().map(|n| n.1), Some(4));
    assert!(numbered.len() < 5 || numbered.windows(2).all(|w| w[0].0 < w[1].0));
    for (seq, id) in numbered {
        let ev = next_event(&mut reader).await;
        assert_eq!(
            (ev["seq"].as_u64(), ev["data"].as_u64()),
            (Some(seq), Some(id))
        );
    }
}

async fn a_full_server_upgrades_says_when_to_come_back_and_closes_1013(io: IoBackend) {
    let mut cfg = config(io);
    cfg.max_connections = 1;
    let server = start(cfg);
    let (_kept, _) = connect(server.local_addr()).await;
    let (mut ws, _) = tokio::time::timeout(
        DEADLINE,
        tokio_tungstenite::connect_async(url(server.local_addr())),
    )
    .await
    .unwrap()
    .expect("a full server still upgrades (browsers cannot read an HTTP refusal)");
    let hint = recv(&mut ws).await;
    assert_eq!(hint["type"], "reconnect", "{hint}");
    assert_eq!(hint["reason"], "server full");
    let after = hint["after_ms"].as_u64().unwrap();
    assert!((1000..=5000).contains(&after), "after_ms {after}");
    assert_eq!(close_code(&mut ws).await, 1013);
}

async fn cors_lets_an_allowed_browser_origin_call_the_api(io: IoBackend) {
    let mut cfg = config(io);
    cfg.cors_origins = vec!["http://app.test".into()];
    let server = start(cfg);
    let preflight = "OPTIONS /api/v1/broadcast HTTP/1.1\r\nHost: t\r\nOrigin: http://app.test\r\n\
        Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n";
    let mut c = RawClient::send_request(server.local_addr(), preflight).await;
    let head = c.read_http_head().await;
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    assert!(
        head.contains("Access-Control-Allow-Origin: http://app.test\r\n"),
        "{head}"
    );
    assert!(head.contains("Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"));
    let other = "GET /api/v1/status HTTP/1.1\r\nHost: t\r\nOrigin: http://elsewhere.test\r\n\r\n";
    let mut c = RawClient::send_request(server.local_addr(), other).await;
    let head = c.read_http_head().await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.contains("Access-Control"), "{head}");
}

both_backends!(
    default_channels_are_reported_with_positions_right_after_connected,
    default_channels_resume_from_since_in_the_upgrade_url,
    a_bad_since_in_the_upgrade_url_is_refused_with_400,
    defaults_wait_for_the_first_auth_and_resume_from_its_since,
    connected_carries_the_expiry_of_an_upgrade_token,
    positions_say_how_the_channel_is_delivered_and_what_follows,
    published_carries_the_seq_its_event_got,
    a_conflated_publication_replaced_within_its_tick_is_reported_superseded,
    a_full_server_upgrades_says_when_to_come_back_and_closes_1013,
    cors_lets_an_allowed_browser_origin_call_the_api,
);
