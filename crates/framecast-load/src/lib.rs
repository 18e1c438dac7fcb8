//! The load generator behind `framecast-load`, `cargo bench --bench fanout` and the peer
//! comparison in `benches/peers/`: opens N real WebSocket subscribers spread over C channels,
//! publishes at a rate over WebSocket or HTTP, and measures delivered messages per second, the
//! delivery ratio, publish-to-receive latency and, when given the server's PID on the same host,
//! its CPU and memory per connection.
//!
//! It speaks framecast's protocol by default ([`run`]) and any broadcast server's with
//! [`run_with`] and a [`Traffic`]: a subscribe message template (or none, for servers that
//! subscribe every connection), a publish template, and the payload's size and kind. Latency
//! comes from the `T=<digits>` send time the publish template embeds, found wherever it lands in
//! what subscribers receive, so a server that just rebroadcasts bytes is timed like one that
//! wraps them in an envelope.
//!
//! With [`Traffic::deflate`] subscribers and the WebSocket publisher offer permessage-deflate
//! ([`deflate`]); subscribers inflate compressed messages ([`inflate`], [`receive`]) before the
//! scan, so latency and counting see what was published. Every report has the WebSocket bytes
//! subscribers received and the payload bytes they make ([`LoadReport::sub_wire_bytes`]), so a
//! compressed and an uncompressed run compare directly.
//!
//! `wss://` URLs (subscribers, publisher or both) run every connection over TLS ([`transport`]),
//! trusting only the CA certificates of [`Traffic::tls_ca`] and checking the server's
//! certificate against the URL's host; the rest of a run (frames, latency, deflate, server CPU)
//! is the same as over `ws://`.
//!
//! Timeline: connect and subscribe all → settle → warm-up (publishing, nothing counted) →
//! measured window → report.
// A load generator measures time: it reads the clocks freely.
#![allow(clippy::disallowed_methods)]

pub mod deflate;
pub mod frames;
pub mod inflate;
pub mod procstat;
pub mod publisher;
pub mod receive;
pub mod subscribers;
pub mod template;
pub mod transport;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use thiserror::Error;

pub use publisher::PublishMode;
use publisher::{run_publisher, PublisherPlan};
use subscribers::{run_worker, wait_ready, WorkerCounters, WorkerPlan};
pub use template::{PayloadKind, Size, Template};
use transport::TlsClient;

/// Nanoseconds since the Unix epoch (the clock publisher and subscribers share).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// WebSocket URL, `ws://host:port/path` or `wss://host:port/path` (TLS: needs
    /// [`Traffic::tls_ca`]).
    pub url: String,
    /// Subscribers.
    pub subscribers: usize,
    /// Channels (subscriber i joins channel i mod C; the publisher round-robins them).
    pub channels: usize,
    /// Events per second over all channels.
    pub rate: f64,
    /// Padding bytes per event ([`run`] only; [`run_with`] takes the size from its [`Traffic`]).
    pub payload: usize,
    /// Publish over WebSocket or HTTP.
    pub mode: PublishMode,
    /// Bearer key for HTTP publishing.
    pub api_key: Option<String>,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// Pause after subscribing, before publishing.
    pub settle: Duration,
    /// Subscriber worker threads.
    pub threads: usize,
    /// Connections being opened at once per thread.
    pub connect_concurrency: usize,
    /// PID of the server, for CPU and memory (same host only).
    pub server_pid: Option<u32>,
    /// Print a progress line every second (stderr).
    pub progress: bool,
}

/// What the load says to the server: the messages, how they are paced, and where subscribers
/// connect from.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    /// Template of the message each subscriber sends once connected (`{CHANNEL}`), or `None`
    /// for servers that subscribe every connection on their own.
    pub subscribe: Option<String>,
    /// Template of every published message (see [`template`] for the placeholders); it must
    /// put `T={T}` where subscribers will receive it.
    pub publish: String,
    /// Filler size.
    pub size: Size,
    /// Filler content.
    pub kind: PayloadKind,
    /// Seed of the generated payloads.
    pub seed: u64,
    /// Path POSTed to in HTTP publish mode.
    pub http_path: String,
    /// Burst period of the publisher: `rate × tick` messages are due per tick.
    pub tick: Duration,
    /// Loopback source addresses for subscribers (0: the system's choice); subscriber i binds
    /// to 127.0.0.(2 + i mod K).
    pub source_ips: u32,
    /// WebSocket URL the publisher connects to (`ws://host:port/path` or `wss://…`; in HTTP
    /// mode its host:port is the base POSTed to, over TLS for `wss://`), or `None` for the
    /// subscribers' URL. Another node of a cluster measures cross-node publish-to-receive
    /// latency.
    pub publish_url: Option<String>,
    /// Offer permessage-deflate (subscribers and the WebSocket publisher) and inflate what
    /// subscribers receive compressed.
    pub deflate: bool,
    /// PEM file of the CA certificates trusted for `wss://` (the only roots; required when a
    /// URL is `wss://`, unused otherwise).
    pub tls_ca: Option<PathBuf>,
}

impl Traffic {
    /// framecast's subscribe command.
    pub const FRAMECAST_SUBSCRIBE: &'static str =
        r#"{"type":"subscribe","channels":["{CHANNEL}"]}"#;
    /// framecast's publish command, the send time and the filler in its data.
    pub const FRAMECAST_PUBLISH: &'static str = r#"{"type":"publish","channel":"{CHANNEL}","event_type":"load","data":{"t":"T={T}","pad":"{PAD}"}}"#;
    /// The body of framecast's `POST /api/v1/broadcast`.
    pub const FRAMECAST_HTTP_PUBLISH: &'static str =
        r#"{"channel":"{CHANNEL}","event_type":"load","data":{"t":"T={T}","pad":"{PAD}"}}"#;
    /// framecast's publish command with a realistic payload: the generated JSON document as a
    /// JSON value in the data.
    pub const FRAMECAST_PUBLISH_JSON: &'static str = r#"{"type":"publish","channel":"{CHANNEL}","event_type":"load","data":{"t":"T={T}","payload":{PAYLOAD}}}"#;
    /// The body of framecast's `POST /api/v1/broadcast` with a realistic payload.
    pub const FRAMECAST_HTTP_PUBLISH_JSON: &'static str =
        r#"{"channel":"{CHANNEL}","event_type":"load","data":{"t":"T={T}","payload":{PAYLOAD}}}"#;

    /// framecast's publish template for `mode` and `kind`: `x` filler in the data's `pad`
    /// string ([`PayloadKind::Pad`]), or the generated document as the data's `payload` value.
    pub fn framecast_publish(mode: PublishMode, kind: PayloadKind) -> &'static str {
        match (mode, kind) {
            (PublishMode::WebSocket, PayloadKind::Pad) => Self::FRAMECAST_PUBLISH,
            (PublishMode::Http, PayloadKind::Pad) => Self::FRAMECAST_HTTP_PUBLISH,
            (PublishMode::WebSocket, _) => Self::FRAMECAST_PUBLISH_JSON,
            (PublishMode::Http, _) => Self::FRAMECAST_HTTP_PUBLISH_JSON,
        }
    }

    /// framecast's protocol with `pad` filler bytes in every event.
    pub fn framecast(mode: PublishMode, pad: usize) -> Traffic {
        Traffic {
            subscribe: Some(Self::FRAMECAST_SUBSCRIBE.to_string()),
            publish: Self::framecast_publish(mode, PayloadKind::Pad).to_string(),
            size: Size::Filler(pad),
            kind: PayloadKind::Pad,
            seed: 1,
            http_path: "/api/v1/broadcast".to_string(),
            tick: Duration::from_millis(1),
            source_ips: 0,
            publish_url: None,
            deflate: false,
            tls_ca: None,
        }
    }
}

/// What was measured.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct LoadReport {
    /// Subscribers asked for.
    pub subscribers_requested: u64,
    /// Subscribers that connected and subscribed.
    pub subscribers: u64,
    /// Seconds to connect and subscribe them all.
    pub connect_seconds: f64,
    /// Publish rate asked for, messages per second.
    pub target_rate: f64,
    /// Events published per second in the window.
    pub published_per_second: f64,
    /// Messages the publisher skipped after falling more than ~100 ms behind (whole run).
    pub publisher_skipped: u64,
    /// Events received per second, summed over subscribers.
    pub delivered_per_second: f64,
    /// delivered / (published × subscribers per channel).
    pub delivery_ratio: f64,
    /// Latency percentiles in milliseconds.
    pub latency_ms: Percentiles,
    /// Connection errors.
    pub errors: u64,
    /// Subscribers lost during the run.
    pub disconnects: u64,
    /// Data frames subscribers received without a `T=` marker (acknowledgements, welcomes).
    pub other_frames: u64,
    /// Server CPU in % of one core over the window (needs the PID).
    pub server_cpu_percent: Option<f64>,
    /// Server resident memory at the end, MiB.
    pub server_rss_mib: Option<f64>,
    /// (RSS at end − RSS before connecting) / subscribers, KiB.
    pub server_rss_per_connection_kib: Option<f64>,
    /// Busy % (kernel network work included) of the core the server is pinned to, if one.
    pub server_core_busy_percent: Option<f64>,
    /// Busy % of the core the load generator is pinned to, if one (near 100: it was the limit).
    pub loadgen_core_busy_percent: Option<f64>,
    /// The load generator's own CPU in % of one core.
    pub loadgen_cpu_percent: Option<f64>,
    /// Busy % of every core over the window.
    pub cpu_busy_percent: Vec<f64>,
    /// permessage-deflate was offered ([`Traffic::deflate`]).
    pub deflate_offered: bool,
    /// Subscriber connections on which the server agreed to permessage-deflate.
    pub deflate_negotiated: u64,
    /// The server agreed to permessage-deflate with the WebSocket publisher.
    pub pub_deflate_negotiated: bool,
    /// The first `Sec-WebSocket-Extensions` answer a subscriber got, if any.
    pub deflate_response: Option<String>,
    /// WebSocket bytes all subscribers received in the window: frame headers and payloads as
    /// read (control frames included; no TCP/IP headers).
    pub sub_wire_bytes: u64,
    /// Data payload bytes subscribers received in the window, compressed messages counted
    /// decompressed (the payload part of `sub_wire_bytes` when nothing is compressed).
    pub sub_payload_bytes: u64,
    /// Compressed messages subscribers received (and inflated) in the window.
    pub sub_compressed_msgs: u64,
    /// Of those, the ones whose text the inflate cache already had (same bytes as inflating).
    pub sub_inflate_cache_hits: u64,
    /// `sub_wire_bytes` per delivered message (none delivered: `None`).
    pub wire_bytes_per_msg: Option<f64>,
    /// `sub_payload_bytes` per delivered message (none delivered: `None`).
    pub payload_bytes_per_msg: Option<f64>,
}

/// Counters summed over the subscriber workers at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Totals {
    delivered: u64,
    wire_bytes: u64,
    payload_bytes: u64,
    compressed_msgs: u64,
    inflate_cache_hits: u64,
}

impl Totals {
    fn of(counters: &[Arc<WorkerCounters>]) -> Totals {
        let mut t = Totals::default();
        for c in counters {
            t.delivered += c.delivered.load(Ordering::Relaxed);
            t.wire_bytes += c.wire_bytes.load(Ordering::Relaxed);
            t.payload_bytes += c.payload_bytes.load(Ordering::Relaxed);
            t.compressed_msgs += c.compressed_msgs.load(Ordering::Relaxed);
            t.inflate_cache_hits += c.inflate_cache_hits.load(Ordering::Relaxed);
        }
        t
    }

    /// What was counted between `self` (earlier) and `later`.
    fn until(self, later: Totals) -> Totals {
        Totals {
            delivered: later.delivered - self.delivered,
            wire_bytes: later.wire_bytes - self.wire_bytes,
            payload_bytes: later.payload_bytes - self.payload_bytes,
            compressed_msgs: later.compressed_msgs - self.compressed_msgs,
            inflate_cache_hits: later.inflate_cache_hits - self.inflate_cache_hits,
        }
    }

    /// `bytes` per delivered message, if any was delivered.
    fn per_msg(&self, bytes: u64) -> Option<f64> {
        (self.delivered > 0).then(|| bytes as f64 / self.delivered as f64)
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Samples.
    pub count: u64,
}

/// Why a run could not be made.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The URL is not `ws://host:port/path` or `wss://host:port/path`.
    #[error("invalid url `{0}`: expected ws://host:port/path or wss://host:port/path")]
    Url(String),
    /// `wss://` without a CA file, or a CA file or host rustls cannot use.
    #[error("{0}")]
    Tls(String),
    /// A thread or socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a single subscriber could subscribe.
    #[error("no subscriber could connect to {0}")]
    NoSubscribers(String),
}

/// Where a WebSocket URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Endpoint {
    /// The address connected to (the host's first address).
    addr: SocketAddr,
    /// The Host header: the URL's `host[:port]` as written.
    host: String,
    /// The WebSocket path (`/ws` when the URL has none).
    path: String,
    /// `wss://`: the name the server's certificate must have (the host without port or
    /// brackets); `None` for `ws://`.
    tls_name: Option<String>,
}

fn parse_url(url: &str) -> Result<Endpoint, LoadError> {
    let bad = || LoadError::Url(url.into());
    let (rest, tls) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Err(bad()),
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/ws"),
    };
    // host:port, [v6]:port, or either without the port (80, 443)
    let (name, port) = match host.strip_prefix('[') {
        Some(v6) => {
            let (name, after) = v6.split_once(']').ok_or_else(bad)?;
            (name, after.strip_prefix(':'))
        }
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    if name.is_empty() {
        return Err(bad());
    }
    let addrs = match port {
        Some(_) => host.to_socket_addrs(),
        None => (name, if tls { 443 } else { 80 }).to_socket_addrs(),
    };
    let addr = addrs.map_err(|_| bad())?.next().ok_or_else(bad)?;
    Ok(Endpoint {
        addr,
        host: host.to_string(),
        path: path.to_string(),
        tls_name: tls.then(|| name.to_string()),
    })
}

/// Where the publisher connects: `publish_url` if given, else the subscribers' `url`.
fn publish_target(url: &str, publish_url: Option<&str>) -> Result<Endpoint, LoadError> {
    parse_url(publish_url.unwrap_or(url))
}

/// The TLS side of a connection to `e` (`None` for `ws://`): the roots of `ca`, which must be
/// given for `wss://`, read once into `config` for all endpoints.
fn tls_client(
    e: &Endpoint,
    ca: Option<&Path>,
    config: &mut Option<Arc<rustls::ClientConfig>>,
) -> Result<Option<TlsClient>, LoadError> {
    let Some(name) = &e.tls_name else {
        return Ok(None);
    };
    let config = match config {
        Some(c) => c.clone(),
        None => {
            let ca = ca.ok_or_else(|| {
                LoadError::Tls(
                    "wss:// needs --tls-ca FILE: the PEM certificate of the CA that signed the \
                     server's certificate (the only root trusted)"
                        .into(),
                )
            })?;
            config
                .insert(transport::client_config(ca).map_err(LoadError::Tls)?)
                .clone()
        }
    };
    TlsClient::new(config, name)
        .map(Some)
        .map_err(LoadError::Tls)
}

/// Runs one measurement with framecast's protocol (`cfg.payload` filler bytes per event).
pub fn run(cfg: &LoadConfig) -> Result<LoadReport, LoadError> {
    run_with(cfg, &Traffic::framecast(cfg.mode, cfg.payload))
}

/// Runs one measurement with the messages of `traffic`.
pub fn run_with(cfg: &LoadConfig, traffic: &Traffic) -> Result<LoadReport, LoadError> {
    let sub_target = parse_url(&cfg.url)?;
    let pub_target = publish_target(&cfg.url, traffic.publish_url.as_deref())?;
    let mut tls_config = None;
    let ca = traffic.tls_ca.as_deref();
    let sub_tls = tls_client(&sub_target, ca, &mut tls_config)?;
    let pub_tls = tls_client(&pub_target, ca, &mut tls_config)?;
    let template = |text: &str, seed: u64| Template::parse(text, traffic.size, traffic.kind, seed);
    let subscribe = traffic
        .subscribe
        .as_deref()
        .map(|t| Template::parse(t, Size::Filler(0), PayloadKind::Pad, 0));
    let channels: Vec<String> = (0..cfg.channels.max(1))
        .map(|i| format!("load-{i}"))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let extensions_answer = Arc::new(OnceLock::new());
    let pub_deflate = Arc::new(AtomicBool::new(false));
    let baseline = cfg.server_pid.and_then(procstat::sample);
    let threads = cfg.threads.max(1);
    let mut counters = Vec::new();
    let mut workers = Vec::new();
    let started = Instant::now();
    for t in 0..threads {
        let conns: Vec<(usize, String)> = (0..cfg.subscribers)
            .filter(|i| i % threads == t)
            .map(|i| (i, channels[i % channels.len()].clone()))
            .collect();
        let c = Arc::new(WorkerCounters::default());
        counters.push(c.clone());
        let plan = WorkerPlan {
            addr: sub_target.addr,
            host: sub_target.host.clone(),
            path: sub_target.path.clone(),
            tls: sub_tls.clone(),
            conns,
            concurrency: cfg.connect_concurrency.max(1),
            subscribe: subscribe.clone(),
            deflate: traffic.deflate,
            extensions_answer: extensions_answer.clone(),
            source_ips: traffic.source_ips,
            measuring: measuring.clone(),
            stop: stop.clone(),
            counters: c,
        };
        workers.push(
            std::thread::Builder::new()
                .name(format!("load-sub-{t}"))
                .spawn(move || run_worker(plan))?,
        );
    }
    let ready = wait_ready(&counters, cfg.subscribers as u64, Duration::from_secs(120));
    let connect_seconds = started.elapsed().as_secs_f64();
    if ready == 0 && cfg.subscribers > 0 {
        stop.store(true, Ordering::Relaxed);
        return Err(LoadError::NoSubscribers(cfg.url.clone()));
    }
    std::thread::sleep(cfg.settle);
    let sent = Arc::new(AtomicU64::new(0));
    let skipped = Arc::new(AtomicU64::new(0));
    let publisher = (cfg.rate > 0.0).then(|| {
        let plan = PublisherPlan {
            addr: pub_target.addr,
            host: pub_target.host,
            path: pub_target.path,
            tls: pub_tls,
            http_path: traffic.http_path.clone(),
            api_key: cfg.api_key.clone(),
            mode: cfg.mode,
            channels: channels.clone(),
            rate: cfg.rate,
            tick: traffic.tick,
            template: template(&traffic.publish, traffic.seed),
            deflate: traffic.deflate,
            deflate_negotiated: pub_deflate.clone(),
            stop: stop.clone(),
            sent: sent.clone(),
            skipped: skipped.clone(),
        };
        std::thread::spawn(move || run_publisher(plan))
    });
    std::thread::sleep(cfg.warmup);
    let delivered = |cs: &[Arc<WorkerCounters>]| {
        cs.iter()
            .map(|c| c.delivered.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let window_start = Instant::now();
    let (sent0, totals0) = (sent.load(Ordering::Relaxed), Totals::of(&counters));
    let delivered0 = totals0.delivered;
    let cpu0 = cfg.server_pid.and_then(procstat::sample);
    let own0 = procstat::sample(std::process::id());
    let cores0 = procstat::cpu_jiffies();
    measuring.store(true, Ordering::Relaxed);
    let mut last = (Instant::now(), delivered0);
    while window_start.elapsed() < cfg.duration {
        std::thread::sleep(
            Duration::from_millis(100).min(cfg.duration.saturating_sub(window_start.elapsed())),
        );
        if cfg.progress && last.0.elapsed() >= Duration::from_secs(1) {
            let d = delivered(&counters);
            let rate = (d - last.1) as f64 / last.0.elapsed().as_secs_f64();
            tracing::info!(
                elapsed_s = window_start.elapsed().as_secs(),
                subscribers = ready,
                delivered_per_s = rate as u64,
                published = sent.load(Ordering::Relaxed) - sent0,
                "progress"
            );
            last = (Instant::now(), d);
        }
    }
    measuring.store(false, Ordering::Relaxed);
    let secs = window_start.elapsed().as_secs_f64();
    let (sent1, window) = (
        sent.load(Ordering::Relaxed),
        totals0.until(Totals::of(&counters)),
    );
    let cpu1 = cfg.server_pid.and_then(procstat::sample);
    let own1 = procstat::sample(std::process::id());
    let busy = procstat::busy_percent(&cores0, &procstat::cpu_jiffies());
    stop.store(true, Ordering::Relaxed);
    if let Some(p) = publisher {
        if let Ok(Err(e)) = p.join() {
            tracing::warn!(error = %e, "publisher stopped with an error");
        }
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for w in workers {
        if let Ok(Ok(h)) = w.join() {
            let _ = hist.add(&h);
        }
    }
    let published = (sent1 - sent0) as f64;
    let per_channel = ready as f64 / channels.len() as f64;
    let delivered_n = window.delivered as f64;
    let ms = |us: u64| us as f64 / 1000.0;
    let core_busy = |core: Option<usize>| core.and_then(|c| busy.get(c).copied());
    let sum = |f: fn(&WorkerCounters) -> &AtomicU64| {
        counters
            .iter()
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let mut report = LoadReport {
        subscribers_requested: cfg.subscribers as u64,
        subscribers: ready,
        connect_seconds,
        target_rate: cfg.rate,
        published_per_second: published / secs,
        publisher_skipped: skipped.load(Ordering::Relaxed),
        delivered_per_second: delivered_n / secs,
        delivery_ratio: if published > 0.0 {
            delivered_n / (published * per_channel)
        } else {
            0.0
        },
        latency_ms: Percentiles {
            p50: ms(hist.value_at_quantile(0.5)),
            p90: ms(hist.value_at_quantile(0.9)),
            p99: ms(hist.value_at_quantile(0.99)),
            p999: ms(hist.value_at_quantile(0.999)),
            max: ms(hist.max()),
            count: hist.len(),
        },
        errors: sum(|c| &c.errors),
        disconnects: sum(|c| &c.disconnects),
        other_frames: sum(|c| &c.other_frames),
        server_core_busy_percent: cfg
            .server_pid
            .and_then(|pid| core_busy(procstat::single_core(Some(pid)))),
        loadgen_core_busy_percent: core_busy(procstat::single_core(None)),
        loadgen_cpu_percent: own0
            .zip(own1)
            .map(|((c0, _), (c1, _))| (c1 - c0) * 100.0 / secs),
        cpu_busy_percent: busy.clone(),
        deflate_offered: traffic.deflate,
        deflate_negotiated: sum(|c| &c.deflate_negotiated),
        pub_deflate_negotiated: pub_deflate.load(Ordering::Relaxed),
        deflate_response: extensions_answer.get().cloned(),
        sub_wire_bytes: window.wire_bytes,
        sub_payload_bytes: window.payload_bytes,
        sub_compressed_msgs: window.compressed_msgs,
        sub_inflate_cache_hits: window.inflate_cache_hits,
        wire_bytes_per_msg: window.per_msg(window.wire_bytes),
        payload_bytes_per_msg: window.per_msg(window.payload_bytes),
        ..LoadReport::default()
    };
    if let (Some((c0, _)), Some((c1, rss1))) = (cpu0, cpu1) {
        report.server_cpu_percent = Some((c1 - c0) * 100.0 / secs);
        report.server_rss_mib = Some(rss1 as f64 / (1024.0 * 1024.0));
        if let Some((_, rss0)) = baseline {
            report.server_rss_per_connection_kib =
                Some((rss1.saturating_sub(rss0)) as f64 / 1024.0 / ready.max(1) as f64);
        }
    }
    Ok(report)
}

/// The report as a Markdown table.
pub fn summary_table(cfg: &LoadConfig, r: &LoadReport) -> String {
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |x| format!("{x:.digits$}"));
    format!(
        "| subscribers | channels | published/s | delivered/s | delivery ratio | p50 ms | p99 ms | p99.9 ms | max ms | server CPU % | server core busy % | load core busy % | server RSS MiB | RSS/conn KiB | errors/disconnects | wire B/msg | deflate conns |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {} | {:.0} | {:.0} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {}/{} | {} | {} |\n",
        r.subscribers,
        cfg.channels,
        r.published_per_second,
        r.delivered_per_second,
        r.delivery_ratio,
        r.latency_ms.p50,
        r.latency_ms.p99,
        r.latency_ms.p999,
        r.latency_ms.max,
        opt(r.server_cpu_percent, 1),
        opt(r.server_core_busy_percent, 0),
        opt(r.loadgen_core_busy_percent, 0),
        opt(r.server_rss_mib, 1),
        opt(r.server_rss_per_connection_kib, 2),
        r.errors,
        r.disconnects,
        opt(r.wire_bytes_per_msg, 1),
        if r.deflate_offered {
            r.deflate_negotiated.to_string()
        } else {
            "-".to_string()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_host_and_path() {
        let e = parse_url("ws://127.0.0.1:9000/ws").unwrap();
        assert_eq!(
            (e.addr.port(), e.host.as_str(), e.path.as_str(), e.tls_name),
            (9000, "127.0.0.1:9000", "/ws", None)
        );
        assert_eq!(parse_url("ws://127.0.0.1:9000").unwrap().path, "/ws");
        assert!(parse_url("http://x/ws").is_err());
        assert!(parse_url("https://127.0.0.1:9000/ws").is_err());
        assert!(parse_url("ws://:9000/ws").is_err());
    }

    #[test]
    fn wss_urls_are_tls_to_the_host_named() {
        let e = parse_url("wss://localhost:18443/ws?batch=1").unwrap();
        assert_eq!(
            (e.addr, e.host.as_str(), e.path.as_str()),
            (
                "127.0.0.1:18443".parse().unwrap(),
                "localhost:18443",
                "/ws?batch=1"
            )
        );
        assert_eq!(e.tls_name.as_deref(), Some("localhost"));
        let e = parse_url("wss://127.0.0.1:18443/").unwrap();
        assert_eq!(
            (e.addr.port(), e.path.as_str(), e.tls_name.as_deref()),
            (18443, "/", Some("127.0.0.1"))
        );
        let e = parse_url("wss://[::1]:18443/ws").unwrap();
        assert_eq!(
            (e.addr, e.host.as_str(), e.tls_name.as_deref()),
            ("[::1]:18443".parse().unwrap(), "[::1]:18443", Some("::1"))
        );
        // no port: 443 for wss, 80 for ws; the Host header as written
        let e = parse_url("wss://127.0.0.1/ws").unwrap();
        assert_eq!((e.addr.port(), e.host.as_str()), (443, "127.0.0.1"));
        assert_eq!(parse_url("ws://[::1]/ws").unwrap().addr.port(), 80);
        assert!(parse_url("wss://[::1/ws").is_err());
    }

    #[test]
    fn wss_needs_a_ca_file_and_ws_does_not() {
        let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tls/ca.pem");
        let ws = parse_url("ws://127.0.0.1:9000/ws").unwrap();
        let wss = parse_url("wss://localhost:9000/ws").unwrap();
        let mut config = None;
        assert!(tls_client(&ws, None, &mut config).unwrap().is_none());
        assert!(config.is_none());
        let e = tls_client(&wss, None, &mut config).unwrap_err().to_string();
        assert!(e.contains("wss:// needs --tls-ca FILE"), "{e}");
        let t = tls_client(&wss, Some(&ca), &mut config).unwrap().unwrap();
        assert_eq!(t.name.to_str(), "localhost");
        // read once for both ends
        let first = config.clone().unwrap();
        let ip = parse_url("wss://127.0.0.1:9000/ws").unwrap();
        let t = tls_client(&ip, Some(Path::new("/nonexistent")), &mut config).unwrap();
        assert!(Arc::ptr_eq(&t.unwrap().config, &first));
        let e = tls_client(&wss, Some(Path::new("/nonexistent")), &mut None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--tls-ca /nonexistent"), "{e}");
    }

    #[test]
    fn a_wss_run_without_a_ca_file_fails_before_connecting() {
        let cfg = LoadConfig {
            url: "wss://127.0.0.1:9/ws".into(),
            subscribers: 1,
            channels: 1,
            rate: 1.0,
            payload: 0,
            mode: PublishMode::WebSocket,
            api_key: None,
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            settle: Duration::ZERO,
            threads: 1,
            connect_concurrency: 1,
            server_pid: None,
            progress: false,
        };
        let e = run(&cfg).unwrap_err();
        assert!(matches!(e, LoadError::Tls(_)), "{e}");
        // the publisher's URL counts too
        let mut traffic = Traffic::framecast(PublishMode::WebSocket, 0);
        traffic.publish_url = Some("wss://127.0.0.1:9/ws".into());
        let cfg = LoadConfig {
            url: "ws://127.0.0.1:9/ws".into(),
            ..cfg
        };
        assert!(matches!(run_with(&cfg, &traffic), Err(LoadError::Tls(_))));
    }

    #[test]
    fn the_publisher_connects_to_publish_url_or_else_the_subscribers_url() {
        let subs = "ws://127.0.0.1:18082/ws";
        let e = publish_target(subs, None).unwrap();
        assert_eq!(
            (e.addr.port(), e.host.as_str(), e.path.as_str()),
            (18082, "127.0.0.1:18082", "/ws")
        );
        let e = publish_target(subs, Some("ws://127.0.0.1:18081/ws")).unwrap();
        assert_eq!(
            (e.addr.port(), e.host.as_str(), e.path.as_str()),
            (18081, "127.0.0.1:18081", "/ws")
        );
        let e = publish_target(subs, Some("wss://localhost:18443/ws")).unwrap();
        assert_eq!(e.tls_name.as_deref(), Some("localhost"));
        assert!(publish_target(subs, Some("http://127.0.0.1:18081")).is_err());
    }

    #[test]
    fn framecast_traffic_renders_its_protocol_with_a_marker_in_the_data() {
        let t = Traffic::framecast(PublishMode::WebSocket, 3);
        let mut publish = Template::parse(&t.publish, t.size, t.kind, t.seed);
        let msg = publish.render_string(1_796_180_400_000_000_000, 0, "load-0");
        let v: serde_json::Value = serde_json::from_str(&msg).unwrap();
        assert_eq!(v["type"], "publish");
        assert_eq!(v["channel"], "load-0");
        assert_eq!(v["data"]["pad"], "xxx");
        let mut at = Vec::new();
        frames::for_each_marker(msg.as_bytes(), |t| at.push(t));
        assert_eq!(at, [1_796_180_400_000_000_000]);
        let http = Traffic::framecast(PublishMode::Http, 0);
        let body = Template::parse(&http.publish, http.size, http.kind, 1).render_string(5, 0, "c");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"]["t"],
            "T=5"
        );
    }

    #[test]
    fn framecast_pad_messages_are_unchanged() {
        let t = Traffic::framecast(PublishMode::WebSocket, 3);
        assert_eq!(t.publish, Traffic::FRAMECAST_PUBLISH);
        assert!(!t.deflate);
        let msg = Template::parse(&t.publish, Size::Total(128), t.kind, t.seed).render_string(
            1_796_180_400_000_000_000,
            7,
            "load-0",
        );
        let pad = "x".repeat(128 - 103);
        assert_eq!(
            msg,
            format!(
                r#"{{"type":"publish","channel":"load-0","event_type":"load","data":{{"t":"T=1796180400000000000","pad":"{pad}"}}}}"#
            )
        );
    }

    #[test]
    fn framecast_realistic_payloads_are_json_values_in_the_data() {
        for mode in [PublishMode::WebSocket, PublishMode::Http] {
            for kind in [PayloadKind::Positions, PayloadKind::Metrics] {
                let text = Traffic::framecast_publish(mode, kind);
                for total in [128usize, 256, 1000] {
                    let mut t = Template::parse(text, Size::Total(total), kind, 1);
                    for seq in 0..5 {
                        let msg = t.render_string(1_796_180_400_000_000_000 + seq, seq, "load-0");
                        assert_eq!(msg.len(), total, "{msg}");
                        let v: serde_json::Value = serde_json::from_str(&msg).unwrap();
                        assert_eq!(v["channel"], "load-0");
                        let payload = &v["data"]["payload"];
                        match kind {
                            PayloadKind::Positions => assert_eq!(payload[0]["id"], "av100"),
                            _ => assert!(payload["cpu_user_pct"].is_number(), "{msg}"),
                        }
                        let mut at = Vec::new();
                        frames::for_each_marker(msg.as_bytes(), |t| at.push(t));
                        assert_eq!(at, [1_796_180_400_000_000_000 + seq], "one marker only");
                    }
                }
            }
        }
    }
}
