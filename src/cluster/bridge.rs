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
use async_nats::HeaderMap;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::Stream;

use super::head::{next_numbering, Attempt, Head, InFlight, Numbering, Writer};
use super::record::{self, EventRecord, NODE};
use super::subject;
use super::{CommitRequest, CommittedBatch, FromCluster, Sink};
use crate::config::{ClusterConfig, Storage};
use crate::log_limit::LogLimiter;
use crate::status::ClusterStats;

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
    /// The event stream's incarnation (see [`super::first_epoch`]).
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

    /// Creates (or updates) the event and snapshot streams; returns the event stream and its
    /// incarnation id.
    async fn ensure_streams(&self, js: &Context) -> Result<(stream::Stream, Arc<str>), String> {
        let storage = match self.p.config.storage {
            Storage::File => stream::StorageType::File,
            Storage::Memory => stream::StorageType::Memory,
        };
        let events = stream::Config {
            name: self.events_stream.clone(),
            subjects: vec![format!("{}.ev.>", self.prefix)],
            max_messages_per_subject: self.p.retention.max_msgs_per_subject,
            max_age: self.p.retention.max_age,
            storage,
            num_replicas: self.p.config.replicas,
            allow_direct: true,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let snapshots = stream::Config {
            name: self.snap_stream.clone(),
            subjects: vec![format!("{}.snap.>", self.prefix)],
            // Two writers' entries for one key can land out of order: a few are kept and a
            // booting node takes the highest seq.
            max_messages_per_subject: SNAPSHOT_ENTRIES_PER_KEY,
            storage,
            num_replicas: self.p.config.replicas,
            allow_direct: true,
            ..Default::default()
        };
        let (stream, incarnation) = ensure_stream(js, events).await?;
        ensure_stream(js, snapshots).await?;
        tracing::info!(stream = %self.events_stream, %incarnation, "cluster: streams ready");
        Ok((stream, incarnation))
    }

    /// Reads the snapshot stream's entries into the sink (boot only); the distributor keeps the
    /// highest seq per key.
    async fn load_snapshots(&mut self, js: &Context) -> Result<(), String> {
        let mut stream = js
            .get_stream(&self.snap_stream)
            .await
            .map_err(|e| e.to_string())?;
        let total = stream
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .messages;
        if total == 0 {
            return Ok(());
        }
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        let mut loaded = 0u64;
        loop {
            let next = tokio::time::timeout(REQUEST_TIMEOUT, messages.next()).await;
            let m = match next {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(None) | Err(_) => return Err("the snapshot stream ended early".into()),
            };
            let pending = m.info().map(|i| i.pending).unwrap_or(0);
            if let Some(entry) = self.snapshot_entry(&m) {
                (self.p.sink)(entry);
                loaded += 1;
            }
            if pending == 0 {
                break;
            }
        }
        tracing::info!(entries = loaded, "cluster: snapshot entries loaded");
        Ok(())
    }

    fn snapshot_entry(&self, m: &jetstream::Message) -> Option<FromCluster> {
        let channel = subject::snapshot_channel_of(&self.prefix, m.subject.as_str())?;
        let n = Numbering::from_headers(m.headers.as_ref()?)?;
        let event = record::decode(&m.payload, 1).ok()?.pop()?;
        Some(FromCluster::Snapshot {
            channel: Arc::from(channel),
            epoch: n.epoch,
            seq: n.first_seq,
            event,
        })
    }

    /// An ordered consumer of the event stream from the first batch not yet delivered.
    async fn follow(&mut self, events: &mut stream::Stream) -> Result<Messages, String> {
        let deliver_policy = if self.delivered == 0 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: self.delivered + 1,
            }
        };
        let consumer = tokio::time::timeout(
            REQUEST_TIMEOUT,
            events.create_consumer(consumer::pull::OrderedConfig {
                deliver_policy,
                ..Default::default()
            }),
        )
        .await
        .map_err(|_| "timed out creating the consumer".to_string())?
        .map_err(|e| e.to_string())?;
        let messages = consumer.messages().await.map_err(|e| e.to_string())?;
        if self.boot_target.is_none() {
            let last = events
                .info()
                .await
                .map_err(|e| e.to_string())?
                .state
                .last_sequence;
            self.boot_target = Some(last);
            self.on_stream_last(last);
        }
        Ok(Box::pin(messages))
    }

    /// The stream's last sequence is `last`: lag, boot readiness, unknown outcomes' targets.
    fn on_stream_last(&mut self, last: u64) {
        self.p
            .stats
            .lag
            .store(last.saturating_sub(self.delivered), Ordering::Relaxed);
        if self
            .boot_target
            .is_some_and(|target| self.delivered >= target)
        {
            self.hand_caught_up();
        }
        for w in self.writers.values_mut() {
            if let Some(InFlight {
                attempt: Attempt::Unknown { target: t @ None },
                ..
            }) = &mut w.in_flight
            {
                *t = Some(last);
            }
        }
    }

    /// Tells the distributor, once, that everything the stream held at boot is handed over:
    /// it turns the node ready when it has dispatched that much.
    fn hand_caught_up(&mut self) {
        if !self.caught_up_handed {
            self.caught_up_handed = true;
            tracing::info!(
                delivered = self.delivered,
                "cluster: caught up with the stream"
            );
            (self.p.sink)(FromCluster::CaughtUp);
        }
    }

    fn needs_target(&self) -> bool {
        self.writers.values().any(|w| {
            matches!(
                w.in_flight,
                Some(InFlight {
                    attempt: Attempt::Unknown { target: None },
                    ..
                })
            )
        })
    }

    /// One batch from the stream, any node's.
    fn on_message(&mut self, m: jetstream::Message) {
        let Ok(info) = m.info() else { return };
        let (stream_seq, pending) = (info.stream_sequence, info.pending);
        if stream_seq <= self.delivered {
            return; // already delivered (a recreated consumer)
        }
        self.delivered = stream_seq;
        self.last_delivery = Instant::now();
        self.p.stats.lag.store(pending, Ordering::Relaxed);
        let Some(batch) = self.decode(&m, stream_seq) else {
            if let Some(unlogged) = self.log.admit(Instant::now()) {
                tracing::warn!(subject = %m.subject, stream_seq, unlogged, "cluster: skipped a message that is not a framecast batch");
            }
            return;
        };
        let events = batch.events.len();
        self.p
            .stats
            .received
            .fetch_add(events as u64, Ordering::Relaxed);
        if !self.caught_up_handed || pending > 0 {
            self.p
                .stats
                .replayed
                .fetch_add(events as u64, Ordering::Relaxed);
        }
        self.p.undelivered.fetch_add(events, Ordering::Relaxed);
        (self.p.sink)(FromCluster::Committed(batch));
        if self.boot_target.is_some_and(|target| stream_seq >= target) {
            self.hand_caught_up();
        }
    }

    fn decode(&mut self, m: &jetstream::Message, stream_seq: u64) -> Option<CommittedBatch> {
        let channel: Arc<str> = Arc::from(subject::channel_of(&self.prefix, m.subject.as_str())?);
        let headers = m.headers.as_ref()?;
        let n = Numbering::from_headers(headers)?;
        let events = record::decode(&m.payload, n.count as usize).ok()?;
        let head = n.head_at(stream_seq);
        match self.heads.get_mut(&channel) {
            Some(h) if h.stream_seq >= stream_seq => {}
            Some(h) => *h = head,
            None => {
                self.heads.insert(channel.clone(), head);
            }
        }
        let tokens = headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .and_then(|id| self.own.remove(id.as_str()))
            .unwrap_or_default();
        Some(CommittedBatch {
            channel,
            epoch: n.epoch,
            first_seq: n.first_seq,
            events,
            tokens,
        })
    }

    /// Sends the channel's next batch if none is in flight.
    fn send_next(&mut self, channel: &Arc<str>, s: &mut Session) {
        if s.streams.is_none() || !self.p.stats.connected.load(Ordering::Relaxed) {
            return;
        }
        let Some(w) = self.writers.get_mut(channel) else {
            return;
        };
        if w.in_flight.is_some() || w.queue.is_empty() {
            return;
        }
        let requests = w.take_batch(MAX_BATCH_BYTES);
        self.next_msg += 1;
        let msg_id = format!("{}-{}-{}", self.p.config.node, self.boot_id, self.next_msg);
        self.own
            .insert(msg_id.clone(), requests.iter().map(|r| r.token).collect());
        let mut batch = InFlight {
            requests,
            msg_id,
            attempt: Attempt::Sending,
            sent_at: Instant::now(),
            numbering: None,
        };
        let (write, numbering) = self.write(channel, &batch, &s.js);
        batch.numbering = Some(numbering);
        s.writes.push(write);
        if let Some(w) = self.writers.get_mut(channel) {
            w.in_flight = Some(batch);
        }
    }

    /// The write of `batch` as numbered by the channel's current head.
    fn write(
        &self,
        channel: &Arc<str>,
        batch: &InFlight,
        js: &Context,
    ) -> (WriteFuture, Numbering) {
        let events: Vec<EventRecord> = batch
            .requests
            .iter()
            .flat_map(|r| r.events.iter().cloned())
            .collect();
        let first = || match (&self.incarnation, self.p.retention.max_age.is_zero()) {
            (Some(inc), true) => super::first_epoch(inc, channel),
            _ => new_epoch(),
        };
        let (expected, n) = next_numbering(self.heads.get(channel), events.len() as u64, first);
        let mut headers = HeaderMap::new();
        headers.insert(record::SEQ, n.first_seq.to_string());
        headers.insert(record::COUNT, n.count.to_string());
        headers.insert(record::EPOCH, n.epoch.to_string());
        headers.insert(NODE, self.p.config.node.as_str());
        let message = jetstream::message::PublishMessage::build()
            .payload(record::encode(&events))
            .headers(headers)
            .message_id(&batch.msg_id)
            .expected_last_subject_sequence(expected);
        let subject = subject::event_subject(&self.prefix, channel);
        let js = js.clone();
        let channel = channel.clone();
        let write = Box::pin(async move {
            let outcome = write_once(&js, subject, message).await;
            (channel, outcome)
        });
        (write, n)
    }

    fn on_write(
        &mut self,
        channel: &Arc<str>,
        outcome: WriteOutcome,
        js: &Context,
        side: &mut FuturesUnordered<SideFuture>,
    ) {
        let Some(w) = self.writers.get_mut(channel) else {
            return;
        };
        let Some(mut batch) = w.in_flight.take() else {
            return;
        };
        match outcome {
            WriteOutcome::Stored(stream_seq) => {
                let Some(n) = batch.numbering.clone() else {
                    return;
                };
                let us = batch.sent_at.elapsed().as_micros() as u64;
                self.p.stats.record_commit(us, n.count);
                let head = n.head_at(stream_seq);
                if self
                    .heads
                    .get(channel)
                    .is_none_or(|h| h.stream_seq < stream_seq)
                {
                    self.heads.insert(channel.clone(), head);
                }
                self.write_snapshots(channel, &batch, &n, js, side);
                self.release(&batch.requests);
            }
            WriteOutcome::Conflict(head) => {
                self.p.stats.retries.fetch_add(1, Ordering::Relaxed);
                match head {
                    Some(h) => {
                        self.heads.insert(channel.clone(), h);
                    }
                    None => {
                        self.heads.remove(channel);
                    }
                }
                batch.attempt = Attempt::Sending;
                // Resent by `send_next`'s caller through the queue's front.
                let w = self.writers.get_mut(channel).expect("looked up above");
                for r in batch.requests.into_iter().rev() {
                    w.queue.push_front(r);
                }
                // The same message id would be fine, but a fresh one keeps `own` exact.
                let tokens = self.own.remove(&batch.msg_id);
                debug_assert!(tokens.is_some());
            }
            WriteOutcome::Rejected(why) => {
                tracing::warn!(channel = %channel, error = %why, "cluster: the broker refused a batch; its publishers get UNAVAILABLE");
                self.own.remove(&batch.msg_id);
                self.fail(batch.requests);
            }
            WriteOutcome::Unknown(why) => {
                self.p.stats.retries.fetch_add(1, Ordering::Relaxed);
                if let Some(unlogged) = self.log.admit(Instant::now()) {
                    tracing::warn!(channel = %channel, error = %why, unlogged, "cluster: a commit's outcome is unknown; resolving it from the stream");
                }
                batch.attempt = Attempt::Unknown { target: None };
                let w = self.writers.get_mut(channel).expect("looked up above");
                w.in_flight = Some(batch);
            }
        }
    }

    /// Unknown outcomes whose stream position was reached: committed if the stream held the
    /// batch's message id (the consumer took it out of `own`), else sent again.
    fn resolve_unknown(&mut self) {
        let delivered = self.delivered;
        for w in self.writers.values_mut() {
            let Some(InFlight {
                attempt: Attempt::Unknown { target: Some(t) },
                msg_id,
                ..
            }) = &w.in_flight
            else {
                continue;
            };
            if delivered < *t {
                continue;
            }
            let committed = !self.own.contains_key(msg_id);
            let batch = w.in_flight.take().expect("matched above");
            if committed {
                let cost: usize = batch.requests.iter().map(CommitRequest::cost).sum();
                self.p.pending_bytes.fetch_sub(cost, Ordering::Relaxed);
            } else {
                self.own.remove(&batch.msg_id);
                for r in batch.requests.into_iter().rev() {
                    w.queue.push_front(r);
                }
            }
        }
        self.p.stats.pending_bytes.store(
            self.p.pending_bytes.load(Ordering::Relaxed) as u64,
            Ordering::Relaxed,
        );
    }

    /// Snapshot entries for a committed batch's keyed events (newest per key), written after
    /// the commit; a booting node reads them before the events.
    fn write_snapshots(
        &self,
        channel: &Arc<str>,
        batch: &InFlight,
        n: &Numbering,
        js: &Context,
        side: &mut FuturesUnordered<SideFuture>,
    ) {
        if !batch.requests.iter().any(|r| r.snapshot) {
            return;
        }
        let events: Vec<&EventRecord> = batch
            .requests
            .iter()
            .flat_map(|r| r.events.iter())
            .collect();
        let mut newest: HashMap<Option<&[u8]>, (u64, &EventRecord)> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            newest.insert(e.key.as_deref(), (n.first_seq + i as u64, e));
        }
        for (key, (seq, e)) in newest {
            let mut headers = HeaderMap::new();
            headers.insert(record::SEQ, seq.to_string());
            headers.insert(record::COUNT, "1");
            headers.insert(record::EPOCH, n.epoch.to_string());
            let message = jetstream::message::PublishMessage::build()
                .payload(record::encode(std::slice::from_ref(e)))
                .headers(headers);
            let subject = subject::snapshot_subject(&self.prefix, channel, key);
            let js = js.clone();
            side.push(Box::pin(async move {
                let sent = async { js.send_publish(subject, message).await?.await.map(|_| ()) };
                if let Ok(Err(e)) | Err(e) = tokio::time::timeout(REQUEST_TIMEOUT, sent)
                    .await
                    .map_err(|_| {
                        async_nats::jetstream::context::PublishError::new(
                            async_nats::jetstream::context::PublishErrorKind::TimedOut,
                        )
                    })
                {
                    tracing::debug!(error = %e, "cluster: a snapshot entry was not written");
                }
            }));
        }
    }

    /// Queued requests older than `commit_timeout` get `UNAVAILABLE` (in-flight ones wait for
    /// their outcome: they may have been committed).
    fn expire(&mut self, now: Instant) {
        let timeout = self.p.config.commit_timeout;
        let mut expired = Vec::new();
        for w in self.writers.values_mut() {
            while w
                .queue
                .front()
                .is_some_and(|r| now.duration_since(r.queued_at) >= timeout)
            {
                expired.extend(w.queue.pop_front());
            }
        }
        if !expired.is_empty() {
            self.fail(expired);
        }
    }

    fn fail(&mut self, requests: Vec<CommitRequest>) {
        self.p
            .stats
            .unavailable
            .fetch_add(requests.len() as u64, Ordering::Relaxed);
        self.release(&requests);
        (self.p.sink)(FromCluster::Failed {
            tokens: requests.iter().map(|r| r.token).collect(),
        });
    }

    fn release(&self, requests: &[CommitRequest]) {
        let cost: usize = requests.iter().map(CommitRequest::cost).sum();
        let left = self.p.pending_bytes.fetch_sub(cost, Ordering::Relaxed) - cost;
        self.p
            .stats
            .pending_bytes
            .store(left as u64, Ordering::Relaxed);
    }
}

/// Gets the stream `config` names, creating it (with a new incarnation id in its description)
/// if it does not exist, and updating its limits if they changed; returns it and its
/// incarnation. Two nodes creating it at once: one wins, the other reads the winner's.
async fn ensure_stream(
    js: &Context,
    mut config: stream::Config,
) -> Result<(stream::Stream, Arc<str>), String> {
    let name = config.name.clone();
    let timed = |what: &'static str| {
        let name = name.clone();
        move |_| format!("{name}: {what} timed out")
    };
    let existing = tokio::time::timeout(REQUEST_TIMEOUT, js.get_stream(&config.name))
        .await
        .map_err(timed("lookup"))?;
    let stream = match existing {
        Ok(s) => s,
        Err(_) => {
            let id = format!("{:016x}", uuid::Uuid::new_v4().as_u128() as u64);
            config.description = Some(format!("{INCARNATION_PREFIX}{id}"));
            let created = tokio::time::timeout(REQUEST_TIMEOUT, js.create_stream(config.clone()))
                .await
                .map_err(timed("create"))?;
            match created {
                Ok(s) => s,
                Err(_) => tokio::time::timeout(REQUEST_TIMEOUT, js.get_stream(&config.name))
                    .await
                    .map_err(timed("lookup"))?
                    .map_err(|e| format!("{}: {e}", config.name))?,
            }
        }
    };
    let have = stream.cached_info().config.clone();
    let incarnation = have
        .description
        .as_deref()
        .and_then(|d| d.strip_prefix(INCARNATION_PREFIX))
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(have.name.as_str()));
    let changed = have.max_messages_per_subject != config.max_messages_per_subject
        || have.max_age != config.max_age
        || have.num_replicas != config.num_replicas
        || have.subjects != config.subjects;
    if changed {
        config.description = have.description.clone();
        tokio::time::timeout(REQUEST_TIMEOUT, js.update_stream(config.clone()))
            .await
            .map_err(timed("update"))?
            .map_err(|e| format!("{}: {e}", config.name))?;
        tracing::info!(stream = %config.name, "cluster: stream limits updated");
    }
    Ok((stream, incarnation))
}

/// What a framecast-created stream's description starts with, before its incarnation id.
const INCARNATION_PREFIX: &str = "framecast stream, incarnation ";

/// One publish and its acknowledgement, classified.
async fn write_once(
    js: &Context,
    subject: String,
    message: jetstream::message::PublishMessage,
) -> WriteOutcome {
    use async_nats::jetstream::context::PublishErrorKind as Kind;
    let sent = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let ack = js.send_publish(subject.clone(), message).await?;
        ack.await
    })
    .await;
    match sent {
        Ok(Ok(ack)) => WriteOutcome::Stored(ack.sequence),
        Ok(Err(e)) if e.kind() == Kind::WrongLastSequence => {
            WriteOutcome::Conflict(read_head(js, &subject).await)
        }
        Ok(Err(e)) if e.kind() == Kind::MaxPayloadExceeded => WriteOutcome::Rejected(e.to_string()),
        Ok(Err(e)) => WriteOutcome::Unknown(e.to_string()),
        Err(_) => WriteOutcome::Unknown("no acknowledgement in time".into()),
    }
}

/// The channel's head from the stream leader (not a replica: a replica may lag).
async fn read_head(js: &Context, subject: &str) -> Option<Head> {
    let stream = js.get_stream_no_info(stream_of(subject)).await.ok()?;
    let m = tokio::time::timeout(
        REQUEST_TIMEOUT,
        stream.get_last_raw_message_by_subject(subject),
    )
    .await
    .ok()?
    .ok()?;
    Numbering::from_headers(&m.headers).map(|n| n.head_at(m.sequence))
}

/// The events stream's name for one of its subjects (`fc.ev.x` → `FC_EV`).
fn stream_of(subject: &str) -> String {
    let prefix = subject.split(".ev.").next().unwrap_or(subject);
    format!("{}_EV", prefix.to_ascii_uppercase())
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

/// A new epoch: 48 random bits in hex, as single-node channels have.
fn new_epoch() -> Arc<str> {
    let n = uuid::Uuid::new_v4().as_u128() as u64 & 0xffff_ffff_ffff;
    Arc::from(format!("{n:012x}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn bridge() -> (Bridge, Arc<Mutex<Vec<FromCluster>>>) {
        let config = crate::config::ClusterConfig::from_toml(
            &"urls = \"nats://127.0.0.1:1\"\nnode = \"t\""
                .parse()
                .unwrap(),
        )
        .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink_got = got.clone();
        let (_tx, requests) = tokio::sync::mpsc::channel(1);
        let (_stop_tx, stop) = tokio::sync::oneshot::channel();
        let parts = Parts {
            config,
            retention: Retention {
                max_msgs_per_subject: 1,
                max_age: Duration::ZERO,
            },
            requests,
            sink: Box::new(move |m| sink_got.lock().unwrap().push(m)),
            stats: Arc::new(ClusterStats::default()),
            pending_bytes: Arc::new(AtomicUsize::new(0)),
            undelivered: Arc::new(AtomicUsize::new(0)),
            stop,
        };
        (Bridge::new(parts), got)
    }

    fn request(token: u64) -> CommitRequest {
        CommitRequest {
            channel: Arc::from("c"),
            events: vec![EventRecord {
                event_type: bytes::Bytes::from_static(b"\"e\""),
                data: bytes::Bytes::from_static(b"1"),
                key: None,
                frame: 1,
                timestamp: bytes::Bytes::from_static(b"t"),
            }],
            token,
            snapshot: false,
            queued_at: Instant::now(),
        }
    }

    /// A batch whose acknowledgement was lost, waiting for the stream to reach `target`.
    fn unknown(b: &mut Bridge, msg_id: &str, target: u64) {
        let r = request(1);
        b.p.pending_bytes.fetch_add(r.cost(), Ordering::Relaxed);
        b.own.insert(msg_id.into(), vec![1]);
        b.writers.entry(Arc::from("c")).or_default().in_flight = Some(InFlight {
            requests: vec![r],
            msg_id: msg_id.into(),
            attempt: Attempt::Unknown {
                target: Some(target),
            },
            sent_at: Instant::now(),
            numbering: None,
        });
    }

    #[test]
    fn an_unknown_outcome_waits_until_the_stream_position_is_reached() {
        let (mut b, _) = bridge();
        unknown(&mut b, "m1", 5);
        b.delivered = 4;
        b.resolve_unknown();
        assert!(
            b.writers["c"].in_flight.is_some(),
            "not decided before the stream reaches 5"
        );
    }

    #[test]
    fn a_lost_ack_whose_batch_the_stream_holds_is_committed_not_resent() {
        let (mut b, _) = bridge();
        unknown(&mut b, "m1", 5);
        b.own.remove("m1"); // the consumer saw the batch's message id
        b.delivered = 5;
        b.resolve_unknown();
        let w = &b.writers["c"];
        assert!(
            w.in_flight.is_none() && w.queue.is_empty(),
            "done, nothing to resend"
        );
        assert_eq!(
            b.p.pending_bytes.load(Ordering::Relaxed),
            0,
            "its budget is given back"
        );
    }

    #[test]
    fn a_lost_ack_whose_batch_the_stream_lacks_is_sent_again() {
        let (mut b, got) = bridge();
        unknown(&mut b, "m1", 5);
        b.delivered = 5;
        b.resolve_unknown();
        let w = &b.writers["c"];
        assert!(w.in_flight.is_none());
        assert_eq!(w.queue.len(), 1, "queued again, first");
        assert!(!b.own.contains_key("m1"));
        assert!(got.lock().unwrap().is_empty(), "nobody was told it failed");
    }

    #[test]
    fn only_requests_never_sent_expire_as_unavailable() {
        let (mut b, got) = bridge();
        unknown(&mut b, "m1", 5);
        let mut old = request(2);
        old.queued_at = Instant::now() - Duration::from_secs(10);
        b.p.pending_bytes.fetch_add(old.cost(), Ordering::Relaxed);
        b.writers.get_mut("c").unwrap().queue.push_back(old);
        b.expire(Instant::now());
        let failed: Vec<u64> = got
            .lock()
            .unwrap()
            .iter()
            .flat_map(|m| match m {
                FromCluster::Failed { tokens } => tokens.clone(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(
            failed,
            vec![2],
            "the queued one fails; the one in flight may have committed"
        );
        assert!(b.writers["c"].in_flight.is_some());
    }
}
