//! The HTTP API with a real HTTP client (ureq) against a running server, on both backends.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use framecast::{Config, IoBackend};
use serde_json::{json, Value};

const KEY: &str = "test-api-key-0123456789";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn base(server: &framecast::ServerHandle) -> String {
    format!("http://{}", server.local_addr())
}

/// (status, body as JSON or the raw text in a string) of a request.
fn call(method: &str, url: &str, body: Option<&str>, auth: Option<&str>) -> (u16, Value) {
    let agent = agent();
    let mut resp = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(url);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.call().unwrap()
        }
        (m, b) => {
            let mut r = agent.post(url);
            if m != "POST" {
                r = agent.put(url);
            }
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.header("Content-Type", "application/json")
                .send(b.unwrap_or(""))
                .unwrap()
        }
    };
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Polls `f` until it returns true or the deadline passes.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn healthz_answers_ok(io: IoBackend) {
    let server = start(config(io));
    let url = format!("{}/healthz", base(&server));
    let (status, body) = blocking(move || call("GET", &url, None, None)).await;
    assert_eq!((status, body), (200, json!({"status":"ok"})));
}

async fn status_reports_connections_per_shard_and_clock(io: IoBackend) {
    let server = start(config(io));
    let (_a, _) = connect(server.local_addr()).await;
    let (_b, _) = connect(server.local_addr()).await;
    let url = format!("{}/api/v1/status", base(&server));
    let (status, body) = blocking(move || call("GET", &url, None, None)).await;
    assert_eq!(status, 200);
    // The HTTP connection itself is open too while the request is served.
    assert!(
        body["connections"]["total"].as_u64().unwrap() >= 2,
        "{body}"
    );
    assert_eq!(
        body["connections"]["per_shard"].as_array().unwrap().len(),
        2
    );
    assert_eq!(body["frame_clock"]["tick_hz"], 60);
    for key in [
        "events_in_per_second",
        "frames_out_per_second",
        "bytes_out_total",
        "slow_consumer_drops",
        "uptime_seconds",
        "channels",
    ] {
        assert!(!body[key].is_null(), "status lacks {key}: {body}");
    }
    for key in [
        "last_tick_duration_us",
        "max_tick_duration_us",
        "max_lateness_us",
    ] {
        assert!(body["frame_clock"][key].is_u64(), "frame_clock lacks {key}");
    }
}

async fn broadcast_reaches_websocket_subscribers_with_seq(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["alerts", "audit"]).await;
    let url = format!("{}/api/v1/broadcast", base(&server));
    let (status, body) = blocking(move || {
        call(
            "POST",
            &url,
            Some(r#"{"channels":["alerts","audit"],"event_type":"fire","data":{"room":7}}"#),
            None,
        )
    })
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["channels"], json!(["alerts", "audit"]));
    let mut seen = [recv(&mut ws).await, recv(&mut ws).await];
    seen.sort_by_key(|e| e["channel"].as_str().unwrap().to_string());
    for (ev, channel) in seen.iter().zip(["alerts", "audit"]) {
        assert_eq!(ev["channel"], channel);
        assert_eq!(ev["seq"], 1);
        assert_eq!(ev["event_type"], "fire");
        assert_eq!(ev["data"]["room"], 7);
    }
}

async fn channels_list_and_lookup_show_subscribers_and_last_seq(io: IoBackend) {
    let server = start(config(io));
    let (mut ws, _) = connect(server.local_addr()).await;
    let joined = subscribe(&mut ws, &["room-1"]).await;
    let epoch = joined["positions"]["room-1"]["epoch"].clone();
    server.publish("room-1", "m", &1).unwrap();
    server.publish("room-1", "m", &2).unwrap();
    recv(&mut ws).await;
    recv(&mut ws).await;
    let b = base(&server);
    let found = blocking(move || {
        eventually(|| {
            let (s, one) = call("GET", &format!("{b}/api/v1/channels/room-1"), None, None);
            s == 200 && one["subscribers"] == 1 && one["last_seq"] == 2 && one["epoch"] == epoch
        }) && {
            let (s, all) = call("GET", &format!("{b}/api/v1/channels"), None, None);
            s == 200
                && all["channels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["name"] == "room-1" && c["events_per_second"].is_number())
        } && call(
            "GET",
            &format!("{b}/api/v1/channels/never-used"),
            None,
            None,
        )
        .0 == 404
    })
    .await;
    assert!(found, "channel figures never showed up");
}

async fn api_key_is_required_when_configured(io: IoBackend) {
    let mut cfg = config(io);
    cfg.api_key = Some(KEY.into());
    let server = start(cfg);
    let b = base(&server);
    blocking(move || {
        let (s, body) = call("GET", &format!("{b}/api/v1/status"), None, None);
        assert_eq!(s, 401);
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(
            call("GET", &format!("{b}/metrics"), None, Some("Bearer nope")).0,
            401
        );
        assert_eq!(
            call(
                "GET",
                &format!("{b}/metrics"),
                None,
                Some(&format!("Bearer {KEY}"))
            )
            .0,
            200
        );
        assert_eq!(
            call(
                "POST",
                &format!("{b}/api/v1/broadcast"),
                Some(r#"{"channel":"a","data":1}"#),
                None
            )
            .0,
            401
        );
        assert_eq!(
            call("GET", &format!("{b}/healthz"), None, None).0,
            200,
            "healthz stays open"
        );
    })
    .await;
}

async fn bad_broadcasts_get_400_with_a_json_error(io: IoBackend) {
    let server = start(config(io));
    let url = format!("{}/api/v1/broadcast", base(&server));
    blocking(move || {
        for (body, code) in [
            ("{not json", "invalid_json"),
            (r#"{"channel":"has space","data":1}"#, "invalid_channel"),
            (r#"{"channel":"ok"}"#, "missing_field"),
            (r#"{"data":1}"#, "missing_field"),
        ] {
            let (s, err) = call("POST", &url, Some(body), None);
            assert_eq!(s, 400, "{body}");
            assert_eq!(err["error"], code, "{body}: {err}");
            assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    })
    .await;
}

async fn oversize_body_gets_413(io: IoBackend) {
    let mut cfg = config(io);
    cfg.max_http_body_bytes = 1024;
    let server = start(cfg);
    let url = format!("{}/api/v1/broadcast", base(&server));
    let body = format!(r#"{{"channel":"a","data":"{}"}}"#, "x".repeat(2000));
    let (status, _) = blocking(move || call("POST", &url, Some(&body), None)).await;
    assert_eq!(status, 413);
}

async fn wrong_method_gets_405(io: IoBackend) {
    let server = start(config(io));
    let b = base(&server);
    blocking(move || {
        assert_eq!(
            call("GET", &format!("{b}/api/v1/broadcast"), None, None).0,
            405
        );
        assert_eq!(
            call("POST", &format!("{b}/api/v1/status"), Some("{}"), None).0,
            405
        );
    })
    .await;
}

async fn malformed_http_gets_400_and_close(io: IoBackend) {
    let server = start(config(io));
    let addr = server.local_addr();
    blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nBad Header Line\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap(); // returns at EOF: the server closed
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    })
    .await;
}

async fn incomplete_request_is_closed_after_the_timeout(io: IoBackend) {
    let mut cfg = config(io);
    cfg.handshake_timeout = Duration::from_millis(300);
    let server = start(cfg);
    let addr = server.local_addr();
    blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(b"POST /api/v1/broadcast HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"chan")
            .unwrap();
        let started = Instant::now();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert!(out.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(200));
    })
    .await;
}

async fn pipelined_requests_get_responses_in_order(io: IoBackend) {
    let server = start(config(io));
    let addr = server.local_addr();
    blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let statuses: Vec<&str> = out.match_indices("HTTP/1.1 ").map(|(i, _)| &out[i + 9..i + 12]).collect();
        assert_eq!(statuses, vec!["200", "404", "200"], "{out}");
    })
    .await;
}

fn scrape(url: &str) -> prometheus_parse::Scrape {
    let (status, body) = call("GET", url, None, None);
    assert_eq!(status, 200);
    let text = body.as_str().expect("metrics are text").to_string();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid exposition")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// A subscriber of `channel` receives 20 events published through the embedding API.
async fn deliver_twenty_events(server: &framecast::ServerHandle, channel: &str) {
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &[channel]).await;
    for i in 0..20 {
        server.publish(channel, "x", &i).unwrap();
    }
    for _ in 0..20 {
        recv(&mut ws).await;
    }
}

async fn metrics_parse_as_prometheus_and_counters_move(io: IoBackend) {
    let server = start(config(io));
    let url = format!("{}/metrics", base(&server));
    let u = url.clone();
    let before = blocking(move || scrape(&u)).await;
    for name in [
        "framecast_connections",
        "framecast_connects_total",
        "framecast_events_published_total",
        "framecast_frames_written_total",
        "framecast_bytes_written_total",
        "framecast_slow_consumer_closes_total",
        "framecast_shard_connections",
    ] {
        assert!(
            before.samples.iter().any(|s| s.metric == name),
            "missing {name}"
        );
    }
    assert!(
        before
            .samples
            .iter()
            .any(|s| s.metric.starts_with("framecast_tick_duration_seconds")),
        "histogram present"
    );
    assert!(before
        .samples
        .iter()
        .any(|s| s.metric == "framecast_disconnects_total"
            && s.labels.get("reason") == Some("slow_consumer")));
    deliver_twenty_events(&server, "m").await;
    let after = blocking(move || scrape(&url)).await;
    for name in [
        "framecast_events_published_total",
        "framecast_frames_written_total",
        "framecast_bytes_written_total",
        "framecast_connects_total",
    ] {
        assert!(
            value(&after, name) > value(&before, name),
            "{name} did not move"
        );
    }
    assert!(
        value(&after, "framecast_frames_written_total")
            - value(&before, "framecast_frames_written_total")
            >= 20.0
    );
}

async fn every_send_records_how_long_its_connection_waited(io: IoBackend) {
    let server = start(config(io));
    let url = format!("{}/metrics", base(&server));
    deliver_twenty_events(&server, "w").await;
    let scraped = blocking(move || scrape(&url)).await;
    let waits = value(&scraped, "framecast_send_queue_wait_seconds_count");
    assert!(
        waits >= 2.0,
        "connected, subscribed and events were sent: {waits}"
    );
    assert_eq!(
        waits,
        value(&scraped, "framecast_sends_total"),
        "one wait per send"
    );
    let below_inf = scraped
        .samples
        .iter()
        .find(|s| s.metric == "framecast_send_queue_wait_seconds")
        .and_then(|s| match &s.value {
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map(|b| b.count),
            _ => None,
        })
        .expect("the wait histogram");
    assert_eq!(waits, below_inf);
}

async fn system_status_arrives_at_the_configured_interval(io: IoBackend) {
    let mut cfg = config(io);
    cfg.status_interval = Duration::from_millis(300);
    let server = start(cfg);
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["system.status"]).await;
    let first = recv(&mut ws).await;
    let t0 = Instant::now();
    let second = recv(&mut ws).await;
    let gap = t0.elapsed();
    assert!(
        gap >= Duration::from_millis(150) && gap <= Duration::from_millis(900),
        "{gap:?}"
    );
    for ev in [&first, &second] {
        assert_eq!(ev["channel"], "system.status");
        for key in [
            "hostname",
            "uptime",
            "cpu_usage",
            "memory_used",
            "memory_total",
            "memory_pct",
            "load_average",
            "connections",
            "events_per_sec",
        ] {
            assert!(
                !ev["data"][key].is_null(),
                "system.status lacks {key}: {ev}"
            );
        }
    }
    assert_eq!(
        second["seq"].as_u64().unwrap(),
        first["seq"].as_u64().unwrap() + 1
    );
}

async fn heartbeat_carries_server_time(io: IoBackend) {
    let mut cfg = config(io);
    cfg.heartbeat_interval = Duration::from_millis(200);
    let server = start(cfg);
    let (mut ws, _) = connect(server.local_addr()).await;
    subscribe(&mut ws, &["heartbeat"]).await;
    let ev = recv(&mut ws).await;
    assert_eq!(ev["event_type"], "heartbeat");
    assert!(ev["data"]["server_time"].as_str().unwrap().ends_with('Z'));
}

async fn default_channels_and_welcome_need_no_request(io: IoBackend) {
    let cfg = Config {
        default_channels: vec!["notification".into(), "news".into()],
        welcome: Some("Welcome to framecast".into()),
        ..config(io)
    };
    let server = start(cfg);
    let (mut ws, _) = connect(server.local_addr()).await;
    let welcome = recv(&mut ws).await;
    assert_eq!(welcome["type"], "notification");
    assert_eq!(welcome["data"]["message"], "Welcome to framecast");
    let joined = recv(&mut ws).await;
    assert_eq!(joined["type"], "subscribed");
    assert_eq!(joined["default"], true);
    assert_eq!(joined["positions"]["news"]["seq"], 0);
    send(&mut ws, json!({"type":"get_subscriptions"})).await;
    assert_eq!(
        recv(&mut ws).await["channels"],
        json!(["notification", "news"])
    );
    server.publish("news", "n", &"hello").unwrap();
    assert_eq!(recv(&mut ws).await["data"], "hello");
}

async fn connections_channel_reports_connects_and_disconnects(io: IoBackend) {
    let server = start(config(io));
    let (mut watcher, _) = connect(server.local_addr()).await;
    subscribe(&mut watcher, &["connections"]).await;
    let (mut other, hello) = connect(server.local_addr()).await;
    let id = hello["client_id"].clone();
    // The watcher may first see its own connect (published in the tick it subscribed in).
    let ev = next_about(&mut watcher, &id).await;
    assert_eq!(ev["event_type"], "connect");
    assert!(ev["data"]["shard"].is_u64());
    other.close(None).await.unwrap();
    let ev = next_about(&mut watcher, &id).await;
    assert_eq!(ev["event_type"], "disconnect");
    assert_eq!(ev["data"]["reason"], "normal");
}

async fn next_about(ws: &mut Ws, client_id: &Value) -> Value {
    loop {
        let ev = recv(ws).await;
        if &ev["data"]["client_id"] == client_id {
            return ev;
        }
    }
}

both_backends!(
    healthz_answers_ok,
    status_reports_connections_per_shard_and_clock,
    broadcast_reaches_websocket_subscribers_with_seq,
    channels_list_and_lookup_show_subscribers_and_last_seq,
    api_key_is_required_when_configured,
    bad_broadcasts_get_400_with_a_json_error,
    oversize_body_gets_413,
    wrong_method_gets_405,
    malformed_http_gets_400_and_close,
    incomplete_request_is_closed_after_the_timeout,
    pipelined_requests_get_responses_in_order,
    metrics_parse_as_prometheus_and_counters_move,
    every_send_records_how_long_its_connection_waited,
    system_status_arrives_at_the_configured_interval,
    heartbeat_carries_server_time,
    default_channels_and_welcome_need_no_request,
    connections_channel_reports_connects_and_disconnects,
);
