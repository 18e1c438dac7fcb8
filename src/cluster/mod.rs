//! Cluster mode: N framecast nodes share every channel through NATS JetStream. One bridge
//! thread per node, off the shard cores, owns the NATS client (async-nats on a current-thread
//! tokio runtime). The distributor hands it each tick's publications per channel with a
//! non-blocking [`ClusterLink::submit`]; the bridge commits them with per-channel optimistic
//! concurrency (`Nats-Expected-Last-Subject-Sequence`), follows the stream with an ordered
//! consumer, and hands every committed batch, from every node, back through a sink (the
//! distributor's lock-free ingress) to be delivered unchanged and in order. Shards never wait
//! on the network. docs/cluster.md has the design and its guarantees.

mod bridge;
mod head;
pub(crate) mod record;
pub(crate) mod subject;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

pub(crate) use record::EventRecord;

use crate::config::ClusterConfig;
use crate::status::ClusterStats;

/// One channel's publications of one tick, to be committed as one batch.
#[derive(Debug)]
pub(crate) struct CommitRequest {
    /// The channel.
    pub(crate) channel: Arc<str>,
    /// Its events, in order (conflated already where the namespace asks).
    pub(crate) events: Vec<EventRecord>,
    /// Names the request to the distributor (who asked, for the replies).
    pub(crate) token: u64,
    /// Write snapshot entries for its keyed events after the commit.
    pub(crate) snapshot: bool,
    /// When the distributor handed it over (commit latency, `commit_timeout`).
    pub(crate) queued_at: Instant,
}

impl CommitRequest {
    /// Bytes of the pending budget this request holds.
    pub(crate) fn cost(&self) -> usize {
        self.channel.len()
            + self
                .events
                .iter()
                .map(|e| {
                    64 + e.data.len() + e.event_type.len() + e.key.as_ref().map_or(0, |k| k.len())
                })
                .sum::<usize>()
    }
}

/// A batch the stream holds, as every node receives it.
#[derive(Debug)]
pub(crate) struct CommittedBatch {
    /// The channel.
    pub(crate) channel: Arc<str>,
    /// The channel's epoch.
    pub(crate) epoch: Arc<str>,
    /// framecast seq of the first event.
    pub(crate) first_seq: u64,
    /// The events.
    pub(crate) events: Vec<EventRecord>,
    /// On the node that wrote it: the requests it carries, in order (for the replies).
    pub(crate) tokens: Vec<u64>,
}

/// What the bridge tells the distributor.
#[derive(Debug)]
pub(crate) enum FromCluster {
    /// A committed batch, in stream order.
    Committed(CommittedBatch),
    /// A snapshot entry read at boot, before any event of its channel.
    Snapshot {
        /// The channel.
        channel: Arc<str>,
        /// Its epoch when the entry was written.
        epoch: Arc<str>,
        /// The event's seq.
        seq: u64,
        /// The event.
        event: EventRecord,
    },
    /// The event stream's incarnation id: names every channel's first epoch (sent before any
    /// batch, again whenever the stream is recreated).
    Incarnation(Arc<str>),
    /// Every batch the stream held when the node booted was sent before this.
    CaughtUp,
    /// Requests that could not be committed (broker unreachable past `commit_timeout`).
    Failed {
        /// The requests' tokens.
        tokens: Vec<u64>,
    },
}

/// Where the bridge delivers (the distributor's ingress, wired by the server).
pub(crate) type Sink = Box<dyn Fn(FromCluster) + Send>;

/// The distributor's handle on the bridge.
#[derive(Clone)]
pub(crate) struct ClusterLink {
    tx: tokio::sync::mpsc::Sender<CommitRequest>,
    pending_bytes: Arc<AtomicUsize>,
    max_pending_bytes: usize,
    /// Committed events handed to the sink and not yet taken by the distributor.
    undelivered: Arc<AtomicUsize>,
    /// The bridge's figures.
    pub(crate) stats: Arc<ClusterStats>,
    local_namespaces: Arc<[String]>,
}

impl ClusterLink {
    /// Hands a request to the bridge without waiting; gives it back if the pending budget
    /// is spent or the bridge is gone (the caller answers `UNAVAILABLE`).
    pub(crate) fn submit(&self, request: CommitRequest) -> Result<(), CommitRequest> {
        let cost = request.cost();
        if self.pending_bytes.fetch_add(cost, Ordering::Relaxed) + cost > self.max_pending_bytes {
            self.pending_bytes.fetch_sub(cost, Ordering::Relaxed);
            return Err(request);
        }
        self.tx.try_send(request).map_err(|e| {
            self.pending_bytes.fetch_sub(cost, Ordering::Relaxed);
            match e {
                tokio::sync::mpsc::error::TrySendError::Full(r)
                | tokio::sync::mpsc::error::TrySendError::Closed(r) => r,
            }
        })
    }

    /// The distributor took `events` committed events off its queue.
    pub(crate) fn taken(&self, events: usize) {
        self.undelivered.fetch_sub(events, Ordering::Relaxed);
    }

    /// Whether `channel` stays on this node: the built-in channels and `local_namespaces`.
    pub(crate) fn is_local(&self, channel: &str) -> bool {
        let namespace = crate::wire::channel::namespace(channel);
        crate::wire::channel::is_built_in(channel)
            || self.local_namespaces.iter().any(|ns| ns == namespace)
    }
}

/// The running bridge thread; stopped and joined on drop.
pub(crate) struct Bridge {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the bridge for `config`; committed batches go to `sink`. Returns at once: the broker
/// is connected (and reconnected) in the background, with backoff.
pub(crate) fn start(
    config: &ClusterConfig,
    retention: bridge::Retention,
    sink: Sink,
) -> std::io::Result<(ClusterLink, Bridge)> {
    let stats = Arc::new(ClusterStats::new(config.node.clone(), config.max_lag));
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUE_REQUESTS);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let link = ClusterLink {
        tx,
        pending_bytes: Arc::new(AtomicUsize::new(0)),
        max_pending_bytes: config.max_pending_bytes,
        undelivered: Arc::new(AtomicUsize::new(0)),
        stats: stats.clone(),
        local_namespaces: config.local_namespaces.clone().into(),
    };
    let parts = bridge::Parts {
        config: config.clone(),
        retention,
        requests: rx,
        sink,
        stats,
        pending_bytes: link.pending_bytes.clone(),
        undelivered: link.undelivered.clone(),
        stop: stop_rx,
    };
    let thread = std::thread::Builder::new()
        .name("framecast-cluster".into())
        .spawn(move || bridge::run(parts))?;
    Ok((
        link,
        Bridge {
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    ))
}

pub(crate) use bridge::Retention;

/// Requests the distributor may queue for the bridge (the byte budget binds first).
const QUEUE_REQUESTS: usize = 65_536;

#[cfg(test)]
impl ClusterLink {
    /// A link whose bridge is gone (every submit is refused), for tests of its callers.
    pub(crate) fn detached(local: &[&str]) -> ClusterLink {
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        ClusterLink {
            tx,
            pending_bytes: Arc::default(),
            max_pending_bytes: 1 << 20,
            undelivered: Arc::default(),
            stats: Arc::default(),
            local_namespaces: local.iter().map(|s| s.to_string()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(local: &[&str]) -> ClusterLink {
        ClusterLink::detached(local)
    }

    #[test]
    fn built_in_channels_and_local_namespaces_stay_on_the_node() {
        let l = link(&["telemetry"]);
        assert!(l.is_local("system.status") && l.is_local("heartbeat"));
        assert!(l.is_local("telemetry:cpu"));
        assert!(!l.is_local("chat:x") && !l.is_local("metrics"));
        assert!(
            link(&["default"]).is_local("metrics"),
            "`default` holds names without `:`"
        );
    }

    #[test]
    fn a_full_pending_budget_gives_the_request_back() {
        let l = link(&[]);
        let big = CommitRequest {
            channel: Arc::from("c"),
            events: vec![EventRecord {
                event_type: bytes::Bytes::from_static(b"\"e\""),
                data: bytes::Bytes::from(vec![b'1'; 2 << 20]),
                binary: false,
                key: None,
                frame: 1,
                timestamp: bytes::Bytes::from_static(b"t"),
            }],
            token: 1,
            snapshot: false,
            queued_at: std::time::Instant::now(),
        };
        assert!(l.submit(big).is_err());
        assert_eq!(l.pending_bytes.load(Ordering::Relaxed), 0, "nothing held");
    }
}
