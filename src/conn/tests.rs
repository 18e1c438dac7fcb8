//! Deterministic harness: bytes and a fake clock in, bytes out; no sockets.

use super::*;

fn settings() -> ConnSettings {
    ConnSettings {
        max_message_bytes: 1024,
        max_queued_bytes: 4096,
        ping_interval: Duration::from_secs(30),
        pong_timeout: Duration::from_secs(10),
        handshake_timeout: Duration::from_secs(10),
        routes: Routes {
            ws_path: "/ws".into(),
            echo_path: Some("/echo".into()),
            max_body: 1024,
            deflate: true,
        },
    }
}

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

use crate::testing::client_frame;

fn drain(conn: &mut Conn) -> Vec<u8> {
    let mut batch = SendBatch::default();
    conn.poll_transmit(&mut batch);
    let out: Vec<u8> = batch.slices().flatten().copied().collect();
    conn.handle_sent(out.len());
    out
}

fn feed(conn: &mut Conn, bytes: &[u8], now: Instant) -> Vec<String> {
    let mut got = Vec::new();
    let mut data = bytes.to_vec();
    conn.handle_input(&mut data, now, &settings(), &mut |_, ev| match ev {
        AppEvent::Opened { .. } => got.push("opened".to_string()),
        AppEvent::Message(m) => got.push(String::from_utf8(m.to_vec()).unwrap()),
        AppEvent::Http { request: r, .. } => got.push(format!("{} {}", r.method, r.path)),
        AppEvent::Upgrade(_) => {}
    });
    got
}

fn open(now: Instant) -> Conn {
    let mut c = Conn::new(now, &settings(), Admission::Admit);
    assert_eq!(feed(&mut c, UPGRADE.as_bytes(), now), vec!["opened"]);
    let resp = drain(&mut c);
    assert!(resp.starts_with(b"HTTP/1.1 101"));
    c
}

#[test]
fn upgrade_then_message_in_the_same_read_both_arrive() {
    let now = Instant::now();
    let mut c = Conn::new(now, &settings(), Admission::Admit);
    let mut bytes = UPGRADE.as_bytes().to_vec();
    bytes.extend(client_frame(0x81, b"{\"type\":\"ping\"}"));
    assert_eq!(
        feed(&mut c, &bytes, now),
        vec!["opened", "{\"type\":\"ping\"}"]
    );
}

#[test]
fn ping_is_answered_with_pong_of_same_payload() {
    let now = Instant::now();
    let mut c = open(now);
    feed(&mut c, &client_frame(0x89, b"abc"), now);
    assert_eq!(drain(&mut c), vec![0x8A, 3, b'a', b'b', b'c']);
}

#[test]
fn peer_close_is_echoed_and_then_done() {
    let now = Instant::now();
    let mut c = open(now);
    feed(&mut c, &client_frame(0x88, &1000u16.to_be_bytes()), now);
    assert!(!c.is_done(), "close reply still queued");
    assert_eq!(drain(&mut c), vec![0x88, 2, 0x03, 0xE8]);
    assert!(c.is_done());
}

#[test]
fn server_pings_and_closes_without_pong() {
    let t0 = Instant::now();
    let mut c = open(t0);
    let s = settings();
    c.handle_timeout(t0 + s.ping_interval, &s);
    assert_eq!(drain(&mut c), vec![0x89, 0]);
    c.handle_timeout(t0 + s.ping_interval + s.pong_timeout, &s);
    assert_eq!(c.close_reason(), Some(CloseReason::PongTimeout));
    let out = drain(&mut c);
    assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xF0]);
}

#[test]
fn pong_resets_the_deadline() {
    let t0 = Instant::now();
    let mut c = open(t0);
    let s = settings();
    c.handle_timeout(t0 + s.ping_interval, &s);
    feed(&mut c, &client_frame(0x8A, b""), t0 + s.ping_interval);
    c.handle_timeout(t0 + s.ping_interval + s.pong_timeout, &s);
    assert!(c.is_open());
}

#[test]
fn handshake_timeout_ends_a_silent_connection() {
    let t0 = Instant::now();
    let mut c = Conn::new(t0, &settings(), Admission::Admit);
    c.handle_timeout(t0 + Duration::from_secs(11), &settings());
    assert!(c.is_done());
    assert_eq!(c.close_reason(), Some(CloseReason::HandshakeTimeout));
}

#[test]
fn full_server_upgrades_then_sends_its_goodbye_and_closes_1013() {
    let now = Instant::now();
    let goodbye = server_frame(Kind::Text, br#"{"type":"reconnect","after_ms":1500}"#);
    let mut c = Conn::new(
        now,
        &settings(),
        Admission::Full {
            goodbye: goodbye.clone(),
        },
    );
    let mut opened = false;
    c.handle_input(
        &mut UPGRADE.as_bytes().to_vec(),
        now,
        &settings(),
        &mut |_, e| {
            opened |= matches!(e, AppEvent::Opened { .. } | AppEvent::Upgrade(_));
        },
    );
    assert!(
        !opened,
        "the application never sees a connection it has no room for"
    );
    let out = drain(&mut c);
    assert!(out.starts_with(b"HTTP/1.1 101"));
    let frames = &out[out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert!(frames.starts_with(&goodbye));
    let close = &frames[goodbye.len()..];
    assert_eq!(close[0], 0x88);
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1013);
    assert_eq!(c.close_reason(), Some(CloseReason::Rejected));
    c.handle_timeout(now + Duration::from_secs(3), &settings());
    assert!(
        c.is_done(),
        "a peer that never answers the close is dropped"
    );
}

#[test]
fn slow_consumer_is_closed_with_1008_behind_what_was_queued() {
    let now = Instant::now();
    let mut c = open(now);
    let s = settings();
    let frame = Bytes::from(vec![0u8; 1000]);
    let mut refused = 0;
    for _ in 0..10 {
        if c.push_broadcast(frame.clone(), &s, now).is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 1, "closing stops further queuing");
    assert_eq!(c.close_reason(), Some(CloseReason::SlowConsumer));
    let out = drain(&mut c);
    // `open` drained the 101: what is left is every frame that fitted the cap before the one
    // that did not (which closed the connection), then the 17-byte close frame.
    let kept = s.max_queued_bytes / frame.len();
    assert_eq!(out.len(), kept * frame.len() + 17, "queued frames are kept");
    assert!(out[..out.len() - 17].iter().all(|&b| b == 0));
    let close = &out[out.len() - 17..];
    assert_eq!(&close[..4], &[0x88, 15, 0x03, 0xF0]); // 1008 "slow consumer"
}

#[test]
fn echo_endpoint_returns_messages() {
    let now = Instant::now();
    let mut c = Conn::new(now, &settings(), Admission::Admit);
    feed(&mut c, UPGRADE.replace("/ws", "/echo").as_bytes(), now);
    drain(&mut c);
    feed(&mut c, &client_frame(0x82, &[1, 2, 3]), now);
    assert_eq!(drain(&mut c), vec![0x82, 3, 1, 2, 3]);
}

#[test]
fn protocol_violation_closes_with_its_code() {
    let now = Instant::now();
    let mut c = open(now);
    feed(&mut c, &[0x81, 0x01, b'x'], now);
    assert_eq!(c.close_reason(), Some(CloseReason::ProtocolError));
    let out = drain(&mut c);
    assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xEA]);
}

#[test]
fn pipelined_http_requests_are_each_handed_up_in_order() {
    let now = Instant::now();
    let mut c = Conn::new(now, &settings(), Admission::Admit);
    let two = "GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /c";
    assert_eq!(feed(&mut c, two.as_bytes(), now), vec!["GET /a", "POST /b"]);
    assert_eq!(
        feed(&mut c, b" HTTP/1.1\r\nConnection: close\r\n\r\n", now),
        vec!["GET /c"]
    );
    assert!(c.wants_write_shutdown(), "response out, so half-close now");
    c.handle_write_shutdown();
    assert!(
        !c.wants_write_shutdown() && !c.is_done(),
        "lingers for the peer's EOF"
    );
    c.handle_peer_gone();
    assert!(c.is_done());
    assert_eq!(c.close_reason(), Some(CloseReason::HttpDone));
}

#[test]
fn idle_keep_alive_http_connection_ends_after_the_request_timeout() {
    let t0 = Instant::now();
    let mut c = Conn::new(t0, &settings(), Admission::Admit);
    feed(&mut c, b"GET /a HTTP/1.1\r\n\r\n", t0);
    let s = settings();
    c.handle_timeout(t0 + s.handshake_timeout - Duration::from_millis(1), &s);
    assert!(!c.is_done());
    c.handle_timeout(t0 + s.handshake_timeout, &s);
    assert_eq!(c.close_reason(), Some(CloseReason::HttpDone));
}

#[test]
fn application_can_refuse_an_upgrade_before_the_101() {
    let now = Instant::now();
    let mut c = Conn::new(now, &settings(), Admission::Admit);
    let mut data = UPGRADE.as_bytes().to_vec();
    c.handle_input(&mut data, now, &settings(), &mut |_, ev| {
        if let AppEvent::Upgrade(r) = ev {
            r.refuse(401, "bad token");
        }
    });
    let out = drain(&mut c);
    assert!(
        out.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(!c.is_native());
}

#[test]
fn a_failed_connection_half_closes_after_its_close_frame_instead_of_waiting() {
    // Autobahn's close-behaviour checks: after a 1002/1007 the server closes TCP at once
    // (close frame, then FIN) rather than waiting 2 s for a close reply it cannot frame.
    let now = Instant::now();
    let mut c = open(now);
    feed(&mut c, &client_frame(0x81, &[0xC3, 0x28]), now); // invalid UTF-8
    assert_eq!(c.close_reason(), Some(CloseReason::ProtocolError));
    assert!(!c.wants_write_shutdown(), "the close frame goes out first");
    let out = drain(&mut c);
    assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xEF]); // 1007
    assert!(c.wants_write_shutdown());
    c.handle_write_shutdown();
    // The client's close reply is read and dropped; its EOF ends the connection.
    feed(&mut c, &client_frame(0x88, &[0x03, 0xE8]), now);
    assert!(drain(&mut c).is_empty());
    c.handle_peer_gone();
    assert!(c.is_done());
    assert_eq!(c.close_reason(), Some(CloseReason::ProtocolError));
}

#[test]
fn a_failed_connection_whose_peer_never_closes_ends_at_the_close_deadline() {
    let now = Instant::now();
    let mut c = open(now);
    feed(&mut c, &[0x81, 0x01, b'x'], now); // unmasked
    drain(&mut c);
    c.handle_write_shutdown();
    let s = settings();
    c.handle_timeout(
        now + Duration::from_millis(CLOSE_HANDSHAKE_TIMEOUT_MS - 1),
        &s,
    );
    assert!(!c.is_done());
    c.handle_timeout(now + Duration::from_millis(CLOSE_HANDSHAKE_TIMEOUT_MS), &s);
    assert!(c.is_done());
}
