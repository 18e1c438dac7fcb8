//! Fan-out through the distributor and frame clock to many real clients, on both backends.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use std::time::{Duration, Instant};

use common::*;
use framecast::{IoBackend, ServerHandle};
use serde_json::json;
use tokio::io::AsyncWriteExt;

/// Publishes events `{"i": 1..=count}` on `channel` (pausing briefly every tenth) and checks
/// that every client reads all of them, each with `seq` and `data.i` equal to its number.
async fn publish_and_expect_all_in_order(
    server: &ServerHandle,
    channel: &str,
    clients: Vec<Ws>,
    count: u64,
) {
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                for expected in 1..=count {
                    let ev = recv(&mut ws).await;
                    assert_eq!(ev["seq"], expected, "gap or reorder");
                    assert_eq!(ev["data"]["i"], expected);
                }
            })
        })
        .collect();
    for i in 1..=count {
        server.publish(channel, "tick", &json!({ "i": i })).unwrap();
        if i % (count / 10).max(1) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for r in readers {
        r.await.expect("every client saw every event in order");
    }
}

async fn two_hundred_clients_over_two_shards_get_1000_events_in_order(io: IoBackend) {
    let server = start(config(io));
    let addr = server.local_addr();
    let mut clients = Vec::new();
    for _ in 0..200 {
        let (mut ws, _) = connect(addr).await;
        subscribe(&mut ws, &["load"]).await;
        clients.push(ws);
    }
    let per_shard = server.connections_per_shard();
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "connections spread over shards: {per_shard:?}"
    );
    assert_eq!(per_shard.iter().sum::<u64>(), 200);
    publish_and_expect_all_in_order(&server, "load", clients, 1000).await;
}

async fn a_client_that_never_reads_is_dropped_as_slow_while_others_get_everything(io: IoBackend) {
    let mut cfg = config(io);
    cfg.max_queued_bytes = 64 * 1024;
    let server = start(cfg);
    let addr = server.local_addr();
    // The slow client: a raw socket with a tiny receive buffer that never reads after subscribing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut slow = RawClient::from_stream(stream).await;
    slow.read_json().await;
    let sub = br#"{"type":"subscribe","channels":["firehose"]}"#;
    slow.send_frame(0x81, sub, true).await;
    assert_eq!(slow.read_json().await["type"], "subscribed");
    let (mut good, _) = connect(addr).await;
    subscribe(&mut good, &["firehose"]).await;
    // The reading client really keeps up, however the host schedules this test: at most four
    // events (32 KiB, half its 64 KiB cap) are ever published and not yet read by it.
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
    let read = window.clone();
    let reader = tokio::spawn(async move {
        for expected in 1..=1000u64 {
            let ev = recv(&mut good).await;
            assert_eq!(ev["seq"], expected);
            read.add_permits(1);
        }
    });
    let payload = "x".repeat(8 * 1024);
    // ~8 MiB in all: more than the kernel's largest autotuned send buffer (4 MiB here), so the
    // client that never reads must pass its cap.
    for _ in 0..1000 {
        let permit = tokio::time::timeout(DEADLINE, window.acquire())
            .await
            .expect("the reader keeps reading")
            .unwrap();
        permit.forget();
        server.publish("firehose", "blob", &payload).unwrap();
    }
    reader.await.expect("the reading client got every event");
    let deadline = Instant::now() + DEADLINE;
    let slow_count = || {
        server
            .shard_stats()
            .iter()
            .map(|s| s.slow_consumers.load(std::sync::atomic::Ordering::Relaxed))
            .sum::<u64>()
    };
    while slow_count() == 0 {
        assert!(Instant::now() < deadline, "slow consumer was never dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(slow_count(), 1);
    slow.stream.shutdown().await.ok();
}

async fn events_published_together_share_a_frame_and_frames_are_16ms_apart(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["clock"]).await;
    let rounds = 90u64;
    let publisher = {
        let handle = std::sync::Arc::new(server);
        let h = handle.clone();
        let task = tokio::task::spawn_blocking(move || {
            for r in 0..rounds {
                for k in 0..3 {
                    h.publish("clock", "t", &json!({"r": r, "k": k})).unwrap();
                }
                std::thread::sleep(Duration::from_millis(16));
            }
        });
        (handle, task)
    };
    let mut frames_of_round = vec![Vec::new(); rounds as usize];
    let mut first_seen: Vec<(u64, Instant)> = Vec::new();
    for _ in 0..rounds * 3 {
        let ev = recv(&mut ws).await;
        let frame = ev["frame"].as_u64().unwrap();
        frames_of_round[ev["data"]["r"].as_u64().unwrap() as usize].push(frame);
        if first_seen.last().is_none_or(|&(f, _)| f != frame) {
            assert!(
                first_seen.last().is_none_or(|&(f, _)| frame > f),
                "frames increase"
            );
            first_seen.push((frame, Instant::now()));
        }
    }
    publisher.1.await.unwrap();
    let together = frames_of_round
        .iter()
        .filter(|f| f.iter().all(|&x| x == f[0]))
        .count();
    assert!(
        together as u64 >= rounds * 9 / 10,
        "only {together}/{rounds} rounds shared one frame"
    );
    let (f0, t0) = first_seen[0];
    let (f1, t1) = *first_seen.last().unwrap();
    assert!(f1 - f0 >= 60, "spanned {} ticks", f1 - f0);
    let per_frame = (t1 - t0).as_secs_f64() * 1000.0 / (f1 - f0) as f64;
    assert!(
        (12.0..22.0).contains(&per_frame),
        "{per_frame:.2} ms per frame"
    );
}

async fn immediate_mode_delivers_without_a_clock(io: IoBackend) {
    let mut cfg = config(io);
    cfg.tick_hz = 0;
    let server = start(cfg);
    let (mut ws, hello) = connect(server.local_addr()).await;
    assert_eq!(hello["tick_hz"], 0);
    subscribe(&mut ws, &["now"]).await;
    for i in 1..=50u64 {
        server.publish("now", "x", &i).unwrap();
    }
    let mut last_frame = 0;
    for i in 1..=50u64 {
        let ev = recv(&mut ws).await;
        assert_eq!(ev["seq"], i);
        let frame = ev["frame"].as_u64().unwrap();
        assert!(frame >= last_frame);
        last_frame = frame;
    }
}

async fn publisher_receives_its_own_event_when_subscribed(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["self"]).await;
    send(
        &mut ws,
        json!({"type":"publish","channel":"self","event_type":"e","data":"mine"}),
    )
    .await;
    let ev = recv(&mut ws).await;
    assert_eq!(ev["data"], "mine");
    assert_eq!(ev["seq"], 1);
}

async fn more_subscribers_on_one_shard_than_one_turn_sends_all_get_every_event_in_order(
    io: IoBackend,
) {
    let mut cfg = config(io);
    cfg.shards = 1;
    let server = start(cfg);
    let addr = server.local_addr();
    let subscribers = framecast::internals::limits::SENDS_PER_TURN * 2 + 44;
    let mut clients = Vec::new();
    for _ in 0..subscribers {
        let (mut ws, _) = connect(addr).await;
        subscribe(&mut ws, &["wide"]).await;
        clients.push(ws);
    }
    publish_and_expect_all_in_order(&server, "wide", clients, 100).await;
}

both_backends!(
    more_subscribers_on_one_shard_than_one_turn_sends_all_get_every_event_in_order,
    two_hundred_clients_over_two_shards_get_1000_events_in_order,
    a_client_that_never_reads_is_dropped_as_slow_while_others_get_everything,
    events_published_together_share_a_frame_and_frames_are_16ms_apart,
    immediate_mode_delivers_without_a_clock,
    publisher_receives_its_own_event_when_subscribed,
);
