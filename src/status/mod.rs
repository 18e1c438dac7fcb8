//! The server's read side: what the HTTP API, `/metrics` and the built-in channels report. Every
//! figure is either a per-shard or distributor counter (written by one thread, summed here when
//! read) or a snapshot the distributor and the observer refresh about once a second; nothing on
//! the per-event path writes shared state for this.
#![forbid(unsafe_code)]

mod cluster_stats;
mod distributor_stats;
mod shard_stats;

pub(crate) use cluster_stats::ClusterStats;
pub(crate) use cluster_stats::COMMIT_BUCKETS_US;
pub(crate) use distributor_stats::{DistributorStats, TICK_BUCKETS_US};
pub(crate) use shard_stats::ShardStats;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// One channel as the distributor last saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelInfo {
    /// Channel name.
    pub name: Arc<str>,
    /// Subscribers over all shards.
    pub subscribers: u64,
    /// Sequence number of the last event (0 before the first).
    pub last_seq: u64,
    /// Events per second over the last snapshot period.
    pub events_per_second: f64,
    /// The channel's epoch (see docs/protocol.md, delivery semantics).
    pub epoch: Arc<str>,
    /// Events held in its history.
    pub history: u64,
}

/// Per-second rates, refreshed by the observer thread (stored as f64 bits).
#[derive(Debug, Default)]
pub struct Rates {
    events_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
}

impl Rates {
    /// Publications taken in per second.
    pub fn events_in(&self) -> f64 {
        f64::from_bits(self.events_in.load(Ordering::Relaxed))
    }
    /// Event frames delivered to subscribers per second.
    pub fn frames_out(&self) -> f64 {
        f64::from_bits(self.frames_out.load(Ordering::Relaxed))
    }
    /// Bytes written to sockets per second.
    pub fn bytes_out(&self) -> f64 {
        f64::from_bits(self.bytes_out.load(Ordering::Relaxed))
    }
    /// Stores new rates.
    pub fn set(&self, events_in: f64, frames_out: f64, bytes_out: f64) {
        self.events_in.store(events_in.to_bits(), Ordering::Relaxed);
        self.frames_out
            .store(frames_out.to_bits(), Ordering::Relaxed);
        self.bytes_out.store(bytes_out.to_bits(), Ordering::Relaxed);
    }
}

/// Counter totals over every shard at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Open connections.
    pub connections: u64,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Event frames delivered (one per event per subscriber).
    pub frames_out: u64,
    /// Vectored sends.
    pub sends: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Slow-consumer closes.
    pub slow_consumers: u64,
    /// Events not delivered to full queues (volatile and conflated channels).
    pub dropped_events: u64,
    /// `gap` notices queued.
    pub gap_notices: u64,
    /// Connections currently stepped down on conflated channels.
    pub degraded: u64,
    /// Failed TLS sessions.
    pub tls_failures: u64,
    /// TLS sessions handed to kernel TLS.
    pub tls_kernel_sessions: u64,
}

/// Shared, read-mostly server state.
#[derive(Debug)]
pub struct ServerState {
    /// When the server started.
    pub started: Instant,
    /// I/O backend name.
    pub backend: &'static str,
    /// Frame clock rate.
    pub tick_hz: u32,
    /// Every shard's counters, by shard index.
    pub shards: Vec<Arc<ShardStats>>,
    /// The distributor's counters.
    pub distributor: Arc<DistributorStats>,
    /// The latest channel snapshot, sorted by name.
    pub channels: RwLock<Arc<Vec<ChannelInfo>>>,
    /// Set once shutdown began.
    pub draining: AtomicBool,
    /// Bearer key for the API, if any.
    pub api_key: Option<String>,
    /// Browser origins that may call the HTTP API (`*` = any; empty = no CORS headers).
    pub cors_origins: Vec<String>,
    /// Per-second rates.
    pub rates: Rates,
    /// Cluster mode's figures (`None`: single-node mode).
    pub cluster: Option<Arc<ClusterStats>>,
}

impl ServerState {
    /// Sums the shard counters.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.shards {
            t.connections += ShardStats::get(&s.connections);
            t.accepted += ShardStats::get(&s.accepted);
            t.frames_out += ShardStats::get(&s.frames_out);
            t.sends += ShardStats::get(&s.sends);
            t.bytes_out += ShardStats::get(&s.bytes_out);
            t.slow_consumers += ShardStats::get(&s.slow_consumers);
            t.dropped_events += ShardStats::get(&s.dropped_events);
            t.gap_notices += ShardStats::get(&s.gap_notices);
            t.degraded += ShardStats::get(&s.degraded);
            t.tls_failures += ShardStats::get(&s.tls_failures);
            t.tls_kernel_sessions += ShardStats::get(&s.tls_kernel_sessions);
        }
        t
    }

    /// Why the node should not take traffic now (draining, or the cluster is not ready).
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::Relaxed) {
            return Some("shutting down");
        }
        self.cluster.as_ref().and_then(|c| c.not_ready_reason())
    }

    /// The latest channel snapshot.
    pub fn channels(&self) -> Arc<Vec<ChannelInfo>> {
        self.channels.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Replaces the channel snapshot (distributor thread, about once a second).
    pub fn set_channels(&self, snapshot: Vec<ChannelInfo>) {
        if let Ok(mut slot) = self.channels.write() {
            *slot = Arc::new(snapshot);
        }
    }

    /// Whether shutdown began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Seconds since start.
    pub fn uptime_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}
