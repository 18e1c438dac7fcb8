//! Per-shard counters: written only by the shard's thread (relaxed atomics on the shard's own
//! cache lines), summed by readers. Nothing here is touched per subscriber.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::conn::CloseReason;
use crate::table::send_queue::SEND_WAIT_BUCKETS_MS;

/// Counters of one shard, aligned so two shards never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct ShardStats {
    /// Open connections (upgraded or not).
    pub connections: AtomicU64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections closed since start.
    pub closed: AtomicU64,
    /// Connections closed as slow consumers.
    pub slow_consumers: AtomicU64,
    /// Tick batches received from the distributor.
    pub batches: AtomicU64,
    /// Subscriber deliveries (one per subscriber per channel per tick).
    pub deliveries: AtomicU64,
    /// Event frames delivered (one per event per subscriber).
    pub frames_out: AtomicU64,
    /// Channels with local subscribers.
    pub channels: AtomicU64,
    /// Connections closed, by reason (indexed by [`CloseReason::index`]).
    pub closed_by_reason: [AtomicU64; CloseReason::ALL.len()],
    /// Vectored sends started.
    pub sends: AtomicU64,
    /// How long connections waited in the send queue before their send started: counts per
    /// bucket of [`SEND_WAIT_BUCKETS_MS`], then +Inf.
    pub send_wait_buckets: [AtomicU64; SEND_WAIT_BUCKETS_MS.len() + 1],
    /// Sum of those waits, in milliseconds.
    pub send_wait_ms_sum: AtomicU64,
    /// Bytes written to sockets.
    pub bytes_out: AtomicU64,
    /// Events not delivered to full queues (volatile and conflated channels).
    pub dropped_events: AtomicU64,
    /// `gap` notices queued.
    pub gap_notices: AtomicU64,
    /// Connections currently stepped down on conflated channels.
    pub degraded: AtomicU64,
    /// Native connections that agreed to permessage-deflate (while none does, the distributor
    /// compresses nothing).
    pub deflate_connections: AtomicU64,
    /// Native connections that asked for tick batches (while none does, none is built).
    pub batch_connections: AtomicU64,
    /// `wss://` sessions that failed (not TLS, a failed handshake, a bad record): each closed.
    pub tls_failures: AtomicU64,
    /// `wss://` sessions handed to kernel TLS after their handshake.
    pub tls_kernel_sessions: AtomicU64,
}

impl ShardStats {
    /// Adds `n` to a counter (single writer, so a plain load + store would do; relaxed RMW is as
    /// cheap uncontended and keeps readers exact).
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
