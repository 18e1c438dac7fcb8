//! Connection and server lifecycle over real sockets: shutdown, caps and timeouts, on both
//! backends.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use std::time::{Duration, Instant};

use common::*;
use framecast::IoBackend;

async fn shutdown_sends_1001_to_every_client(io: IoBackend) {
    let server = start(config(io));
    let (mut a, _) = connect(server.local_addr()).await;
    let (mut b, _) = connect(server.local_addr()).await;
    let stopping = tokio::task::spawn_blocking(move || server.shutdown());
    assert_eq!(close_code(&mut a).await, 1001);
    assert_eq!(close_code(&mut b).await, 1001);
    tokio::time::timeout(DEADLINE, stopping)
        .await
        .expect("shutdown finishes")
        .unwrap();
}

async fn shutdown_stops_accepting(io: IoBackend) {
    let server = start(config(io));
    let addr = server.local_addr();
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .unwrap();
    assert!(tokio_tungstenite::connect_async(url(addr)).await.is_err());
}

async fn connections_beyond_the_cap_are_told_to_come_back_and_closed_1013(io: IoBackend) {
    let mut cfg = config(io);
    cfg.max_connections = 2;
    let server = start(cfg);
    let (_a, _) = connect(server.local_addr()).await;
    let (_b, _) = connect(server.local_addr()).await;
    let (mut c, _) = tokio_tungstenite::connect_async(url(server.local_addr()))
        .await
        .expect("the upgrade completes");
    assert_eq!(recv(&mut c).await["type"], "reconnect");
    assert_eq!(close_code(&mut c).await, 1013);
}

async fn slot_frees_when_a_client_leaves(io: IoBackend) {
    let mut cfg = config(io);
    cfg.max_connections = 1;
    let server = start(cfg);
    let (mut a, _) = connect(server.local_addr()).await;
    a.close(None).await.unwrap();
    drop(a);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (mut ws, _) = tokio_tungstenite::connect_async(url(server.local_addr()))
            .await
            .expect("a full server still upgrades");
        if recv(&mut ws).await["type"] == "connected" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed slot was never reusable"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn silent_connection_is_dropped_after_handshake_timeout(io: IoBackend) {
    let mut cfg = config(io);
    cfg.handshake_timeout = Duration::from_millis(300);
    let server = start(cfg);
    let started = Instant::now();
    let mut c = RawClient::send_request(server.local_addr(), "GET /ws HTTP/1.1\r\n").await;
    c.expect_eof().await;
    assert!(started.elapsed() >= Duration::from_millis(250));
}

async fn client_that_ignores_pings_is_closed_after_pong_timeout(io: IoBackend) {
    let mut cfg = config(io);
    cfg.ping_interval = Duration::from_millis(200);
    cfg.pong_timeout = Duration::from_millis(300);
    let server = start(cfg);
    let mut c = RawClient::upgrade(server.local_addr(), "/ws").await;
    // Read without ever answering: a ping arrives, then the close.
    let mut saw_ping = false;
    loop {
        let (first, payload) = c.read_frame().await.expect("frames until close");
        match first & 0x0f {
            0x9 => saw_ping = true,
            0x8 => {
                assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1008);
                break;
            }
            _ => {}
        }
    }
    assert!(saw_ping);
}

async fn client_that_answers_pings_stays_connected(io: IoBackend) {
    let mut cfg = config(io);
    cfg.ping_interval = Duration::from_millis(100);
    cfg.pong_timeout = Duration::from_millis(200);
    let server = start(cfg);
    let (mut ws, _) = connect(server.local_addr()).await;
    // tokio-tungstenite answers pings while we read; keep reading for 1 s of pings.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        common::send(&mut ws, serde_json::json!({"type":"ping"})).await;
        assert_eq!(recv(&mut ws).await["type"], "pong");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

both_backends!(
    shutdown_sends_1001_to_every_client,
    shutdown_stops_accepting,
    connections_beyond_the_cap_are_told_to_come_back_and_closed_1013,
    slot_frees_when_a_client_leaves,
    silent_connection_is_dropped_after_handshake_timeout,
    client_that_ignores_pings_is_closed_after_pong_timeout,
    client_that_answers_pings_stays_connected,
);
