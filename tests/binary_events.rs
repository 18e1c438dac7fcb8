//! Binary events over real sockets (docs/protocol.md, "Binary events"): bytes published over HTTP
//! (`application/octet-stream`), as a client's binary publish and through the embedding API reach
//! a `?binary=1` subscriber as one binary frame with the documented header (payload 8-aligned)
//! and a JSON-only subscriber as the same bytes in base64; history replay and snapshots keep both
//! forms; `echo = false` holds for the binary form; broken binary publishes get an error and the
//! connection lives.
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use framecast::{Config, IoBackend};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// A binary event as a `?binary=1` client reads it.
#[derive(Debug, PartialEq)]
struct BinaryEvent {
    flags: u8,
    seq: u64,
    frame: u64,
    time_ms: u64,
    channel: String,
    event_type: String,
    key: String,
    payload: Vec<u8>,
}

/// Reads the header the way docs/protocol.md lays it out, offset by offset.
fn parse_binary(m: &[u8]) -> BinaryEvent {
    assert_eq!(m[0], 1, "format version");
    let h = u16::from_le_bytes([m[2], m[3]]) as usize;
    assert_eq!(h % 8, 0, "payload starts 8-aligned");
    let (c, t) = (m[4] as usize, m[5] as usize);
    let k = u16::from_le_bytes([m[6], m[7]]) as usize;
    let u64_at = |i: usize| u64::from_le_bytes(m[i..i + 8].try_into().unwrap());
    let text = |from: usize, len: usize| String::from_utf8(m[from..from + len].to_vec()).unwrap();
    assert!(m[32 + c + t + k..h].iter().all(|&b| b == 0), "zero padding");
    BinaryEvent {
        flags: m[1],
        seq: u64_at(8),
        frame: u64_at(16),
        time_ms: u64_at(24),
        channel: text(32, c),
        event_type: text(32 + c, t),
        key: text(32 + c + t, k),
        payload: m[h..].to_vec(),
    }
}

/// The next data message: binary bytes, or text as JSON.
async fn next(ws: &mut Ws) -> Result<Vec<u8>, Value> {
    loop {
        let m = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("no error");
        match m {
            Message::Binary(b) => return Ok(b.to_vec()),
            Message::Text(t) => return Err(serde_json::from_str(&t).unwrap()),
            _ => continue,
        }
    }
}

/// The next binary event (skipping JSON replies).
async fn next_binary(ws: &mut Ws) -> BinaryEvent {
    loop {
        if let Ok(b) = next(ws).await {
            return parse_binary(&b);
        }
    }
}

/// The next JSON `event`.
async fn next_json_event(ws: &mut Ws) -> Value {
    loop {
        match next(ws).await {
            Err(v) if v["type"] == "event" => return v,
            Err(_) => continue,
            Ok(b) => panic!("a JSON-only client got a binary frame: {b:?}"),
        }
    }
}

fn base64_of(v: &Value) -> Vec<u8> {
    assert_eq!(v["encoding"], "base64", "{v}");
    base64::engine::general_purpose::STANDARD
        .decode(v["data"].as_str().unwrap())
        .unwrap()
}

/// Three `f32`s as a browser's `Float32Array` holds them.
fn floats() -> Vec<u8> {
    [1.5f32, -2.25, 3e9]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect()
}

/// A client's binary publish: version, reserved, JSON length, JSON part, payload.
fn binary_publish(json: &Value, payload: &[u8]) -> Vec<u8> {
    let json = json.to_string();
    let mut m = vec![1, 0];
    m.extend_from_slice(&(json.len() as u16).to_le_bytes());
    m.extend_from_slice(json.as_bytes());
    m.extend_from_slice(payload);
    m
}

fn post_binary(addr: SocketAddr, query: &str, body: &[u8]) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent
        .post(format!("http://{addr}/api/v1/broadcast?{query}"))
        .header("Content-Type", "application/octet-stream")
        .send(body)
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// docs/schema/server.event.json holds for a binary event's JSON form, and refuses a
/// base64-marked event whose data is not base64.
fn assert_matches_event_schema(event: &Value) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema/server.event.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = jsonschema::draft7::new(&schema).unwrap();
    assert!(v.is_valid(event), "{event}");
    let mut broken = event.clone();
    broken["data"] = json!({"x": 1});
    assert!(!v.is_valid(&broken));
}

fn with_namespaces(io: IoBackend, toml: &str) -> Config {
    let mut c = config(io);
    c.apply_toml(toml, "test").unwrap();
    c
}

async fn http_bytes_reach_a_binary_client_as_a_binary_frame_and_a_json_client_in_base64(
    io: IoBackend,
) {
    let server = start(config(io));
    let addr = server.local_addr();
    let (mut bin, _) = connect_url(&format!("ws://{addr}/ws?binary=1")).await;
    let (mut plain, _) = connect(addr).await;
    subscribe(&mut bin, &["pos:1"]).await;
    subscribe(&mut plain, &["pos:1"]).await;
    let (status, body) = tokio::task::spawn_blocking(move || {
        post_binary(addr, "channel=pos:1&event_type=f32&key=unit%207", &floats())
    })
    .await
    .unwrap();
    assert_eq!(status, 202, "{body}");
    let got = next_binary(&mut bin).await;
    let json = next_json_event(&mut plain).await;
    assert_eq!(got.payload, floats());
    assert_eq!(base64_of(&json), floats(), "the same bytes in base64");
    assert_matches_event_schema(&json);
    assert_eq!(
        (
            got.channel.as_str(),
            got.event_type.as_str(),
            got.key.as_str()
        ),
        ("pos:1", "f32", "unit 7")
    );
    assert_eq!(got.flags, 2, "a key, not from a snapshot");
    assert_eq!(json["key"], "unit 7");
    assert_eq!((got.seq, got.frame), (1, json["frame"].as_u64().unwrap()));
    let timestamp = humantime::parse_rfc3339(json["timestamp"].as_str().unwrap()).unwrap();
    let ms = timestamp
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(got.time_ms, ms, "the JSON timestamp in ms");
    // JSON events on the same channel stay JSON text for the binary client.
    server.publish("pos:1", "note", &json!({"n": 1})).unwrap();
    match next(&mut bin).await {
        Err(v) => assert_eq!((v["seq"].as_u64(), &v["data"]), (Some(2), &json!({"n": 1}))),
        Ok(b) => panic!("a JSON event came binary: {b:?}"),
    }
    server.shutdown();
}

async fn a_clients_binary_publish_is_acknowledged_and_delivered_in_both_forms(io: IoBackend) {
    let server = start(config(io));
    let addr = server.local_addr();
    let (mut publisher, _) = connect(addr).await;
    let (mut bin, _) = connect_url(&format!("ws://{addr}/ws?binary=1")).await;
    let (mut plain, _) = connect(addr).await;
    subscribe(&mut bin, &["pos:2"]).await;
    subscribe(&mut plain, &["pos:2"]).await;
    let publish = json!({"type":"publish","channel":"pos:2","event_type":"f32","id":5});
    let message = binary_publish(&publish, &floats());
    publisher
        .send(Message::binary(message))
        .await
        .expect("send");
    let published = recv(&mut publisher).await;
    assert_eq!(
        (published["type"].as_str(), published["id"].as_u64()),
        (Some("published"), Some(5)),
        "{published}"
    );
    let got = next_binary(&mut bin).await;
    assert_eq!((got.payload, got.seq), (floats(), 1));
    assert_eq!(base64_of(&next_json_event(&mut plain).await), floats());
    // Through the embedding API, 0 to 255 bytes alike.
    let all: Vec<u8> = (0..=255).collect();
    server
        .publish_binary("pos:2", "raw", None, all.clone())
        .unwrap();
    let got = next_binary(&mut bin).await;
    assert_eq!((got.payload, got.event_type.as_str()), (all.clone(), "raw"));
    assert_eq!(base64_of(&next_json_event(&mut plain).await), all);
    server.shutdown();
}

async fn a_broken_binary_publish_gets_an_error_and_the_connection_lives(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    let bad = [
        vec![1u8, 0, 9],
        vec![1, 0, 200, 0, b'{'],
        binary_publish(&json!({"type":"publish","channel":"a b"}), b"x"),
        binary_publish(&json!({"type":"publish","channel":"a","data":1}), b"x"),
    ];
    for message in bad {
        ws.send(Message::binary(message)).await.expect("send");
        let reply = recv(&mut ws).await;
        assert_eq!(reply["type"], "error", "{reply}");
    }
    send(&mut ws, json!({"type":"ping","ping_id":1})).await;
    assert_eq!(recv(&mut ws).await["type"], "pong");
    server.shutdown();
}

async fn a_binary_client_replays_history_and_snapshots_as_binary_frames(io: IoBackend) {
    let toml = "[namespaces.rec]\nhistory_size = 10\n[namespaces.state]\nsnapshot = true\n";
    let server = start(with_namespaces(io, toml));
    let addr = server.local_addr();
    let (mut first, _) = connect(addr).await;
    let subscribed = subscribe(&mut first, &["rec:1"]).await;
    let epoch = subscribed["positions"]["rec:1"]["epoch"].clone();
    for n in 0..3u8 {
        server
            .publish_binary("rec:1", "b", None, vec![n; 4])
            .unwrap();
        let key = format!("k{n}");
        server
            .publish_binary("state:1", "b", Some(&key), vec![n; 8])
            .unwrap();
    }
    for _ in 0..3 {
        next_json_event(&mut first).await;
    }
    let (mut late, _) = connect_url(&format!("ws://{addr}/ws?binary=1")).await;
    send(
        &mut late,
        json!({"type":"subscribe","channels":["rec:1"],"since":{"rec:1":{"seq":1,"epoch":epoch}}}),
    )
    .await;
    for n in 1..3u8 {
        let got = next_binary(&mut late).await;
        assert_eq!((got.seq, got.payload), (u64::from(n) + 1, vec![n; 4]));
    }
    subscribe(&mut late, &["state:1"]).await;
    for n in 0..3u8 {
        let got = next_binary(&mut late).await;
        assert_eq!(got.flags, 3, "snapshot and key");
        assert_eq!((got.key, got.payload), (format!("k{n}"), vec![n; 8]));
    }
    let (mut json_late, _) = connect(addr).await;
    subscribe(&mut json_late, &["state:1"]).await;
    for n in 0..3u8 {
        let v = next_json_event(&mut json_late).await;
        assert_eq!(v["snapshot"], true);
        assert_eq!(base64_of(&v), vec![n; 8]);
    }
    server.shutdown();
}

async fn under_echo_false_a_binary_publisher_never_gets_its_own_event(io: IoBackend) {
    let mut c = with_namespaces(io, "[namespaces.room]\necho = false\n");
    c.tick_hz = 2; // the two events share a tick
    let server = start(c);
    let addr = server.local_addr();
    let (mut me, _) = connect_url(&format!("ws://{addr}/ws?binary=1")).await;
    let (mut other, _) = connect_url(&format!("ws://{addr}/ws?binary=1")).await;
    subscribe(&mut me, &["room:1"]).await;
    subscribe(&mut other, &["room:1"]).await;
    let publish = json!({"type":"publish","channel":"room:1","event_type":"mine"});
    me.send(Message::binary(binary_publish(&publish, b"me")))
        .await
        .unwrap();
    server
        .publish_binary("room:1", "theirs", None, &b"server"[..])
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(next_binary(&mut other).await.payload);
    }
    assert!(seen.contains(&b"me".to_vec()) && seen.contains(&b"server".to_vec()));
    let got = next_binary(&mut me).await;
    assert_eq!(got.payload, b"server", "its own event was left out");
    server.shutdown();
}

async fn bad_binary_requests_are_refused_with_a_reason(io: IoBackend) {
    let server = start(config(io));
    let addr = server.local_addr();
    let req = "GET /ws?binary=2 HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let mut raw = RawClient::send_request(addr, req).await;
    let head = raw.read_http_head().await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let long_type = format!("channel=a&event_type={}", "t".repeat(256));
    let answers = tokio::task::spawn_blocking(move || {
        [
            post_binary(addr, "event_type=f32", b"x"),
            post_binary(addr, "channel=a%20b", b"x"),
            post_binary(addr, &long_type, b"x"),
            post_binary(addr, "channel=a&channels=b", b"x"),
        ]
    })
    .await
    .unwrap();
    let codes: Vec<_> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(codes, [400, 400, 400, 400], "{answers:?}");
    assert_eq!(answers[0].1["error"], "missing_field", "{answers:?}");
    server.shutdown();
}

both_backends!(
    http_bytes_reach_a_binary_client_as_a_binary_frame_and_a_json_client_in_base64,
    a_clients_binary_publish_is_acknowledged_and_delivered_in_both_forms,
    a_broken_binary_publish_gets_an_error_and_the_connection_lives,
    a_binary_client_replays_history_and_snapshots_as_binary_frames,
    under_echo_false_a_binary_publisher_never_gets_its_own_event,
    bad_binary_requests_are_refused_with_a_reason,
);
