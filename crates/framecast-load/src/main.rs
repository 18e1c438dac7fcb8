//! `framecast-load`: point the load measurement at any framecast deployment. Opens subscribers,
//! publishes at a rate over WebSocket or HTTP, prints a progress line every second and a summary
//! table (and, with --json, one JSON line) at the end.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use framecast_load::{self as load, LoadConfig, PublishMode};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Ws,
    Http,
}

/// Load generator for framecast: subscribers, channels, publish rate, latency.
#[derive(Debug, Parser)]
#[command(name = "framecast-load", version)]
struct Args {
    /// WebSocket URL of the server.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000)]
    subs: usize,
    /// Channels; subscriber i joins load-(i mod channels).
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Events per second over all channels (0: connect only, for memory checks).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Padding bytes in each event's data.
    #[arg(long, default_value_t = 32)]
    payload: usize,
    /// Publish over WebSocket (`publish` commands) or HTTP (`POST /api/v1/broadcast`).
    #[arg(long, value_enum, default_value_t = Mode::Ws)]
    publish: Mode,
    /// Bearer key for HTTP publishing.
    #[arg(long, env = "FRAMECAST_API_KEY")]
    api_key: Option<String>,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Subscriber threads [default: available cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Connections opened at once per thread.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// PID of the server (same host) to report its CPU and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also print the report as one JSON line.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cfg = LoadConfig {
        url: args.url,
        subscribers: args.subs,
        channels: args.channels.max(1),
        rate: args.rate,
        payload: args.payload,
        mode: match args.publish {
            Mode::Ws => PublishMode::WebSocket,
            Mode::Http => PublishMode::Http,
        },
        api_key: args.api_key,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        settle: Duration::from_millis(500),
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        connect_concurrency: args.connect_concurrency,
        server_pid: args.server_pid,
        progress: true,
    };
    let report = load::run(&cfg).context("load run failed")?;
    print!("{}", load::summary_table(&cfg, &report));
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}
