//! Cluster mode's figures: written by the bridge thread (connection, commits, lag) and read by
//! `/api/v1/status`, `/metrics`, `/readyz` and `system.status`. Kept with the status so the
//! bridge and its readers share the type without depending on each other.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Upper bounds (microseconds) of the commit-latency histogram buckets; +Inf follows.
pub(crate) const COMMIT_BUCKETS_US: [u64; 10] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
];

/// What the bridge reports.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// This node's name.
    pub node: String,
    /// Connected to a NATS server with the streams in place.
    pub connected: AtomicBool,
    /// Has replayed the stream once since start (boot catch-up done).
    pub booted: AtomicBool,
    /// Events behind the stream (the consumer's pending count).
    pub lag: AtomicU64,
    /// Stream sequence of the last batch this node delivered.
    pub delivered_seq: AtomicU64,
    /// The stream's last sequence when last read (about once a second).
    pub stream_last_seq: AtomicU64,
    /// Past this lag the node is not ready.
    pub max_lag: u64,
    /// Batches this node committed.
    pub commits: AtomicU64,
    /// Events in them.
    pub committed_events: AtomicU64,
    /// Commits retried (another node wrote first, or the outcome was unknown).
    pub retries: AtomicU64,
    /// Events delivered from the stream while catching up (boot or after a lag).
    pub replayed: AtomicU64,
    /// Events received from the stream (every node's).
    pub received: AtomicU64,
    /// Events the stream no longer held when this node reached them (it lagged past the
    /// retention); its subscribers were told by a `gap`.
    pub lost: AtomicU64,
    /// Publications answered `UNAVAILABLE` (no commit in time, or the buffer was full).
    pub unavailable: AtomicU64,
    /// Bytes of publications waiting for a commit.
    pub pending_bytes: AtomicU64,
    /// Connections to the broker established (the first and every reconnect).
    pub connects: AtomicU64,
    /// Commit latency histogram (publish sent → acknowledged): per bucket, then +Inf.
    pub commit_buckets: [AtomicU64; COMMIT_BUCKETS_US.len() + 1],
    /// Sum of commit latencies, microseconds.
    pub commit_us_sum: AtomicU64,
}

impl ClusterStats {
    /// Fresh figures for node `node`.
    pub fn new(node: String, max_lag: u64) -> ClusterStats {
        ClusterStats {
            node,
            max_lag,
            ..ClusterStats::default()
        }
    }

    /// Whether the node may take traffic: connected, caught up once, and not lagging.
    pub fn ready(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
            && self.booted.load(Ordering::Relaxed)
            && self.lag.load(Ordering::Relaxed) <= self.max_lag
    }

    /// Why the node is not ready, if it is not.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.connected.load(Ordering::Relaxed) {
            Some("not connected to the NATS JetStream cluster")
        } else if !self.booted.load(Ordering::Relaxed) {
            Some("catching up with the stream")
        } else if self.lag.load(Ordering::Relaxed) > self.max_lag {
            Some("lagging behind the stream by more than cluster.max_lag events")
        } else {
            None
        }
    }

    /// Records one commit's latency.
    pub fn record_commit(&self, us: u64, events: u64) {
        let bucket = COMMIT_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(COMMIT_BUCKETS_US.len());
        self.commit_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.commit_us_sum.fetch_add(us, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_events.fetch_add(events, Ordering::Relaxed);
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_ready_only_connected_caught_up_and_within_max_lag() {
        let s = ClusterStats::new("a".into(), 100);
        assert_eq!(
            s.not_ready_reason(),
            Some("not connected to the NATS JetStream cluster")
        );
        s.connected.store(true, Ordering::Relaxed);
        assert_eq!(s.not_ready_reason(), Some("catching up with the stream"));
        s.booted.store(true, Ordering::Relaxed);
        s.lag.store(100, Ordering::Relaxed);
        assert!(s.ready(), "at max_lag is still ready");
        s.lag.store(101, Ordering::Relaxed);
        assert!(!s.ready());
        assert!(s.not_ready_reason().unwrap().contains("max_lag"));
    }
}
