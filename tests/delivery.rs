//! Delivery semantics over real sockets: history and recovery (also onto another shard and
//! across a restart), snapshots, conflation, per-client step-down with gap notices, max_hz,
//! volatile drops, reconnect hints on drain, and server time for clock-offset estimates.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use std::time::{Duration, Instant};

use common::*;
use framecast::{Config, IoBackend, ServerHandle};
use serde_json::{json, Value};
use tokio::net::TcpSocket;

fn with_namespaces(io: IoBackend, toml: &str) -> Config {
    let mut c = config(io);
    c.apply_toml(toml, "test").unwrap();
    c
}

const CHAT: &str = "[namespaces.chat]\nhistory_size = 1000\n";

/// Reads until a message of `kind`, returning it (other messages are skipped).
async fn recv_type(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let m = recv(ws).await;
        if m["type"] == kind {
            return m;
        }
    }
}

async fn subscribe_since(ws: &mut Ws, channel: &str, seq: u64, epoch: &str) -> Value {
    send(
        ws,
        json!({"type":"subscribe","channels":[channel],"since":{channel:{"seq":seq,"epoch":epoch}}}),
    )
    .await;
    recv_type(ws, "subscribed").await
}

/// Receives `n` events and returns their seqs.
async fn event_seqs(ws: &mut Ws, n: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(n);
    while seqs.len() < n {
        let m = recv(ws).await;
        assert_eq!(m["type"], "event", "{m}");
        seqs.push(m["seq"].as_u64().unwrap());
    }
    seqs
}

fn publish_n(server: &ServerHandle, channel: &str, from: u64, n: u64) {
    for i in from..from + n {
        server.publish(channel, "msg", &json!({"n": i})).unwrap();
    }
}

async fn recovery_replays_exactly_the_missed_events_then_live_ones(io: IoBackend) {
    let server = start(with_namespaces(io, CHAT));
    let (mut a, _) = connect(server.local_addr()).await;
    let reply = subscribe(&mut a, &["chat:room"]).await;
    let epoch = reply["positions"]["chat:room"]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(reply["positions"]["chat:room"]["seq"], 0);
    publish_n(&server, "chat:room", 0, 3);
    assert_eq!(event_seqs(&mut a, 3).await, vec![1, 2, 3]);
    drop(a);

    publish_n(&server, "chat:room", 3, 500);
    let (mut b, _) = connect(server.local_addr()).await;
    let reply = subscribe_since(&mut b, "chat:room", 3, &epoch).await;
    assert_eq!(reply["recovered"], true, "{reply}");
    assert_eq!(reply["positions"]["chat:room"]["epoch"], epoch.as_str());
    publish_n(&server, "chat:room", 503, 5);
    let seqs = event_seqs(&mut b, 505).await;
    assert_eq!(
        seqs,
        (4..=508).collect::<Vec<u64>>(),
        "no gap, no duplicate"
    );
    server.shutdown();
}

async fn recovery_works_when_the_client_returns_on_another_shard(io: IoBackend) {
    let server = start(with_namespaces(io, CHAT));
    let addr = server.local_addr();
    let shard_of_next = |before: &[u64], after: &[u64]| {
        (0..before.len())
            .find(|&i| after[i] > before[i])
            .expect("a shard gained")
    };
    let before = server.connections_per_shard();
    let (mut a, _) = connect(addr).await;
    let first_shard = shard_of_next(&before, &server.connections_per_shard());
    let epoch = subscribe(&mut a, &["chat:x"]).await["positions"]["chat:x"]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    publish_n(&server, "chat:x", 0, 1);
    event_seqs(&mut a, 1).await;
    let mut parked = Vec::new();
    let mut b = loop {
        let before = server.connections_per_shard();
        let (ws, _) = connect(addr).await;
        if shard_of_next(&before, &server.connections_per_shard()) != first_shard {
            break ws;
        }
        parked.push(ws);
        assert!(parked.len() < 64, "never landed on another shard");
    };
    drop(a);
    publish_n(&server, "chat:x", 1, 50);
    let reply = subscribe_since(&mut b, "chat:x", 1, &epoch).await;
    assert_eq!(reply["recovered"], true, "{reply}");
    assert_eq!(event_seqs(&mut b, 50).await, (2..=51).collect::<Vec<u64>>());
    server.shutdown();
}

async fn recovery_is_refused_whole_when_missed_events_were_pushed_out(io: IoBackend) {
    let server = start(with_namespaces(
        io,
        "[namespaces.short]\nhistory_size = 10\n",
    ));
    let (mut a, _) = connect(server.local_addr()).await;
    let epoch = subscribe(&mut a, &["short:x"]).await["positions"]["short:x"]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    publish_n(&server, "short:x", 0, 50);
    assert_eq!(event_seqs(&mut a, 50).await.last(), Some(&50));
    let (mut b, _) = connect(server.local_addr()).await;
    let reply = subscribe_since(&mut b, "short:x", 5, &epoch).await;
    assert_eq!(reply["recovered"], false, "events 6..40 are gone: {reply}");
    assert_eq!(reply["positions"]["short:x"]["seq"], 50);
    server.publish("short:x", "msg", &json!("next")).unwrap();
    assert_eq!(
        event_seqs(&mut b, 1).await,
        vec![51],
        "nothing replayed, live resumes"
    );
    let (mut c, _) = connect(server.local_addr()).await;
    let reply = subscribe_since(&mut c, "short:x", 45, &epoch).await;
    assert_eq!(reply["recovered"], true, "45.. is still held: {reply}");
    assert_eq!(event_seqs(&mut c, 6).await, (46..=51).collect::<Vec<u64>>());
    server.shutdown();
}

async fn a_recovery_larger_than_the_client_queue_cap_is_replayed_whole(io: IoBackend) {
    let mut cfg = with_namespaces(io, CHAT);
    cfg.max_queued_bytes = 64 * 1024;
    let server = start(cfg);
    let (mut a, _) = connect(server.local_addr()).await;
    let epoch = subscribe(&mut a, &["chat:big"]).await["positions"]["chat:big"]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    drop(a);
    let pad = "x".repeat(2048);
    for i in 0..100 {
        server
            .publish("chat:big", "msg", &json!({"i": i, "pad": pad}))
            .unwrap();
    }
    // A client can only have seen dispatched events: wait until all 100 are.
    let state = server.state();
    let waiting = Instant::now();
    while !state
        .channels()
        .iter()
        .any(|c| &*c.name == "chat:big" && c.last_seq == 100)
    {
        assert!(waiting.elapsed() < DEADLINE, "events never dispatched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut ws, _) = connect(server.local_addr()).await;
    let reply = subscribe_since(&mut ws, "chat:big", 0, &epoch).await;
    assert_eq!(reply["recovered"], true, "{reply}");
    server.publish("chat:big", "msg", &json!("live")).unwrap();
    assert_eq!(
        event_seqs(&mut ws, 101).await,
        (1..=101).collect::<Vec<u64>>(),
        "200 KiB replayed through a 64 KiB queue cap, then live, without a close"
    );
    server.shutdown();
}

async fn status_and_metrics_report_lateness_and_delivery_figures(io: IoBackend) {
    let server = start(config(io));
    let base = format!("http://{}", server.local_addr());
    let status: Value = tokio::task::spawn_blocking({
        let url = format!("{base}/api/v1/status");
        move || {
            ureq::get(&url)
                .call()
                .unwrap()
                .body_mut()
                .read_json()
                .unwrap()
        }
    })
    .await
    .unwrap();
    for key in [
        "last_lateness_us",
        "max_lateness_us",
        "merged_ticks",
        "host_degrade_level",
    ] {
        assert!(status["frame_clock"][key].is_u64(), "{key} in {status}");
    }
    assert!(status["delivery"]["gap_notices_total"].is_u64(), "{status}");
    let metrics = tokio::task::spawn_blocking(move || {
        ureq::get(&format!("{base}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    })
    .await
    .unwrap();
    for name in [
        "framecast_tick_lateness_seconds",
        "framecast_host_degrade_level",
        "framecast_degraded_connections",
        "framecast_recoveries_total",
    ] {
        assert!(metrics.contains(&format!("\n{name} ")), "{name} missing");
    }
    server.shutdown();
}

const STATE: &str = "[namespaces.state]\nhistory_size = 100\nsnapshot = true\n";

async fn epoch_change_after_restart_gives_recovered_false_and_the_snapshot(io: IoBackend) {
    let first = start(with_namespaces(io, STATE));
    let (mut a, _) = connect(first.local_addr()).await;
    let old_epoch = subscribe(&mut a, &["state:doc"]).await["positions"]["state:doc"]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    first.publish("state:doc", "doc", &json!({"v": 1})).unwrap();
    event_seqs(&mut a, 1).await;
    drop(a);
    first.shutdown();

    let second = start(with_namespaces(io, STATE));
    let (mut watcher, _) = connect(second.local_addr()).await;
    subscribe(&mut watcher, &["state:doc"]).await;
    second
        .publish("state:doc", "doc", &json!({"v": 2}))
        .unwrap();
    event_seqs(&mut watcher, 1).await;

    let (mut b, _) = connect(second.local_addr()).await;
    let reply = subscribe_since(&mut b, "state:doc", 1, &old_epoch).await;
    assert_eq!(reply["recovered"], false, "{reply}");
    assert_ne!(reply["positions"]["state:doc"]["epoch"], old_epoch.as_str());
    let snap = recv(&mut b).await;
    assert_eq!(snap["snapshot"], true, "{snap}");
    assert_eq!(snap["data"]["v"], 2);
    second.shutdown();
}

async fn a_new_subscriber_gets_the_snapshot_per_key_first_then_deltas(io: IoBackend) {
    let server = start(with_namespaces(io, "[namespaces.pos]\nsnapshot = true\n"));
    let (mut watcher, _) = connect(server.local_addr()).await;
    subscribe(&mut watcher, &["pos:world"]).await;
    for (key, v) in [("a", 1), ("b", 1), ("a", 2)] {
        server
            .publish_keyed("pos:world", "move", key, &json!({"v": v}))
            .unwrap();
    }
    event_seqs(&mut watcher, 3).await;

    let (mut late, _) = connect(server.local_addr()).await;
    subscribe(&mut late, &["pos:world"]).await;
    let first = recv(&mut late).await;
    let second = recv(&mut late).await;
    assert_eq!(
        (&first["key"], &first["seq"], &first["snapshot"]),
        (&json!("b"), &json!(2), &json!(true))
    );
    assert_eq!(
        (&second["key"], &second["data"]["v"], &second["snapshot"]),
        (&json!("a"), &json!(2), &json!(true))
    );
    server
        .publish_keyed("pos:world", "move", "b", &json!({"v": 3}))
        .unwrap();
    let live = recv(&mut late).await;
    assert_eq!(live["seq"], 4);
    assert!(live.get("snapshot").is_none(), "{live}");
    server.shutdown();
}

async fn a_snapshot_event_is_the_event_live_subscribers_saw_marked_as_snapshot(io: IoBackend) {
    let server = start(with_namespaces(io, "[namespaces.pos]\nsnapshot = true\n"));
    let (mut watcher, _) = connect(server.local_addr()).await;
    subscribe(&mut watcher, &["pos:world"]).await;
    server
        .publish_keyed("pos:world", "move", "a", &json!({"v": 1}))
        .unwrap();
    let mut seen = recv(&mut watcher).await;
    // Join in a later tick (and millisecond) than the one that carried the event.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (mut late, _) = connect(server.local_addr()).await;
    subscribe(&mut late, &["pos:world"]).await;
    let snap = recv(&mut late).await;
    seen["snapshot"] = json!(true);
    assert_eq!(
        snap, seen,
        "same seq, frame and timestamp as when it was live"
    );
    server.shutdown();
}

const CONFLATED: &str = "[namespaces.pos]\ndelivery = \"conflated\"\n";

async fn conflation_delivers_only_the_newest_per_key_per_tick(io: IoBackend) {
    let server = start(with_namespaces(io, CONFLATED));
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["pos:w"]).await;
    for i in 0..=200 {
        let key = if i % 2 == 0 { "a" } else { "b" };
        server
            .publish_keyed("pos:w", "move", key, &json!({"i": i}))
            .unwrap();
    }
    let mut per_frame: std::collections::HashMap<(u64, String), u32> = Default::default();
    let mut newest: std::collections::HashMap<String, u64> = Default::default();
    let mut received = 0;
    while newest.get("a") != Some(&200) || newest.get("b") != Some(&199) {
        let m = recv(&mut ws).await;
        assert_eq!(m["type"], "event", "{m}");
        let key = m["key"].as_str().unwrap().to_string();
        *per_frame
            .entry((m["frame"].as_u64().unwrap(), key.clone()))
            .or_default() += 1;
        newest.insert(key, m["data"]["i"].as_u64().unwrap());
        received += 1;
    }
    assert!(
        per_frame.values().all(|&n| n == 1),
        "one event per key per tick"
    );
    assert!(received < 201, "conflated: {received} of 201 sent");
    server.shutdown();
}

/// A raw WebSocket client whose socket takes little in the kernel, so a pause in reading
/// backs up into the server's queue quickly.
async fn small_window_client(addr: std::net::SocketAddr) -> RawClient {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut c = RawClient::from_stream(stream).await;
    let hello = c.read_json().await;
    assert_eq!(hello["type"], "connected");
    c
}

/// Sends a subscribe from a raw client and returns the `subscribed` reply.
async fn raw_subscribe(c: &mut RawClient, body: Value) -> Value {
    c.send_frame(0x81, body.to_string().as_bytes(), true).await;
    loop {
        let m = c.read_json().await;
        if m["type"] == "subscribed" {
            return m;
        }
    }
}

/// Publishes one event of `size` bytes every `every` until `stop` is set.
fn publisher(
    server: &ServerHandle,
    channel: &'static str,
    size: usize,
    every: Duration,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let state = server.ingress();
    let pad = "x".repeat(size);
    let handle = std::thread::spawn(move || {
        let mut i = 0u64;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = state.publish_json(
                channel,
                "state",
                json!({"i": i, "pad": pad}).to_string().into_bytes(),
            );
            i += 1;
            std::thread::sleep(every);
        }
    });
    (stop, handle)
}

async fn a_paused_reader_is_stepped_down_told_of_gaps_and_returns_to_full_rate(io: IoBackend) {
    let mut cfg = with_namespaces(io, CONFLATED);
    cfg.tick_hz = 100;
    cfg.max_queued_bytes = 1024 * 1024;
    let server = start(cfg);
    let mut c = small_window_client(server.local_addr()).await;
    raw_subscribe(&mut c, json!({"type":"subscribe","channels":["pos:big"]})).await;
    let (stop, publishing) = publisher(&server, "pos:big", 32 * 1024, Duration::from_millis(3));
    let state = server.state();
    // Pause: read nothing until the server has stepped this client down.
    let paused = Instant::now();
    while state.totals().degraded == 0 {
        assert!(paused.elapsed() < DEADLINE, "never stepped down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Resume: read steadily (first what the kernel buffered at full rate); expect gap
    // notices, then, once drained, a run of full-rate ticks.
    let mut gaps = 0;
    let mut run = 0;
    let mut last_frame = 0;
    let resumed = Instant::now();
    while run < 30 {
        assert!(
            resumed.elapsed() < Duration::from_secs(20),
            "no full-rate run after resuming (gaps seen: {gaps})"
        );
        let m = c.read_json().await;
        match m["type"].as_str() {
            Some("gap") => {
                gaps += 1;
                assert!(m["skipped"].as_u64().unwrap() > 0, "{m}");
                assert!(m["from_seq"].as_u64() <= m["to_seq"].as_u64(), "{m}");
                run = 0;
            }
            Some("event") => {
                let frame = m["frame"].as_u64().unwrap();
                run = if gaps > 0 && frame == last_frame + 1 {
                    run + 1
                } else {
                    0
                };
                last_frame = frame;
            }
            _ => {}
        }
    }
    assert!(gaps > 0, "a stepped-down client is told what it skipped");
    assert_eq!(state.totals().degraded, 0, "stepped back up after draining");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publishing.join().unwrap();
    server.shutdown();
}

async fn a_reliable_client_over_its_queue_cap_is_closed_and_recovers_everything(io: IoBackend) {
    let mut cfg = with_namespaces(io, "[namespaces.log]\nhistory_size = 5000\n");
    cfg.max_queued_bytes = 256 * 1024;
    let server = start(cfg);
    let mut c = small_window_client(server.local_addr()).await;
    let joined = raw_subscribe(&mut c, json!({"type":"subscribe","channels":["log:x"]})).await;
    let epoch = joined["positions"]["log:x"]["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    let state = server.state();
    let (stop, publishing) = publisher(&server, "log:x", 8 * 1024, Duration::from_millis(2));
    let paused = Instant::now();
    while state.totals().slow_consumers == 0 {
        assert!(
            paused.elapsed() < DEADLINE,
            "never closed as a slow consumer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publishing.join().unwrap();
    server.publish("log:x", "end", &json!(null)).unwrap();
    // Read what was sent before the close, in order, then the close (1008, or just the end of
    // the stream when the close frame could not be written within the close timeout).
    let mut last = 0;
    while let Some((first, payload)) = c.read_frame().await {
        if first & 0x0f == 0x8 {
            assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1008);
            break;
        }
        let m: Value = serde_json::from_slice(&payload).unwrap();
        if m["type"] == "event" {
            let seq = m["seq"].as_u64().unwrap();
            assert_eq!(seq, last + 1, "in order before the close");
            last = seq;
        }
    }
    let (mut again, _) = connect(server.local_addr()).await;
    let reply = subscribe_since(&mut again, "log:x", last, &epoch).await;
    assert_eq!(reply["recovered"], true, "{reply}");
    loop {
        let m = recv(&mut again).await;
        assert_eq!(m["seq"].as_u64(), Some(last + 1), "{m}");
        last += 1;
        if m["event_type"] == "end" {
            break;
        }
    }
    server.shutdown();
}

async fn max_hz_caps_the_rate_of_a_conflated_subscription(io: IoBackend) {
    let server = start(with_namespaces(io, CONFLATED));
    let (mut ws, _) = connect(server.local_addr()).await;
    send(
        &mut ws,
        json!({"type":"subscribe","channels":["pos:slow"],"max_hz":20}),
    )
    .await;
    recv_type(&mut ws, "subscribed").await;
    let (stop, publishing) = publisher(&server, "pos:slow", 16, Duration::from_millis(4));
    let mut frames = Vec::new();
    while frames.len() < 12 {
        let m = recv(&mut ws).await;
        if m["type"] == "event" {
            frames.push(m["frame"].as_u64().unwrap());
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publishing.join().unwrap();
    // 60 Hz clock, max_hz 20 → every 4th tick (15 Hz) once the first boundary is reached.
    let steps: Vec<u64> = frames.windows(2).skip(3).map(|w| w[1] - w[0]).collect();
    assert!(
        steps.iter().all(|&d| d >= 3),
        "ticks between events: {steps:?}"
    );
    server.shutdown();
}

async fn volatile_events_are_dropped_for_a_full_queue_without_closing(io: IoBackend) {
    let mut cfg = with_namespaces(io, "[namespaces.live]\ndelivery = \"volatile\"\n");
    cfg.max_queued_bytes = 256 * 1024;
    let server = start(cfg);
    let mut c = small_window_client(server.local_addr()).await;
    raw_subscribe(&mut c, json!({"type":"subscribe","channels":["live:feed"]})).await;
    let state = server.state();
    let (stop, publishing) = publisher(&server, "live:feed", 32 * 1024, Duration::from_millis(2));
    let paused = Instant::now();
    while state.totals().dropped_events == 0 {
        assert!(paused.elapsed() < DEADLINE, "nothing was ever dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publishing.join().unwrap();
    // Small events keep coming; once the queue has room again, the next one is preceded by
    // the gap notice.
    let (stop, publishing) = publisher(&server, "live:feed", 16, Duration::from_millis(50));
    let mut gap = None;
    loop {
        let m = c.read_json().await;
        match m["type"].as_str() {
            Some("gap") => gap = Some(m),
            Some("event") if gap.is_some() => break,
            _ => {}
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publishing.join().unwrap();
    let gap = gap.expect("the client is told what it missed");
    assert!(gap["skipped"].as_u64().unwrap() > 0);
    c.send_frame(0x81, br#"{"type":"ping","ping_id":1}"#, true)
        .await;
    loop {
        // Events still in flight may come first; the pong proves the connection lives.
        let m = c.read_json().await;
        if m["type"] == "pong" {
            break;
        }
        assert!(m["type"] == "event" || m["type"] == "gap", "{m}");
    }
    server.shutdown();
}

async fn reconnect_hints_are_spread_over_the_drain_window(io: IoBackend) {
    let mut cfg = config(io);
    cfg.drain_timeout = Duration::from_secs(4);
    let server = start(cfg);
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(connect(server.local_addr()).await.0);
    }
    let stopping = tokio::task::spawn_blocking(move || server.shutdown());
    let mut after = Vec::new();
    for ws in &mut clients {
        let hint = recv_type(ws, "reconnect").await;
        assert_eq!(hint["reason"], "shutdown");
        after.push(hint["after_ms"].as_u64().unwrap());
    }
    after.sort_unstable();
    assert!(after.iter().all(|&ms| ms <= 4000), "{after:?}");
    assert!(after[0] < 1000 && after[7] > 3000, "spread: {after:?}");
    drop(clients);
    stopping.await.unwrap();
}

async fn connected_and_pong_carry_server_time(io: IoBackend) {
    let server = start(config(io));
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let (mut ws, hello) = connect(server.local_addr()).await;
    let skew = hello["server_time_ms"].as_i64().unwrap() - now_ms();
    assert!(skew.abs() < 5_000, "{hello}");
    send(&mut ws, json!({"type":"ping"})).await;
    let pong = recv_type(&mut ws, "pong").await;
    assert!((pong["server_time_ms"].as_i64().unwrap() - now_ms()).abs() < 5_000);
    server.shutdown();
}

both_backends!(
    recovery_replays_exactly_the_missed_events_then_live_ones,
    recovery_works_when_the_client_returns_on_another_shard,
    recovery_is_refused_whole_when_missed_events_were_pushed_out,
    status_and_metrics_report_lateness_and_delivery_figures,
    a_recovery_larger_than_the_client_queue_cap_is_replayed_whole,
    epoch_change_after_restart_gives_recovered_false_and_the_snapshot,
    a_new_subscriber_gets_the_snapshot_per_key_first_then_deltas,
    a_snapshot_event_is_the_event_live_subscribers_saw_marked_as_snapshot,
    conflation_delivers_only_the_newest_per_key_per_tick,
    a_paused_reader_is_stepped_down_told_of_gaps_and_returns_to_full_rate,
    max_hz_caps_the_rate_of_a_conflated_subscription,
    a_reliable_client_over_its_queue_cap_is_closed_and_recovers_everything,
    volatile_events_are_dropped_for_a_full_queue_without_closing,
    reconnect_hints_are_spread_over_the_drain_window,
    connected_and_pong_carry_server_time,
);
