//! `framecast-load`: point the load measurement at any framecast deployment, or at any other
//! WebSocket broadcast server with message templates. Opens subscribers, publishes at a rate over
//! WebSocket or HTTP, prints a progress line every second and a summary table (and, with --json,
//! one JSON line) at the end.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use framecast_load::{self as load, LoadConfig, PayloadKind, PublishMode, Size, Traffic};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Ws,
    Http,
}

/// Load generator for framecast and other WebSocket broadcast servers: subscribers, channels,
/// publish rate, latency.
///
/// Templates take {T} (send time, ns since the epoch; subscribers find it after `T=`), {SEQ},
/// {CHANNEL}, {PAD} (the filler; escaped inside a JSON string) and {PAYLOAD} (the filler as a
/// raw JSON value). A raw rebroadcasting server needs no subscribe message:
///   framecast-load --url ws://127.0.0.1:9001/ --subscribe-msg '' \
///     --publish-template 'T={T} SEQ={SEQ} {PAD}' --payload-bytes 64
/// Cross-node latency in a cluster: subscribers on one node, the publisher on another:
///   framecast-load --url ws://127.0.0.1:18082/ws --publish-url ws://127.0.0.1:18081/ws
/// Compression on the wire: realistic payloads, permessage-deflate offered and inflated:
///   framecast-load --payload-kind positions --payload-bytes 256 --deflate --json
/// TLS: wss:// URLs (subscribers, publisher or both) need the CA that signed the server's
/// certificate; the certificate is checked against the URL's host (a name or an IP address):
///   framecast-load --url wss://localhost:8443/ws --tls-ca tests/fixtures/tls/ca.pem \
///     --server-pid "$(pgrep -n framecast)"
/// Every --json line has sub_wire_bytes (WebSocket bytes subscribers received in the window,
/// frame headers included), sub_payload_bytes (decompressed), wire_bytes_per_msg,
/// payload_bytes_per_msg, sub_compressed_msgs, deflate_offered, deflate_negotiated
/// (subscriber connections that got the extension) and deflate_response (the server's answer).
/// A flag given twice takes its last value (scripts append per-server flags to common ones).
#[derive(Debug, Parser)]
#[command(
    name = "framecast-load",
    version,
    verbatim_doc_comment,
    args_override_self = true
)]
struct Args {
    /// WebSocket URL of the server: ws://host:port/path, or wss://host:port/path for TLS
    /// (needs --tls-ca; the port defaults to 80 / 443).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// WebSocket URL the publisher connects to instead of --url (another node of a cluster:
    /// cross-node latency); with --publish http its host:port is where --http-path is POSTed,
    /// over TLS for a wss:// URL [default: --url].
    #[arg(long)]
    publish_url: Option<String>,
    /// PEM file of the CA certificate(s) to trust for wss:// (the only roots: no system
    /// store). Required when --url or --publish-url is wss://; unused otherwise.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000)]
    subs: usize,
    /// Channels; subscriber i joins load-(i mod channels).
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Messages per second over all channels (0: connect only, for memory checks).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Messages per tick instead of --rate (rate = burst / tick).
    #[arg(long)]
    burst: Option<u32>,
    /// Publisher tick: what is due is sent in one burst every tick.
    #[arg(long, default_value_t = 1.0)]
    tick_ms: f64,
    /// Filler bytes in each message ({PAD} / {PAYLOAD}).
    #[arg(long, default_value_t = 32)]
    payload: usize,
    /// Pad every published message to this many bytes in all instead (overrides --payload),
    /// so that servers with different envelopes get the same messages.
    #[arg(long)]
    payload_bytes: Option<usize>,
    /// Filler content: `x` characters, or realistic JSON of exactly the size asked for, new
    /// pseudo-random values in every message: `positions` = an array of moving entities
    /// (`[{"id":"av100","x":12.345,"y":0.5,...},...]`), `metrics` = an object of gauges. With
    /// framecast's default templates it goes in the event's data as a JSON value
    /// (`"payload":[...]`); inside a JSON string of a template ({PAD}) it is escaped.
    #[arg(long, default_value = "pad", value_parser = ["pad", "positions", "metrics"])]
    payload_kind: String,
    /// Seed of the generated payloads (same seed, same messages).
    #[arg(long, default_value_t = 1)]
    payload_seed: u64,
    /// Message each subscriber sends once connected ({CHANNEL}); '' sends none
    /// [default: framecast's subscribe command].
    #[arg(long)]
    subscribe_msg: Option<String>,
    /// Template of every published message [default: framecast's publish command, or the
    /// body of its POST /api/v1/broadcast with --publish http].
    #[arg(long)]
    publish_template: Option<String>,
    /// Offer permessage-deflate (`Sec-WebSocket-Extensions: permessage-deflate;
    /// client_max_window_bits`) from every subscriber and the WebSocket publisher; subscribers
    /// whose server agreed inflate compressed messages before looking for `T=`. Nothing is sent
    /// compressed. Without it a compressed frame (RSV1) ends the connection.
    #[arg(long)]
    deflate: bool,
    /// Publish over WebSocket (text frames) or HTTP (POST to --http-path, keep-alive); either
    /// over TLS when the publisher's URL is wss://.
    #[arg(long, value_enum, default_value_t = Mode::Ws)]
    publish: Mode,
    /// Path of the HTTP publish endpoint.
    #[arg(long, default_value = "/api/v1/broadcast")]
    http_path: String,
    /// Bearer key for HTTP publishing.
    #[arg(long, env = "FRAMECAST_API_KEY")]
    api_key: Option<String>,
    /// Milliseconds between the last subscriber connecting and the publisher starting.
    #[arg(long, default_value_t = 500)]
    settle_ms: u64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Subscriber threads [default: cores in this process's affinity mask].
    #[arg(long)]
    threads: Option<usize>,
    /// Subscriber i connects from 127.0.0.(2 + i mod K) (loopback servers; 0 = one address):
    /// for more than ~28k connections, and faster connects long before that.
    #[arg(long, default_value_t = 0)]
    src_ips: u32,
    /// Connections opened at once per thread.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// PID of the server (same host) to report its CPU and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also print the report as one JSON line.
    #[arg(long)]
    json: bool,
    /// A name for this run, copied into the JSON line.
    #[arg(long)]
    label: Option<String>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let mode = match args.publish {
        Mode::Ws => PublishMode::WebSocket,
        Mode::Http => PublishMode::Http,
    };
    anyhow::ensure!(args.tick_ms > 0.0, "--tick-ms must be positive");
    let tick = Duration::from_secs_f64(args.tick_ms / 1000.0);
    let rate = match args.burst {
        Some(b) => f64::from(b) / tick.as_secs_f64(),
        None => args.rate,
    };
    let mut traffic = Traffic::framecast(mode, args.payload);
    traffic.kind = args
        .payload_kind
        .parse::<PayloadKind>()
        .map_err(anyhow::Error::msg)?;
    traffic.seed = args.payload_seed;
    traffic.publish = match args.publish_template {
        Some(p) => p,
        None => Traffic::framecast_publish(mode, traffic.kind).to_string(),
    };
    if let Some(s) = args.subscribe_msg {
        traffic.subscribe = (!s.is_empty()).then_some(s);
    }
    if let Some(total) = args.payload_bytes {
        traffic.size = Size::Total(total);
    }
    traffic.deflate = args.deflate;
    traffic.http_path = args.http_path;
    traffic.tick = tick;
    traffic.source_ips = args.src_ips;
    traffic.publish_url = args.publish_url;
    traffic.tls_ca = args.tls_ca;
    let cfg = LoadConfig {
        url: args.url,
        subscribers: args.subs,
        channels: args.channels.max(1),
        rate,
        payload: args.payload,
        mode,
        api_key: args.api_key,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        settle: Duration::from_millis(args.settle_ms),
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        connect_concurrency: args.connect_concurrency,
        server_pid: args.server_pid,
        progress: !args.quiet,
    };
    let report = load::run_with(&cfg, &traffic).context("load run failed")?;
    print!("{}", load::summary_table(&cfg, &report));
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["label"] = args.label.into();
        v["payload_kind"] = traffic.kind.to_string().into();
        v["payload_bytes"] = match traffic.size {
            Size::Total(n) => n.into(),
            Size::Filler(_) => serde_json::Value::Null,
        };
        v["tick_ms"] = args.tick_ms.into();
        println!("{v}");
    }
    Ok(())
}
