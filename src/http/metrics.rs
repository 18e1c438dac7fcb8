//! `GET /metrics`: Prometheus text exposition (format 0.0.4) built from the per-shard and
//! distributor counters when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Response;
use crate::conn::CloseReason;
use crate::status::ServerState;
use crate::status::ShardStats;
use crate::status::TICK_BUCKETS_US;
use crate::table::send_queue::SEND_WAIT_BUCKETS_MS;

/// A per-shard gauge: name, help, and how to read it from a shard's counters.
type ShardGauge = (&'static str, &'static str, fn(&ShardStats) -> u64);

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One family per row (name, kind, help, value), each a single unlabelled sample.
fn unlabelled(out: &mut String, rows: &[(&str, &str, &str, f64)]) {
    for &(name, kind, help, value) in rows {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}

/// A histogram family: `counts` per bucket of `bounds` (seconds), then one for +Inf.
fn histogram(out: &mut String, name: &str, help: &str, bounds: &[f64], counts: &[u64], sum: f64) {
    family(out, name, "histogram", help);
    let mut cumulative = 0;
    for (bound, count) in bounds.iter().zip(counts) {
        cumulative += count;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += counts[bounds.len()];
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {cumulative}");
}

/// Renders every metric.
pub(crate) fn render(state: &ServerState) -> Response {
    let mut o = String::with_capacity(8192);
    let t = state.totals();
    let d = &state.distributor;

    let us = |v: &std::sync::atomic::AtomicU64| get(v) as f64 / 1e6;
    let simple: [(&str, &str, &str, f64); 24] = [
        ("framecast_connections", "gauge", "Open connections.", t.connections as f64),
        ("framecast_connects_total", "counter", "Connections accepted.", t.accepted as f64),
        (
            "framecast_events_published_total",
            "counter",
            "Publications taken in by the distributor.",
            get(&d.events_in) as f64,
        ),
        (
            "framecast_frames_written_total",
            "counter",
            "Event frames delivered (events x subscribers).",
            t.frames_out as f64,
        ),
        ("framecast_sends_total", "counter", "Vectored socket sends.", t.sends as f64),
        (
            "framecast_bytes_written_total",
            "counter",
            "Bytes written to sockets.",
            t.bytes_out as f64,
        ),
        (
            "framecast_slow_consumer_closes_total",
            "counter",
            "Connections closed for passing max_queued_bytes.",
            t.slow_consumers as f64,
        ),
        (
            "framecast_tls_failures_total",
            "counter",
            "TLS sessions closed for a protocol error: not TLS, a failed handshake, a bad record.",
            t.tls_failures as f64,
        ),
        (
            "framecast_tls_kernel_sessions_total",
            "counter",
            "TLS sessions handed to kernel TLS after their handshake (the kernel encrypts their sends).",
            t.tls_kernel_sessions as f64,
        ),
        (
            "framecast_channels",
            "gauge",
            "Channels known to the distributor.",
            get(&d.channels) as f64,
        ),
        ("framecast_ticks_total", "counter", "Frame-clock ticks.", get(&d.ticks) as f64),
        (
            "framecast_ticks_merged_total",
            "counter",
            "Ticks merged into later ones after an overrun.",
            get(&d.merged_ticks) as f64,
        ),
        (
            "framecast_tick_lateness_max_seconds",
            "gauge",
            "Largest frame-clock lateness seen.",
            us(&d.max_lateness_us),
        ),
        (
            "framecast_tick_lateness_seconds",
            "gauge",
            "Frame-clock lateness of the last tick.",
            us(&d.last_lateness_us),
        ),
        (
            "framecast_host_degrade_level",
            "gauge",
            "Conflated channels go out every 2^level ticks while tick work overruns (0 = every tick).",
            get(&d.host_level) as f64,
        ),
        (
            "framecast_recoveries_total",
            "counter",
            "Subscribes with since answered with every missed event.",
            get(&d.recoveries) as f64,
        ),
        (
            "framecast_recovery_misses_total",
            "counter",
            "Subscribes with since that could not be recovered (recovered: false).",
            get(&d.recovery_misses) as f64,
        ),
        (
            "framecast_history_events",
            "gauge",
            "Events held in channel histories.",
            get(&d.history_events) as f64,
        ),
        (
            "framecast_history_bytes",
            "gauge",
            "Bytes of event frames held in channel histories.",
            get(&d.history_bytes) as f64,
        ),
        (
            "framecast_dropped_events_total",
            "counter",
            "Events not delivered to full client queues (volatile and conflated channels).",
            t.dropped_events as f64,
        ),
        (
            "framecast_gap_notices_total",
            "counter",
            "gap notices sent to clients.",
            t.gap_notices as f64,
        ),
        (
            "framecast_degraded_connections",
            "gauge",
            "Connections stepped down to a lower rate on conflated channels.",
            t.degraded as f64,
        ),
        (
            "framecast_publications_dropped_channel_limit_total",
            "counter",
            "Publications to a channel that did not exist while clients were at max_channels.",
            get(&d.dropped_channel_full) as f64,
        ),
        (
            "framecast_shard_batches_dropped_total",
            "counter",
            "Tick batches dropped because a shard inbox was full.",
            get(&d.dropped_batches) as f64,
        ),
    ];
    unlabelled(&mut o, &simple);
    family(
        &mut o,
        "framecast_disconnects_total",
        "counter",
        "Connections closed, by reason.",
    );
    for reason in CloseReason::ALL {
        let n: u64 = state
            .shards
            .iter()
            .map(|s| get(&s.closed_by_reason[reason.index()]))
            .sum();
        let _ = writeln!(
            o,
            "framecast_disconnects_total{{reason=\"{}\"}} {n}",
            reason.as_str()
        );
    }

    let tick_counts: Vec<u64> = d.tick_buckets.iter().map(get).collect();
    let tick_bounds: Vec<f64> = TICK_BUCKETS_US.iter().map(|&b| b as f64 / 1e6).collect();
    histogram(
        &mut o,
        "framecast_tick_duration_seconds",
        "Distributor work per tick.",
        &tick_bounds,
        &tick_counts,
        get(&d.tick_us_sum) as f64 / 1e6,
    );

    let mut wait_counts = [0u64; SEND_WAIT_BUCKETS_MS.len() + 1];
    let mut wait_ms_sum = 0;
    for s in state.shards.iter() {
        for (total, bucket) in wait_counts.iter_mut().zip(&s.send_wait_buckets) {
            *total += get(bucket);
        }
        wait_ms_sum += get(&s.send_wait_ms_sum);
    }
    let wait_bounds: Vec<f64> = SEND_WAIT_BUCKETS_MS
        .iter()
        .map(|&b| f64::from(b) / 1e3)
        .collect();
    histogram(
        &mut o,
        "framecast_send_queue_wait_seconds",
        "Time a connection with output waited in its shard's send queue before its send \
         started (one pass over the busy connections when a shard is saturated).",
        &wait_bounds,
        &wait_counts,
        wait_ms_sum as f64 / 1e3,
    );

    let per_shard: [ShardGauge; 4] = [
        (
            "framecast_shard_connections",
            "Open connections per shard.",
            |s| get(&s.connections),
        ),
        (
            "framecast_shard_channels",
            "Channels with local subscribers per shard.",
            |s| get(&s.channels),
        ),
        (
            "framecast_shard_frames_written",
            "Event frames delivered per shard.",
            |s| get(&s.frames_out),
        ),
        (
            "framecast_shard_bytes_written",
            "Bytes written per shard.",
            |s| get(&s.bytes_out),
        ),
    ];
    for (name, help, read) in per_shard {
        family(&mut o, name, "gauge", help);
        for (i, s) in state.shards.iter().enumerate() {
            let _ = writeln!(o, "{name}{{shard=\"{i}\"}} {}", read(s));
        }
    }
    if let Some(c) = state.cluster.as_deref() {
        cluster(&mut o, c);
    }
    Response {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        headers: Vec::new(),
        body: o.into_bytes(),
    }
}

/// The `framecast_cluster_*` families (cluster mode only).
fn cluster(o: &mut String, c: &crate::status::ClusterStats) {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let connected = c.connected.load(std::sync::atomic::Ordering::Relaxed);
    let rows: [(&str, &str, &str, f64); 10] = [
        (
            "framecast_cluster_connected",
            "gauge",
            "1 while the NATS JetStream cluster is reachable.",
            flag(connected),
        ),
        (
            "framecast_cluster_ready",
            "gauge",
            "1 while the node is connected, caught up and not lagging (/readyz).",
            flag(c.ready()),
        ),
        (
            "framecast_cluster_lag_events",
            "gauge",
            "Batches in the event stream this node has not delivered yet.",
            get(&c.lag) as f64,
        ),
        (
            "framecast_cluster_commits_total",
            "counter",
            "Batches this node committed.",
            get(&c.commits) as f64,
        ),
        (
            "framecast_cluster_commit_retries_total",
            "counter",
            "Commits retried (another node wrote first, or the outcome was unknown).",
            get(&c.retries) as f64,
        ),
        (
            "framecast_cluster_replayed_events_total",
            "counter",
            "Events delivered from the stream while catching up.",
            get(&c.replayed) as f64,
        ),
        (
            "framecast_cluster_lost_events_total",
            "counter",
            "Events the stream no longer held when this node reached them (it lagged past the retention); subscribers got a gap.",
            get(&c.lost) as f64,
        ),
        (
            "framecast_cluster_received_events_total",
            "counter",
            "Events received from the stream (every node's).",
            get(&c.received) as f64,
        ),
        (
            "framecast_cluster_unavailable_total",
            "counter",
            "Publications answered UNAVAILABLE (not committed in time).",
            get(&c.unavailable) as f64,
        ),
        (
            "framecast_cluster_pending_bytes",
            "gauge",
            "Bytes of publications waiting for a commit.",
            get(&c.pending_bytes) as f64,
        ),
    ];
    unlabelled(o, &rows);
    let bounds: Vec<f64> = crate::status::COMMIT_BUCKETS_US
        .iter()
        .map(|&b| b as f64 / 1e6)
        .collect();
    let counts: Vec<u64> = c.commit_buckets.iter().map(get).collect();
    histogram(
        o,
        "framecast_cluster_commit_seconds",
        "Commit latency: batch sent to JetStream until acknowledged.",
        &bounds,
        &counts,
        get(&c.commit_us_sum) as f64 / 1e6,
    );
}
