//! permessage-deflate (RFC 7692) and tick batches over real sockets: a client offering deflate the
//! way Chrome does gets every event compressed (RSV1) and a plain client the same events plain;
//! compressed client messages are read; history replay and snapshots reach a compressing client
//! compressed; the inflated size is capped; `compression = "off"` declines the offer. A client
//! connecting with `?batch=1` gets a channel's events of one tick as one JSON array message
//! (compressed once where deflate was agreed), and its own events excluded under `echo = false`.
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use std::net::SocketAddr;

use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use framecast::{Config, IoBackend};
use serde_json::{json, Value};

/// Chrome's offer.
const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// The answer framecast gives every offer it takes.
const AGREED: &str = "sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// A raw client that offers permessage-deflate and compresses what it sends.
struct DeflateClient {
    raw: RawClient,
    /// The 101 response head, lower-cased.
    head: String,
}

impl DeflateClient {
    async fn connect(addr: SocketAddr) -> DeflateClient {
        DeflateClient::connect_path(addr, "/ws").await
    }

    async fn connect_path(addr: SocketAddr, path: &str) -> DeflateClient {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: {OFFER}\r\n\r\n"
        );
        let mut raw = RawClient::send_request(addr, &req).await;
        let head = raw.read_http_head().await.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        let mut c = DeflateClient { raw, head };
        let (_, hello) = c.message().await;
        assert_eq!(hello["type"], "connected");
        c
    }

    fn agreed(&self) -> bool {
        self.head.contains(AGREED)
    }

    /// Sends `v` as one compressed text message (RSV1, no context takeover).
    async fn send(&mut self, v: Value) {
        let mut c = Compress::new(Compression::new(6), false);
        let text = v.to_string();
        let mut z = Vec::with_capacity(text.len() + 64);
        c.compress_vec(text.as_bytes(), &mut z, FlushCompress::Sync)
            .unwrap();
        z.truncate(z.len() - 4);
        self.raw.send_frame(0xC1, &z, true).await;
    }

    /// The next text message: whether it came compressed, and its JSON.
    async fn message(&mut self) -> (bool, Value) {
        loop {
            let (first, payload) = self.data_frame().await;
            if first & 0x0f != 0x1 {
                continue;
            }
            if first & 0x40 == 0 {
                return (false, serde_json::from_slice(&payload).unwrap());
            }
            return (true, serde_json::from_slice(&inflate(payload)).unwrap());
        }
    }

    /// Subscribes (compressed) to `channel` and waits for the `subscribed` reply.
    async fn subscribe(&mut self, channel: &str) {
        self.send(json!({"type":"subscribe","channels":[channel]}))
            .await;
        self.message_of("subscribed").await;
    }

    /// The next data frame: its first byte (FIN, RSV1, opcode) and its payload as sent.
    async fn data_frame(&mut self) -> (u8, Vec<u8>) {
        loop {
            let (first, payload) = self.raw.read_frame().await.expect("a frame");
            if matches!(first & 0x0f, 0x1 | 0x2) {
                return (first, payload);
            }
        }
    }

    /// The next message of `kind`, skipping others.
    async fn message_of(&mut self, kind: &str) -> (bool, Value) {
        loop {
            let m = self.message().await;
            if m.1["type"] == kind {
                return m;
            }
        }
    }
}

/// A compressed message's payload inflated (RFC 7692 §7.2.2: the sync flush tail appended).
fn inflate(mut payload: Vec<u8>) -> Vec<u8> {
    payload.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    Decompress::new(false)
        .decompress_vec(&payload, &mut out, FlushDecompress::Sync)
        .expect("valid DEFLATE");
    out
}

/// A realistic event: a unit's position and state, not padding that compresses unrealistically.
fn position(n: u64) -> Value {
    json!({
        "id": format!("unit-{n}"),
        "pos": {"x": 12.5 + n as f64, "y": -3.25, "z": 101.75},
        "vel": {"x": 0.5, "y": 0.0, "z": -1.25},
        "heading": 87.5, "hp": 93, "team": "blue", "state": "moving"
    })
}

fn with_namespaces(io: IoBackend, toml: &str) -> Config {
    let mut c = config(io);
    c.apply_toml(toml, "test").unwrap();
    c
}

async fn deflate_clients_get_compressed_events_and_plain_clients_plain_ones(io: IoBackend) {
    let server = start(config(io));
    let mut zc = DeflateClient::connect(server.local_addr()).await;
    assert!(zc.agreed(), "{}", zc.head);
    let (mut plain, _) = connect(server.local_addr()).await;
    subscribe(&mut plain, &["pos:1"]).await;
    // The subscribe itself goes compressed: the server inflates client messages.
    zc.send(json!({"type":"subscribe","channels":["pos:1"],"id":1}))
        .await;
    let (_, subscribed) = zc.message_of("subscribed").await;
    assert_eq!(subscribed["id"], 1);
    for n in 0..5 {
        server.publish("pos:1", "position", &position(n)).unwrap();
    }
    for n in 0..5 {
        let (compressed, event) = zc.message_of("event").await;
        let expected = recv(&mut plain).await;
        assert!(compressed, "event {n} came plain to a deflate client");
        assert_eq!(
            event, expected,
            "the same event, byte for byte once inflated"
        );
        assert_eq!(event["data"], position(n));
    }
    server.shutdown();
}

async fn a_deflate_client_recovers_history_and_snapshots_compressed(io: IoBackend) {
    let toml = "[namespaces.chat]\nhistory_size = 100\n[namespaces.state]\nsnapshot = true\n";
    let server = start(with_namespaces(io, toml));
    let mut first = DeflateClient::connect(server.local_addr()).await;
    first
        .send(json!({"type":"subscribe","channels":["chat:1"]}))
        .await;
    let (_, subscribed) = first.message_of("subscribed").await;
    let epoch = subscribed["positions"]["chat:1"]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    for n in 0..3 {
        server.publish("chat:1", "msg", &position(n)).unwrap();
        server
            .publish_keyed("state:1", "unit", &format!("u{n}"), &position(n))
            .unwrap();
    }
    for _ in 0..3 {
        first.message_of("event").await;
    }
    let mut late = DeflateClient::connect(server.local_addr()).await;
    late.send(json!({
        "type":"subscribe","channels":["chat:1"],
        "since":{"chat:1":{"seq":1,"epoch":epoch}}
    }))
    .await;
    let (_, subscribed) = late.message_of("subscribed").await;
    assert_eq!(
        subscribed["positions"]["chat:1"]["recovered"], true,
        "{subscribed}"
    );
    for seq in [2, 3] {
        let (compressed, event) = late.message_of("event").await;
        assert!(compressed, "replayed event {seq} came plain");
        assert_eq!(event["seq"], seq);
    }
    late.send(json!({"type":"subscribe","channels":["state:1"]}))
        .await;
    for n in 0..3 {
        let (compressed, event) = late.message_of("event").await;
        assert!(compressed && event["snapshot"] == true, "{event}");
        assert_eq!(event["data"], position(n));
    }
    server.shutdown();
}

async fn a_reconnecting_deflate_client_gets_its_default_channels_replayed_compressed(
    io: IoBackend,
) {
    let toml = "default_channels = [\"chat:1\"]\n[namespaces.chat]\nhistory_size = 100\n";
    let server = start(with_namespaces(io, toml));
    let mut first = DeflateClient::connect(server.local_addr()).await;
    let (_, defaults) = first.message_of("subscribed").await;
    let epoch = defaults["positions"]["chat:1"]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    for n in 0..3 {
        server.publish("chat:1", "msg", &position(n)).unwrap();
    }
    for _ in 0..3 {
        first.message_of("event").await;
    }
    // Comes back from seq 1 through the upgrade URL, as the official clients do.
    let since = format!(r#"{{"chat:1":{{"seq":1,"epoch":"{epoch}"}}}}"#);
    let encoded: String = since
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let path = format!("/ws?since={encoded}");
    let mut back = DeflateClient::connect_path(server.local_addr(), &path).await;
    let (_, subscribed) = back.message_of("subscribed").await;
    assert_eq!(
        subscribed["positions"]["chat:1"]["recovered"], true,
        "{subscribed}"
    );
    for seq in [2, 3] {
        let (compressed, event) = back.message_of("event").await;
        assert!(compressed, "replayed event {seq} came plain");
        assert_eq!(event["seq"], seq);
    }
    server.shutdown();
}

async fn a_compressed_message_too_big_once_inflated_closes_with_1009(io: IoBackend) {
    let mut c = config(io);
    c.max_message_bytes = 64 * 1024;
    let server = start(c);
    let mut zc = DeflateClient::connect(server.local_addr()).await;
    // 16 MiB of spaces inside a JSON string: a few KiB compressed.
    let bomb = json!({"type":"publish","channel":"a","data":" ".repeat(16 << 20)});
    zc.send(bomb).await;
    assert_eq!(zc.raw.read_close_code().await, 1009);
    // The shard is fine: a new client is served.
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["a"]).await;
    server.shutdown();
}

async fn compression_off_declines_the_offer(io: IoBackend) {
    let mut c = config(io);
    c.apply_toml("compression = \"off\"\n", "test").unwrap();
    let server = start(c);
    let mut zc = DeflateClient::connect(server.local_addr()).await;
    assert!(!zc.head.contains("sec-websocket-extensions"), "{}", zc.head);
    zc.raw
        .send_frame(
            0x81,
            json!({"type":"subscribe","channels":["a"]})
                .to_string()
                .as_bytes(),
            true,
        )
        .await;
    zc.message_of("subscribed").await;
    server.publish("a", "t", &position(1)).unwrap();
    let (compressed, _) = zc.message_of("event").await;
    assert!(!compressed);
    server.shutdown();
}

/// Flattens batch messages (JSON arrays) and single events into the events, in order.
fn events_of(messages: &[Value]) -> Vec<Value> {
    messages
        .iter()
        .flat_map(|m| match m.as_array() {
            Some(batch) => batch.clone(),
            None => vec![m.clone()],
        })
        .filter(|e| e["type"] == "event")
        .collect()
}

/// A slow frame clock (2 Hz), so that events published together share a tick.
fn slow_ticks(io: IoBackend, toml: &str) -> Config {
    let mut c = with_namespaces(io, toml);
    c.tick_hz = 2;
    c
}

async fn a_batch_client_gets_a_ticks_events_as_one_array_message(io: IoBackend) {
    let server = start(slow_ticks(io, ""));
    let addr = server.local_addr();
    let (mut batched, _) = connect_url(&format!("ws://{addr}/ws?batch=1")).await;
    let (mut plain, _) = connect(addr).await;
    subscribe(&mut batched, &["pos:1"]).await;
    subscribe(&mut plain, &["pos:1"]).await;
    for n in 0..6 {
        server.publish("pos:1", "position", &position(n)).unwrap();
    }
    let mut one_by_one = Vec::new();
    for _ in 0..6 {
        one_by_one.push(recv(&mut plain).await);
    }
    let mut messages = Vec::new();
    while events_of(&messages).len() < 6 {
        messages.push(recv(&mut batched).await);
    }
    assert_eq!(
        events_of(&messages),
        one_by_one,
        "the same events, in order"
    );
    assert!(
        messages.len() < 6 && messages.iter().any(Value::is_array),
        "six events published at once came in {} messages",
        messages.len()
    );
    server.shutdown();
}

async fn a_compressing_batch_client_gets_each_batch_compressed_once(io: IoBackend) {
    let server = start(slow_ticks(io, ""));
    let mut zc = DeflateClient::connect_path(server.local_addr(), "/ws?batch=1").await;
    assert!(zc.agreed());
    zc.subscribe("pos:1").await;
    for n in 0..8 {
        server.publish("pos:1", "position", &position(n)).unwrap();
    }
    let mut messages = Vec::new();
    while events_of(&messages).len() < 8 {
        let (compressed, m) = zc.message().await;
        assert!(compressed, "{m}");
        messages.push(m);
    }
    let data: Vec<Value> = events_of(&messages)
        .iter()
        .map(|e| e["data"].clone())
        .collect();
    assert_eq!(data, (0..8).map(position).collect::<Vec<_>>());
    assert!(messages.iter().any(Value::is_array));
    server.shutdown();
}

async fn under_echo_false_a_batch_client_gets_others_events_but_never_its_own(io: IoBackend) {
    let server = start(slow_ticks(io, "[namespaces.room]\necho = false\n"));
    let addr = server.local_addr();
    let (mut me, _) = connect_url(&format!("ws://{addr}/ws?batch=1")).await;
    subscribe(&mut me, &["room:1"]).await;
    send(
        &mut me,
        json!({"type":"publish","channel":"room:1","data":{"from":"me"},"id":9}),
    )
    .await;
    for n in 0..3 {
        server
            .publish("room:1", "t", &json!({"from": "server", "n": n}))
            .unwrap();
    }
    let mut messages = Vec::new();
    while events_of(&messages).len() < 3 {
        messages.push(recv(&mut me).await);
    }
    let events = events_of(&messages);
    assert!(
        events.iter().all(|e| e["data"]["from"] == "server"),
        "{events:?}"
    );
    server.shutdown();
}

async fn a_binary_client_that_agreed_to_deflate_gets_json_events_compressed_beside_binary_frames(
    io: IoBackend,
) {
    let server = start(slow_ticks(io, ""));
    let mut zc = DeflateClient::connect_path(server.local_addr(), "/ws?binary=1").await;
    assert!(zc.agreed());
    zc.subscribe("pos:1").await;
    // Published together, so that one tick (2 Hz) mixes binary and JSON events.
    let floats: Vec<u8> = (0..64u8).flat_map(|i| f32::from(i).to_le_bytes()).collect();
    for n in 0..3 {
        server
            .publish_binary("pos:1", "f32", None, floats.clone())
            .unwrap();
        server.publish("pos:1", "position", &position(n)).unwrap();
    }
    for n in 0..3 {
        let (first, payload) = zc.data_frame().await;
        assert_eq!(first, 0x82, "a binary event: a binary frame as it is");
        assert_eq!(payload[0], 1, "the binary event header's version");
        assert!(payload.ends_with(&floats));
        let (first, payload) = zc.data_frame().await;
        assert_eq!(
            first, 0xC1,
            "the JSON event {n} comes compressed, not plain beside binary events"
        );
        let event: Value = serde_json::from_slice(&inflate(payload)).unwrap();
        assert_eq!(event["data"], position(n));
    }
    server.shutdown();
}

async fn a_bad_batch_parameter_refuses_the_upgrade_with_400(io: IoBackend) {
    let server = start(config(io));
    let req = "GET /ws?batch=yes HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let mut raw = RawClient::send_request(server.local_addr(), req).await;
    let head = raw.read_http_head().await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    server.shutdown();
}

both_backends!(
    a_batch_client_gets_a_ticks_events_as_one_array_message,
    a_compressing_batch_client_gets_each_batch_compressed_once,
    under_echo_false_a_batch_client_gets_others_events_but_never_its_own,
    a_bad_batch_parameter_refuses_the_upgrade_with_400,
    a_binary_client_that_agreed_to_deflate_gets_json_events_compressed_beside_binary_frames,
    deflate_clients_get_compressed_events_and_plain_clients_plain_ones,
    a_deflate_client_recovers_history_and_snapshots_compressed,
    a_compressed_message_too_big_once_inflated_closes_with_1009,
    a_reconnecting_deflate_client_gets_its_default_channels_replayed_compressed,
    compression_off_declines_the_offer,
);
