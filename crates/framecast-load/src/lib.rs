//! The load generator behind `framecast-load` and `cargo bench --bench fanout`: opens N real
//! WebSocket subscribers spread over C channels, publishes at a rate over WebSocket or HTTP, and
//! measures delivered events per second, the delivery ratio, publish-to-receive latency and,
//! when given the server's PID on the same host, its CPU and memory per connection.
//!
//! Timeline: connect and subscribe all → settle → warm-up (publishing, nothing counted) →
//! measured window → report.

pub mod frames;
pub mod procstat;
pub mod publisher;
pub mod subscribers;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use thiserror::Error;

pub use publisher::PublishMode;
use publisher::{run_publisher, PublisherPlan};
use subscribers::{run_worker, wait_ready, WorkerCounters, WorkerPlan};

/// Nanoseconds since the Unix epoch (the clock publisher and subscribers share).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// WebSocket URL, `ws://host:port/path`.
    pub url: String,
    /// Subscribers.
    pub subscribers: usize,
    /// Channels (subscriber i joins channel i mod C; the publisher round-robins them).
    pub channels: usize,
    /// Events per second over all channels.
    pub rate: f64,
    /// Padding bytes per event.
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

/// What was measured.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct LoadReport {
    /// Subscribers that connected and subscribed.
    pub subscribers: u64,
    /// Seconds to connect and subscribe them all.
    pub connect_seconds: f64,
    /// Events published per second in the window.
    pub published_per_second: f64,
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
    /// Server CPU in % of one core over the window (needs the PID).
    pub server_cpu_percent: Option<f64>,
    /// Server resident memory at the end, MiB.
    pub server_rss_mib: Option<f64>,
    /// (RSS at end − RSS before connecting) / subscribers, KiB.
    pub server_rss_per_connection_kib: Option<f64>,
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
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
    /// The URL is not `ws://host:port/path`.
    #[error("invalid url `{0}`: expected ws://host:port/path")]
    Url(String),
    /// A thread or socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a single subscriber could subscribe.
    #[error("no subscriber could connect to {0}")]
    NoSubscribers(String),
}

fn parse_url(url: &str) -> Result<(SocketAddr, String, String), LoadError> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| LoadError::Url(url.into()))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/ws"),
    };
    let addr = host
        .to_socket_addrs()
        .map_err(|_| LoadError::Url(url.into()))?
        .next()
        .ok_or_else(|| LoadError::Url(url.into()))?;
    Ok((addr, host.to_string(), path.to_string()))
}

/// Runs one measurement.
pub fn run(cfg: &LoadConfig) -> Result<LoadReport, LoadError> {
    let (addr, host, path) = parse_url(&cfg.url)?;
    let channels: Vec<String> = (0..cfg.channels.max(1))
        .map(|i| format!("load-{i}"))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
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
            addr,
            host: host.clone(),
            path: path.clone(),
            conns,
            concurrency: cfg.connect_concurrency.max(1),
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
    let publisher = (cfg.rate > 0.0).then(|| {
        let plan = PublisherPlan {
            addr,
            host: host.clone(),
            path: path.clone(),
            api_key: cfg.api_key.clone(),
            mode: cfg.mode,
            channels: channels.clone(),
            rate: cfg.rate,
            pad: cfg.payload,
            stop: stop.clone(),
            sent: sent.clone(),
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
    let (sent0, delivered0) = (sent.load(Ordering::Relaxed), delivered(&counters));
    let cpu0 = cfg.server_pid.and_then(procstat::sample);
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
    let (sent1, delivered1) = (sent.load(Ordering::Relaxed), delivered(&counters));
    let cpu1 = cfg.server_pid.and_then(procstat::sample);
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
    let delivered_n = (delivered1 - delivered0) as f64;
    let ms = |us: u64| us as f64 / 1000.0;
    let mut report = LoadReport {
        subscribers: ready,
        connect_seconds,
        published_per_second: published / secs,
        delivered_per_second: delivered_n / secs,
        delivery_ratio: if published > 0.0 {
            delivered_n / (published * per_channel)
        } else {
            0.0
        },
        latency_ms: Percentiles {
            p50: ms(hist.value_at_quantile(0.5)),
            p99: ms(hist.value_at_quantile(0.99)),
            p999: ms(hist.value_at_quantile(0.999)),
            max: ms(hist.max()),
            count: hist.len(),
        },
        errors: counters
            .iter()
            .map(|c| c.errors.load(Ordering::Relaxed))
            .sum(),
        disconnects: counters
            .iter()
            .map(|c| c.disconnects.load(Ordering::Relaxed))
            .sum(),
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
        "| subscribers | channels | published/s | delivered/s | delivery ratio | p50 ms | p99 ms | p99.9 ms | max ms | server CPU % | server RSS MiB | RSS/conn KiB | errors/disconnects |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {} | {:.0} | {:.0} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {}/{} |\n",
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
        opt(r.server_rss_mib, 1),
        opt(r.server_rss_per_connection_kib, 2),
        r.errors,
        r.disconnects
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_host_and_path() {
        let (addr, host, path) = parse_url("ws://127.0.0.1:9000/ws").unwrap();
        assert_eq!(
            (addr.port(), host.as_str(), path.as_str()),
            (9000, "127.0.0.1:9000", "/ws")
        );
        assert!(parse_url("http://x/ws").is_err());
    }
}
