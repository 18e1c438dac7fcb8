//! The distributor's counters: written only by its thread, read by the HTTP API and metrics.
//! Kept with the status (the reader side), so the distributor and its readers share this type
//! without depending on each other.

use std::sync::atomic::AtomicU64;

/// Upper bounds (microseconds) of the tick-duration histogram buckets; +Inf follows.
pub(crate) const TICK_BUCKETS_US: [u64; 11] = [
    10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 16_667, 33_333,
];

/// Figures the distributor publishes for status and tests (written by its thread only).
#[derive(Debug, Default)]
pub struct DistributorStats {
    /// Tick-duration histogram: counts per bucket of [`TICK_BUCKETS_US`], then +Inf.
    pub tick_buckets: [AtomicU64; TICK_BUCKETS_US.len() + 1],
    /// Sum of tick durations, in microseconds.
    pub tick_us_sum: AtomicU64,
    /// Duration of the last tick's work, in microseconds.
    pub last_tick_us: AtomicU64,
    /// Longest tick's work, in microseconds.
    pub max_tick_us: AtomicU64,
    /// Channels the distributor knows.
    pub channels: AtomicU64,
    /// Publications taken from the ingress.
    pub events_in: AtomicU64,
    /// Ticks that dispatched at least one event.
    pub busy_ticks: AtomicU64,
    /// Ticks fired.
    pub ticks: AtomicU64,
    /// Ticks merged into later ones after an overrun.
    pub merged_ticks: AtomicU64,
    /// Largest tick lateness seen, in microseconds.
    pub max_lateness_us: AtomicU64,
    /// Lateness of the last tick, in microseconds.
    pub last_lateness_us: AtomicU64,
    /// Host degradation level: conflated channels go out every 2^level ticks while tick work
    /// overruns its period (0 = every tick).
    pub host_level: AtomicU64,
    /// Subscribers answered with the events they missed (`recovered: true`).
    pub recoveries: AtomicU64,
    /// Recoveries that could not be served (`recovered: false`).
    pub recovery_misses: AtomicU64,
    /// Events held in channel histories (at the last snapshot).
    pub history_events: AtomicU64,
    /// Bytes of event frames held in channel histories (at the last snapshot).
    pub history_bytes: AtomicU64,
    /// Batches dropped because a shard's inbox was full.
    pub dropped_batches: AtomicU64,
    /// Publications dropped because the channel registry was full.
    pub dropped_channel_full: AtomicU64,
}
