//! Input an attacker (or a careless client) sends, over real sockets on both backends: each
//! case once took a shard or the whole server down, made it buffer without bound, changed the
//! data it delivered, or answered unclearly (issue 13). The server must answer with a clear
//! error, keep the connection where the protocol allows, and keep serving everyone else.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;

use common::*;
use framecast::IoBackend;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Sends `text` as one text message and returns the reply.
async fn ask(ws: &mut Ws, text: String) -> Value {
    use futures_util::SinkExt;
    ws.send(Message::text(text)).await.expect("send");
    recv(ws).await
}

/// One raw HTTP/1.1 exchange on a fresh connection: the whole response as text.
fn raw_http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = StdTcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn post_broadcast(addr: std::net::SocketAddr, body: &str) -> (u16, String) {
    let req = format!(
        "POST /api/v1/broadcast HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = raw_http(addr, req.as_bytes());
    let status = resp
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {resp:?}"));
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

async fn deep_json_is_an_error_reply_before_auth_and_the_connection_lives(io: IoBackend) {
    // Unauthenticated on purpose: the message used to be parsed (recursively) before auth was
    // checked, so 8 KB of `[` aborted the process with a stack overflow.
    const SECRET: &str = "a-secret-that-is-long-enough";
    let mut cfg = config(io);
    cfg.jwt_secret = Some(SECRET.into());
    cfg.allow_anonymous = Some(false);
    let server = start(cfg);
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "bystander", "exp": 4_000_000_000u64}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let bystander_url = format!("{}?token={token}", url(server.local_addr()));
    let (mut bystander, _) = connect_url(&bystander_url).await;
    subscribe(&mut bystander, &["news"]).await;
    let (mut ws, _) = connect(server.local_addr()).await;
    let deep_array = format!(
        r#"{{"type":"publish","channel":"news","data":{}}}"#,
        "[".repeat(4000)
    );
    let deep_object = "{\"a\":".repeat(5000);
    // ~60k levels fit 64 KiB: the deepest a message can be.
    let widest = format!(r#"{{"type":"ping","data":{}"#, "[".repeat(60_000));
    for attack in [deep_array, deep_object, widest] {
        let reply = ask(&mut ws, attack).await;
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["code"], "INVALID_JSON", "{reply}");
    }
    let reply = ask(&mut ws, json!({"type":"ping","ping_id":1}).to_string()).await;
    assert_eq!(reply["type"], "pong", "the connection still works: {reply}");
    // And so does everyone else's.
    server.publish("news", "x", &json!({"ok": true})).unwrap();
    let event = recv(&mut bystander).await;
    assert_eq!(event["data"]["ok"], true);
    server.shutdown();
}

async fn a_wrapping_continuation_length_is_refused_and_the_connection_closed(io: IoBackend) {
    let server = start(config(io));
    let mut raw = RawClient::upgrade(server.local_addr(), "/ws").await;
    raw.read_json().await; // connected
    use tokio::io::AsyncWriteExt;
    // A valid one-byte fragment ("a" under a zero mask), then a continuation claiming
    // 2^64 - 1 bytes; then more data that a buffering server would keep.
    let mut crafted = vec![0x01, 0x81, 0, 0, 0, 0, b'a', 0x80, 0x80 | 127];
    crafted.extend_from_slice(&u64::MAX.to_be_bytes());
    crafted.extend_from_slice(&[0, 0, 0, 0]);
    raw.stream.write_all(&crafted).await.unwrap();
    let _ = raw.stream.write_all(&[0u8; 65536]).await;
    assert_eq!(
        raw.read_close_code().await,
        1002,
        "a 64-bit length with the top bit set"
    );
    raw.expect_eof().await;
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["still-serving"]).await;
    server.shutdown();
}

async fn http_broadcast_data_arrives_byte_for_byte(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["pos"]).await;
    // 1.1099999999999999 and 1.11 are different doubles; a lossy float parser merges them. The
    // integer is beyond 64 bits; the duplicate key and the spacing are the publisher's business.
    let data = r#"{"x":1.1099999999999999, "y":-0.0, "n":123456789012345678901234567890, "k":1, "k":2, "s":"\u00e9"}"#;
    let (status, body) = post_broadcast(
        server.local_addr(),
        &format!(r#"{{"channel":"pos","event_type":"p","data":{data}}}"#),
    );
    assert_eq!(status, 202, "{body}");
    let text = recv_text(&mut ws).await;
    assert!(text.contains(&format!(r#""data":{data}"#)), "{text}");
    // The WebSocket path keeps the same bytes.
    let (mut publisher, _) = connect(server.local_addr()).await;
    use futures_util::SinkExt;
    publisher
        .send(Message::text(format!(
            r#"{{"type":"publish","channel":"pos","data":{data}}}"#
        )))
        .await
        .unwrap();
    loop {
        let text = recv_text(&mut ws).await;
        if text.contains("\"k\":1, \"k\":2") {
            assert!(text.contains(&format!(r#""data":{data}"#)), "{text}");
            break;
        }
    }
    server.shutdown();
}

async fn a_broadcast_bigger_than_its_work_bound_is_refused_whole(io: IoBackend) {
    let mut cfg = config(io);
    cfg.max_http_body_bytes = 2 * 1024 * 1024;
    let server = start(cfg);
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["c0"]).await;
    let channels: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
    let payload = format!("\"{}\"", "x".repeat(1024 * 1024));
    let (status, body) = post_broadcast(
        server.local_addr(),
        &json!({"channels": channels, "data": "PAYLOAD"})
            .to_string()
            .replace("\"PAYLOAD\"", &payload),
    );
    assert_eq!(status, 413, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"], "too_large");
    assert!(err["message"].as_str().unwrap().contains("1000 channels"));
    // Nothing was published: the next event c0 sees is the one sent now.
    let (status, _) = post_broadcast(server.local_addr(), r#"{"channels":["c0","c1"],"data":7}"#);
    assert_eq!(status, 202);
    let event = recv(&mut ws).await;
    assert_eq!(event["data"], 7, "{event}");
    assert_eq!(event["seq"], 1);
    server.shutdown();
}

async fn ambiguous_http_framing_is_refused(io: IoBackend) {
    let server = start(config(io));
    let addr = server.local_addr();
    for framing in [
        "Content-Length: 2\r\nContent-Length: 20",
        "Content-Length: +2",
        "Content-Length: 2, 20",
    ] {
        let resp = raw_http(
            addr,
            format!("POST /api/v1/broadcast HTTP/1.1\r\nHost: t\r\n{framing}\r\n\r\n{{}}")
                .as_bytes(),
        );
        assert!(resp.starts_with("HTTP/1.1 400"), "{framing}: {resp}");
        assert!(resp.contains("application/json"), "{resp}");
    }
    let resp = raw_http(
        addr,
        b"POST /api/v1/broadcast HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 411"), "{resp}");
    let body: Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"], "length_required");
    for upgrade in [
        "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
        "GET /ws HTTP/1.0\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ] {
        let resp = raw_http(addr, upgrade.as_bytes());
        assert!(resp.starts_with("HTTP/1.1 400"), "{upgrade}: {resp}");
    }
    server.shutdown();
}

async fn naming_a_channel_many_times_subscribes_once(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    let names = vec!["a"; 13_000]; // 52 KB: fits the 64 KiB message limit
    let reply = ask(
        &mut ws,
        json!({"type":"subscribe","channels": names}).to_string(),
    )
    .await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    server.shutdown();
}

async fn max_channels_holds_exactly_under_concurrent_creation(io: IoBackend) {
    let mut cfg = config(io);
    cfg.max_channels = 50;
    let server = start(cfg);
    let addr = server.local_addr();
    // 40 connections on both shards each create 10 channels at once: 400 asked, 50 allowed.
    let mut tasks = Vec::new();
    for c in 0..40 {
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = connect(addr).await;
            let names: Vec<String> = (0..10).map(|i| format!("room:{c}-{i}")).collect();
            let reply = ask(
                &mut ws,
                json!({"type":"subscribe","channels": names}).to_string(),
            )
            .await;
            (reply, ws)
        }));
    }
    let mut subscribed = 0;
    let mut keep = Vec::new();
    for t in tasks {
        let (reply, ws) = t.await.unwrap();
        match reply["type"].as_str() {
            Some("subscribed") => subscribed += 1,
            Some("error") => assert_eq!(reply["code"], "LIMIT_EXCEEDED", "{reply}"),
            _ => panic!("{reply}"),
        }
        keep.push(ws);
    }
    assert_eq!(
        subscribed, 5,
        "requests of 10 new channels each against 50: exactly 5 fit (a refused one holds none)"
    );
    server.shutdown();
}

async fn not_json_says_a_json_object_was_expected(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    let reply = ask(&mut ws, "not json".into()).await;
    assert_eq!(reply["code"], "INVALID_JSON");
    assert_eq!(
        reply["message"],
        "message must be a JSON object, got `not` at byte 0"
    );
    let reply = ask(&mut ws, r#"{"type":"ping","type":"auth"}"#.into()).await;
    assert!(
        reply["message"].as_str().unwrap().contains("appears twice"),
        "{reply}"
    );
    server.shutdown();
}

both_backends!(
    deep_json_is_an_error_reply_before_auth_and_the_connection_lives,
    a_wrapping_continuation_length_is_refused_and_the_connection_closed,
    http_broadcast_data_arrives_byte_for_byte,
    a_broadcast_bigger_than_its_work_bound_is_refused_whole,
    ambiguous_http_framing_is_refused,
    naming_a_channel_many_times_subscribes_once,
    max_channels_holds_exactly_under_concurrent_creation,
    not_json_says_a_json_object_was_expected,
);
