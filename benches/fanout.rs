//! End-to-end fan-out benchmark (`cargo bench --bench fanout`): starts the framecast binary
//! (pinned to CPU 0 when `taskset` exists), opens N real WebSocket subscribers on loopback,
//! publishes at a rate, and prints delivered messages/s, delivery ratio, latency p50/p99/p999
//! (publish to receive), server CPU and RSS per connection.
//!
//! Environment: FANOUT_SUBS (1000), FANOUT_CHANNELS (1), FANOUT_RATE (1000 events/s),
//! FANOUT_PAYLOAD (32 bytes), FANOUT_SECONDS (10), FANOUT_WARMUP (2), FANOUT_TICK_HZ (60),
//! FANOUT_SHARDS (1), FANOUT_IO (auto), FANOUT_PUBLISH (ws|http). Defaults finish in ~20 s.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use framecast_load::{self as load, LoadConfig, PublishMode};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; filters are ignored here.
    let subs: usize = env("FANOUT_SUBS", 1000);
    let channels: usize = env("FANOUT_CHANNELS", 1);
    let rate: f64 = env("FANOUT_RATE", 1000.0);
    let payload: usize = env("FANOUT_PAYLOAD", 32);
    let seconds: f64 = env("FANOUT_SECONDS", 10.0);
    let warmup: f64 = env("FANOUT_WARMUP", 2.0);
    let tick_hz: u32 = env("FANOUT_TICK_HZ", 60);
    let shards: usize = env("FANOUT_SHARDS", 1);
    let io: String = env("FANOUT_IO", "auto".to_string());
    let publish: String = env("FANOUT_PUBLISH", "ws".to_string());

    let server_bin = env!("CARGO_BIN_EXE_framecast");
    let args = [
        "--listen".to_string(),
        "127.0.0.1:0".into(),
        "--shards".into(),
        shards.to_string(),
        "--tick-hz".into(),
        tick_hz.to_string(),
        "--io".into(),
        io.clone(),
        "--log-level".into(),
        "info".into(),
        "--log-format".into(),
        "json".into(),
        "--status-interval".into(),
        "0".into(),
        "--heartbeat-interval".into(),
        "0".into(),
    ];
    let taskset = Command::new("taskset").arg("-V").output().is_ok();
    let mut cmd = if taskset {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(server_bin);
        c
    } else {
        Command::new(server_bin)
    };
    let mut server = cmd
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start framecast");
    let stderr = server.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(addr) = v["fields"]["addr"].as_str() {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let Ok(addr) = rx.recv_timeout(Duration::from_secs(10)) else {
        let _ = server.kill();
        eprintln!("fanout benchmark: the server did not announce its address");
        std::process::exit(1);
    };
    if taskset {
        // Keep the load generator off the server's core.
        if let Some(core) =
            core_affinity::get_core_ids().and_then(|ids| ids.into_iter().find(|c| c.id == 1))
        {
            core_affinity::set_for_current(core);
        }
    }
    let cfg = LoadConfig {
        url: format!("ws://{addr}/ws"),
        subscribers: subs,
        channels,
        rate,
        payload,
        mode: if publish == "http" {
            PublishMode::Http
        } else {
            PublishMode::WebSocket
        },
        api_key: None,
        warmup: Duration::from_secs_f64(warmup),
        duration: Duration::from_secs_f64(seconds),
        settle: Duration::from_millis(500),
        threads: 1,
        connect_concurrency: 200,
        server_pid: Some(server.id()),
        progress: false,
    };
    println!(
        "fanout: {subs} subscribers, {channels} channel(s), {rate} events/s, {payload} B padding, tick_hz {tick_hz}, {shards} shard(s), io {io}, publish {publish}, {seconds} s after {warmup} s warm-up"
    );
    let result = load::run(&cfg);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status();
    let _ = server.wait();
    match result {
        Ok(report) => {
            print!("{}", load::summary_table(&cfg, &report));
            println!("{}", serde_json::to_string(&report).unwrap());
        }
        Err(e) => {
            eprintln!("fanout benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
