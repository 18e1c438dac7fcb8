//! The bridge thread: a current-thread tokio runtime owning the NATS client. It creates the
//! streams, loads snapshot entries and replays the event stream at boot, then commits the
//! distributor's requests (one batch per channel in flight, optimistic concurrency on the
//! channel's head) and follows the event stream with an ordered consumer, handing every batch
//! to the sink in stream order. It never blocks the distributor: requests arrive on a bounded
//! queue, batches leave through the sink, and the consumer is read only while the distributor
//! keeps up (a credit of undelivered events), so a slow node lags in the log, not in memory.
// The bridge measures commit latency and request age against the clock.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream, Context};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::Stream;

use super::head::{next_numbering, Attempt, Head, InFlight, Numbering, Writer};
use super::record::{self, EventRecord, NODE};
use super::subject;
use super::{CommitRequest, CommittedBatch, FromCluster, Sink};
use crate::config::{ClusterConfig, Storage};
use crate::log_limit::LogLimiter;
use crate::status::ClusterStats;

mod commit;
mod follow;
mod streams;
#[cfg(test)]
mod tests;

/// Committed events handed to the distributor and not yet taken, past which the bridge stops
/// reading the stream.
const MAX_UNDELIVERED: usize = 65_536;
/// Largest batch payload (NATS' default `max_payload` is 1 MiB).
const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Snapshot entries the stream keeps per key (see `ensure_streams`).
const SNAPSHOT_ENTRIES_PER_KEY: i64 = 4;
/// How often the bridge checks the connection, expiries, unknown outcomes and lag.
const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// How long one request to the broker may take before its outcome counts as unknown.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// A consumer that delivered nothing this long while the stream is ahead is recreated.
const STALLED_CONSUMER: Duration = Duration::from_secs(3);

/// How long the event stream keeps batches (from the namespaces' history settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Retention {
    /// Batches kept per channel (at least 1: the head always survives).
    pub(crate) max_msgs_per_subject: i64,
    /// Age limit (zero: none).
    pub(crate) max_age: Duration,
}

/// What the bridge thread is started with.
pub(super) struct Parts {
    pub(crate) config: ClusterConfig,
    pub(crate) retention: Retention,
    pub(crate) requests: tokio::sync::mpsc::Receiver<CommitRequest>,
    pub(crate) sink: Sink,
    pub(crate) stats: Arc<ClusterStats>,
    pub(crate) pending_bytes: Arc<AtomicUsize>,
    pub(crate) undelivered: Arc<AtomicUsize>,
    pub(crate) stop: tokio::sync::oneshot::Receiver<()>,
}

/// Runs the bridge until stopped.
pub(super) fn run(parts: Parts) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cluster bridge could not start its runtime; publications will get UNAVAILABLE");
            return;
        }
    };
    runtime.block_on(Bridge::new(parts).run());
}

/// How a write ended.
enum WriteOutcome {
    /// Stored at this stream sequence.
    Stored(u64),
    /// Another writer moved the head; here is the new one (`None`: subject empty).
    Conflict(Option<Head>),
    /// The broker refused it for good (too large, ...).
    Rejected(String),
    /// No answer: stored or not, the stream will tell.
    Unknown(String),
}

type WriteFuture = Pin<Box<dyn std::future::Future<Output = (Arc<str>, WriteOutcome)>>>;
type SideFuture = Pin<Box<dyn std::future::Future<Output = ()>>>;
type Messages =
    Pin<Box<dyn Stream<Item = Result<jetstream::Message, consumer::pull::OrderedError>>>>;

/// The connection's side of the bridge: the client, what is in flight on it, the streams and
/// the consumer, and when to retry what failed.
struct Session {
    client: async_nats::Client,
    js: Context,
    /// Event batches being written.
    writes: FuturesUnordered<WriteFuture>,
    /// Snapshot entries being written.
    side: FuturesUnordered<SideFuture>,
    /// The ordered consumer of the event stream, once created.
    messages: Option<Messages>,
    /// The event stream, once ensured.
    streams: Option<stream::Stream>,
    snapshots_loaded: bool,
    last_info: Instant,
    retry_at: Instant,
    info_failures: u32,
}

struct Bridge {
    p: Parts,
    prefix: String,
    events_stream: String,
    snap_stream: String,
    boot_id: String,
    next_msg: u64,
    heads: HashMap<Arc<str>, Head>,
    writers: HashMap<Arc<str>, Writer>,
    /// Message ids of this node's batches not yet seen in the stream → their request tokens.
    own: HashMap<String, Vec<u64>>,
    /// Last stream sequence handed to the sink.
    delivered: u64,
    /// The stream's last sequence when the node booted (ready once delivered reaches it).
    boot_target: Option<u64>,
    last_delivery: Instant,
    log: LogLimiter,
    /// The event stream's incarnation (see [`crate::epoch::first`]).
    incarnation: Option<Arc<str>>,
    /// [`FromCluster::CaughtUp`] was sent.
    caught_up_handed: bool,
}

impl Bridge {
    fn new(p: Parts) -> Bridge {
        let prefix = p.config.stream.clone();
        let upper = prefix.to_ascii_uppercase();
        Bridge {
            prefix,
            events_stream: format!("{upper}_EV"),
            snap_stream: format!("{upper}_SNAP"),
            boot_id: format!("{:08x}", uuid::Uuid::new_v4().as_u128() as u32),
            next_msg: 0,
            heads: HashMap::new(),
            writers: HashMap::new(),
            own: HashMap::new(),
            delivered: 0,
            boot_target: None,
            last_delivery: Instant::now(),
            log: LogLimiter::new(Duration::from_secs(10)),
            incarnation: None,
            caught_up_handed: false,
            p,
        }
    }

    async fn run(mut self) {
        let Some(client) = self.connect().await else {
            return;
        };
        let mut session = Session {
            js: jetstream::new(client.clone()),
            client,
            writes: FuturesUnordered::new(),
            side: FuturesUnordered::new(),
            messages: None,
            streams: None,
            snapshots_loaded: false,
            last_info: Instant::now() - Duration::from_secs(10),
            retry_at: Instant::now(),
            info_failures: 0,
        };
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let credit = self.p.undelivered.load(Ordering::Relaxed) < MAX_UNDELIVERED;
            let s = &mut session;
            tokio::select! {
                _ = &mut self.p.stop => return,
                request = self.p.requests.recv() => {
                    let Some(request) = request else { return };
                    let channel = request.channel.clone();
                    self.writers.entry(channel.clone()).or_default().queue.push_back(request);
                    self.send_next(&channel, s);
                }
                Some((channel, outcome)) = s.writes.next(), if !s.writes.is_empty() => {
                    self.on_write(&channel, outcome, &s.js, &mut s.side);
                    self.send_next(&channel, s);
                }
                Some(()) = s.side.next(), if !s.side.is_empty() => {}
                message = next_message(&mut s.messages), if s.messages.is_some() && credit => {
                    match message {
                        Some(Ok(m)) => self.on_message(m),
                        Some(Err(e)) => {
                            if let Some(unlogged) = self.log.admit(Instant::now()) {
                                tracing::warn!(error = %e, unlogged, "cluster: the stream consumer failed; recreating it");
                            }
                            s.messages = None;
                        }
                        None => s.messages = None,
                    }
                }
                _ = housekeeping.tick() => self.housekeep(s, Instant::now()).await,
            }
        }
    }

    /// Every [`HOUSEKEEPING`]: the connection state, expiries, the streams (created again if
    /// they vanished), the boot snapshot load, the stream's last sequence (lag, readiness,
    /// unknown outcomes, a stalled consumer), the consumer itself, and writes that can go.
    async fn housekeep(&mut self, s: &mut Session, now: Instant) {
        let connected = s.client.connection_state() == async_nats::connection::State::Connected;
        if !connected {
            self.set_connected(false);
        }
        self.expire(now);
        if !connected {
            return;
        }
        if s.streams.is_none() {
            if now < s.retry_at {
                return;
            }
            match self.ensure_streams(&s.js).await {
                Ok((stream, incarnation)) => {
                    s.streams = Some(stream);
                    s.info_failures = 0;
                    self.adopt_incarnation(incarnation, s);
                }
                Err(e) => {
                    s.retry_at = now + Duration::from_secs(1);
                    if let Some(unlogged) = self.log.admit(now) {
                        tracing::warn!(error = %e, unlogged, "cluster: could not create the JetStream streams; retrying");
                    }
                    return;
                }
            }
        }
        if !s.snapshots_loaded {
            if now < s.retry_at {
                return;
            }
            match self.load_snapshots(&s.js).await {
                Ok(()) => s.snapshots_loaded = true,
                Err(e) => {
                    s.retry_at = now + Duration::from_secs(1);
                    if let Some(unlogged) = self.log.admit(now) {
                        tracing::warn!(error = %e, unlogged, "cluster: could not read the snapshot stream; retrying");
                    }
                    return;
                }
            }
        }
        if now - s.last_info >= Duration::from_secs(1) || self.needs_target() {
            s.last_info = now;
            self.read_stream_last(s, now).await;
        }
        let Some(events) = s.streams.as_mut() else {
            return;
        };
        if s.messages.is_none() {
            match self.follow(events).await {
                Ok(m) => {
                    s.messages = Some(m);
                    self.last_delivery = now;
                }
                Err(e) => {
                    if let Some(unlogged) = self.log.admit(now) {
                        tracing::warn!(error = %e, unlogged, "cluster: could not follow the event stream; retrying");
                    }
                }
            }
        }
        self.resolve_unknown();
        let ready: Vec<Arc<str>> = (self.writers.iter())
            .filter(|(_, w)| w.in_flight.is_none() && !w.queue.is_empty())
            .map(|(c, _)| c.clone())
            .collect();
        for channel in ready {
            self.send_next(&channel, s);
        }
        self.writers.retain(|_, w| !w.is_idle());
    }

    /// Reads the event stream's last sequence; three failures in a row while connected mean
    /// the stream may be gone (memory storage after a broker restart): it is ensured again.
    async fn read_stream_last(&mut self, s: &mut Session, now: Instant) {
        let Some(events) = s.streams.as_mut() else {
            return;
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, events.info()).await {
            Ok(Ok(info)) => {
                s.info_failures = 0;
                let last = info.state.last_sequence;
                self.set_connected(true);
                self.on_stream_last(last);
                let stalled = last > self.delivered && now - self.last_delivery > STALLED_CONSUMER;
                if stalled && s.messages.is_some() {
                    tracing::info!(
                        last,
                        delivered = self.delivered,
                        "cluster: the stream consumer stalled; recreating it"
                    );
                    s.messages = None;
                }
            }
            _ => {
                self.set_connected(false);
                s.info_failures += 1;
                if s.info_failures >= 3 {
                    s.streams = None;
                    s.messages = None;
                }
            }
        }
    }

    /// The event stream's incarnation is `incarnation`: told to the distributor; a different
    /// one than before means the stream was recreated and its sequence starts again.
    fn adopt_incarnation(&mut self, incarnation: Arc<str>, s: &mut Session) {
        if self.incarnation.as_ref() == Some(&incarnation) {
            return;
        }
        if self.incarnation.is_some() {
            tracing::warn!(%incarnation, "cluster: the event stream was recreated; every channel starts a new epoch");
            self.delivered = 0;
            self.heads.clear();
            s.messages = None;
        }
        (self.p.sink)(FromCluster::Incarnation(incarnation.clone()));
        self.incarnation = Some(incarnation);
    }

    /// Connects with exponential backoff (100 ms doubling to 5 s, with jitter); the client
    /// reconnects by itself afterwards. `None` if stopped first.
    async fn connect(&mut self) -> Option<async_nats::Client> {
        let mut delay = Duration::from_millis(100);
        loop {
            let mut options = async_nats::ConnectOptions::new()
                .name(format!("framecast-{}", self.p.config.node))
                .connection_timeout(REQUEST_TIMEOUT)
                .max_reconnects(None)
                .reconnect_delay_callback(backoff);
            if let Some(path) = &self.p.config.credentials_file {
                match options.credentials_file(path).await {
                    Ok(o) => options = o,
                    Err(e) => {
                        tracing::error!(error = %e, path = %path.display(), "cluster: cannot read cluster.credentials_file");
                        return None;
                    }
                }
            }
            let urls: Vec<&str> = self.p.config.urls.iter().map(String::as_str).collect();
            let attempt = tokio::select! {
                _ = &mut self.p.stop => return None,
                c = options.connect(urls.as_slice()) => c,
            };
            match attempt {
                Ok(client) => {
                    self.p.stats.connects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(node = %self.p.config.node, "cluster: connected to NATS");
                    return Some(client);
                }
                Err(e) => {
                    if let Some(unlogged) = self.log.admit(Instant::now()) {
                        tracing::warn!(error = %e, unlogged, retry_in_ms = delay.as_millis() as u64, "cluster: NATS unreachable; publications wait (then UNAVAILABLE), node-local channels continue");
                    }
                    let until = tokio::time::sleep(jitter(delay));
                    tokio::pin!(until);
                    loop {
                        tokio::select! {
                            _ = &mut self.p.stop => return None,
                            _ = &mut until => break,
                            r = self.p.requests.recv() => match r {
                                Some(request) => {
                                    let c = request.channel.clone();
                                    self.writers.entry(c).or_default().queue.push_back(request);
                                }
                                None => return None,
                            },
                        }
                        self.expire(Instant::now());
                    }
                    self.expire(Instant::now());
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn set_connected(&self, on: bool) {
        let was = self.p.stats.connected.swap(on, Ordering::Relaxed);
        if was != on {
            if on {
                tracing::info!("cluster: JetStream reachable");
            } else {
                tracing::warn!("cluster: JetStream unreachable; node not ready");
            }
        }
    }
}

async fn next_message(
    messages: &mut Option<Messages>,
) -> Option<Result<jetstream::Message, consumer::pull::OrderedError>> {
    match messages {
        Some(m) => m.next().await,
        None => std::future::pending().await,
    }
}

/// The client's reconnect delay: 100 ms doubling to 5 s, with jitter.
fn backoff(attempts: usize) -> Duration {
    let base = Duration::from_millis(100) * 2u32.saturating_pow(attempts.min(6) as u32);
    jitter(base.min(Duration::from_secs(5)))
}

/// `d` ± 25%.
fn jitter(d: Duration) -> Duration {
    let r = (uuid::Uuid::new_v4().as_u128() % 500) as f64 / 1000.0; // 0 ..0.5
    d.mul_f64(0.75 + r)
}
