//! The distributor: one thread that owns every channel's sequence numbers. On each frame-clock
//! tick (or at once, in immediate mode) it takes all pending publications, numbers them per
//! channel, encodes each event once into a complete WebSocket frame, joins a channel's frames of
//! that tick into one `Bytes`, and hands each shard that has subscribers of the channel a
//! reference to it. Shards never share a lock or a map with it.
#![forbid(unsafe_code)]

mod ack;
pub(crate) mod batch;
mod binary_twin;
pub mod channels;
mod clustered;
pub mod conflate;
pub(crate) mod deflated;
pub(crate) mod form;
pub(crate) mod history;
pub(crate) mod host_level;
pub mod ingress;
mod join;
pub mod snapshot;
pub mod tick;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};

use crate::clock::FrameClock;
use crate::driver::EventFd;
use crate::log_limit::LogLimiter;
use crate::status::ServerState;
pub(crate) use crate::status::{DistributorStats, TICK_BUCKETS_US};
pub(crate) use ack::{AckOutcome, AckTo, PublishAck};
pub use batch::Batch;
use channels::ChannelRegistry;
pub(crate) use conflate::Variants;
pub use form::{EventForms, Form, Twin};
use host_level::HostLevel;
pub(crate) use ingress::Origin;
pub use ingress::{
    Ingress, JoinReply, JoinRequest, Joined, JoinedChannel, Publication, PublishError,
};
use ingress::{IngressMsg, IngressRx};

use crate::config::Delivery;
use crate::limits::SHARD_BACKLOG_BATCHES;

/// One channel's frames of one tick.
#[derive(Clone, Debug)]
pub struct ChannelFrames {
    /// The channel.
    pub channel: Arc<str>,
    /// Every event frame of the tick for this channel, joined (may be empty when only rate-level
    /// variants are due).
    pub frames: Bytes,
    /// Sequence number of the first frame in `frames`.
    pub first_seq: u64,
    /// How many event frames `frames` holds.
    pub count: u32,
    /// The namespace's delivery class.
    pub delivery: Delivery,
    /// Conflated channels at a rate-level boundary: the shared frames for stepped-down
    /// subscribers, per level.
    pub variants: Option<Arc<Variants>>,
    /// For `echo = false` namespaces: the byte ranges of `frames` each publishing client must
    /// not receive back.
    pub exclusions: Option<Arc<[Exclusion]>>,
    /// The compressed twin of `frames` (when `compression` is on), for connections that agreed
    /// to permessage-deflate.
    pub deflated: Option<Twin>,
    /// With binary events among them: the same events with those as binary frames (the
    /// others plain), for connections that opened with `?binary=1`.
    pub binary: Option<Twin>,
    /// `binary`'s form for connections that also agreed to permessage-deflate: its JSON events
    /// compressed (from `deflated`), its binary frames as they are.
    pub binary_deflated: Option<Twin>,
    /// The tick's events as one message, for connections that asked for tick batches (`None`
    /// for a single event, or when a publisher must not get its own event back).
    pub batch: Option<Batch>,
}

/// Bytes `start..end` of a tick's joined frames were published by `origin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exclusion {
    /// The publishing connection.
    pub origin: Origin,
    /// First byte of its event frame.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

/// What one shard receives for one tick: per channel, that tick's frames joined.
#[derive(Debug)]
pub struct TickBatch {
    /// Frame number of the tick.
    pub frame: u64,
    /// Rate-level boundaries the tick crosses ([`conflate::boundaries`]).
    pub boundaries: u8,
    /// Channels in dispatch order.
    pub items: Vec<ChannelFrames>,
    /// `published` replies for this shard's publishers, applied before `items`.
    pub acks: Vec<PublishAck>,
}

/// What the distributor sends a shard, in one ordered inbox.
#[derive(Debug)]
pub(crate) enum ShardMsg {
    /// One tick's frames.
    Tick(TickBatch),
    /// The answer to a join: the `subscribed` reply and the frames that precede live events.
    Joined(Box<Joined>),
}

/// The distributor's way to one shard.
pub(crate) struct ShardLink {
    /// The shard's inbox, bounded.
    pub batches: Sender<ShardMsg>,
    /// Wakes the shard's loop.
    pub waker: Arc<EventFd>,
    /// Messages waiting because the inbox was full (order is kept: once anything waits here,
    /// everything after waits too).
    pub backlog: VecDeque<ShardMsg>,
}

impl ShardLink {
    /// A link with an empty backlog.
    pub(crate) fn new(batches: Sender<ShardMsg>, waker: Arc<EventFd>) -> ShardLink {
        ShardLink {
            batches,
            waker,
            backlog: VecDeque::new(),
        }
    }

    /// Sends in order; a full inbox parks messages in the backlog. Tick batches beyond
    /// [`SHARD_BACKLOG_BATCHES`] are dropped (counted); join answers never are. Returns the
    /// number of tick batches dropped.
    fn send(&mut self, msg: ShardMsg) -> u64 {
        self.backlog.push_back(msg);
        let mut sent = false;
        while let Some(front) = self.backlog.pop_front() {
            match self.batches.try_send(front) {
                Ok(()) => sent = true,
                Err(TrySendError::Full(m)) => {
                    self.backlog.push_front(m);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.backlog.clear();
                    break;
                }
            }
        }
        if sent {
            self.waker.wake();
        }
        let mut dropped = 0;
        while self.backlog.len() > SHARD_BACKLOG_BATCHES {
            match self
                .backlog
                .iter()
                .position(|m| matches!(m, ShardMsg::Tick(_)))
            {
                Some(i) => {
                    self.backlog.remove(i);
                    dropped += 1;
                }
                None => break,
            }
        }
        dropped
    }
}

/// The distributor thread's state.
pub(crate) struct Distributor {
    rx: Receiver<IngressMsg>,
    doorbell: Receiver<()>,
    ingress: Ingress,
    links: Vec<ShardLink>,
    registry: ChannelRegistry,
    period: Option<Duration>,
    stats: Arc<DistributorStats>,
    state: Arc<ServerState>,
    last_snapshot: Instant,
    namespaces: Arc<crate::config::Namespaces>,
    /// Frame number of the previous dispatch (for rate-level boundaries).
    last_frame: u64,
    host: HostLevel,
    /// Keeps level changes on a saturated core from flooding the log.
    host_log: LogLimiter,
    /// The host level as of the last change (to tell a step down from a step back up).
    host_level_logged: u8,
    /// Cluster mode: shared channels are committed through the bridge.
    cluster: Option<clustered::ClusterSide>,
}

// The distributor owns its thread and its frame clock; tick.rs below it is handed the time.
#[allow(clippy::disallowed_methods)]
impl Distributor {
    pub(crate) fn new(
        rx: IngressRx,
        ingress: Ingress,
        links: Vec<ShardLink>,
        period: Option<Duration>,
        state: Arc<ServerState>,
        namespaces: Arc<crate::config::Namespaces>,
        max_channels: usize,
    ) -> Distributor {
        Distributor {
            rx: rx.msgs,
            doorbell: rx.doorbell,
            ingress,
            links,
            registry: ChannelRegistry::with_client_limit(max_channels),
            period,
            stats: state.distributor.clone(),
            state,
            last_snapshot: Instant::now(),
            namespaces,
            last_frame: 0,
            host: HostLevel::new(period.unwrap_or(Duration::from_secs(1))),
            host_log: LogLimiter::new(Duration::from_secs(10)),
            host_level_logged: 0,
            cluster: None,
        }
    }

    /// The frame clock's rate (the period was made from it: 1 / `tick_hz`).
    fn tick_hz(&self) -> u32 {
        self.period
            .map_or(0, |p| (1.0 / p.as_secs_f64()).round() as u32)
    }

    /// Cluster mode: shared channels commit through `link` and come back from the stream.
    pub(crate) fn with_cluster(mut self, link: Option<crate::cluster::ClusterLink>) -> Distributor {
        self.registry.clustered = link.is_some();
        self.cluster = link.map(clustered::ClusterSide::new);
        self
    }

    /// Which wire forms the shards' connections take now (their gauges, summed).
    fn wire_demand(&self) -> channels::WireDemand {
        let any = |gauge: fn(&crate::status::ShardStats) -> &std::sync::atomic::AtomicU64| {
            self.state
                .shards
                .iter()
                .any(|s| gauge(s).load(Ordering::Relaxed) > 0)
        };
        channels::WireDemand {
            deflate: any(|s| &s.deflate_connections),
            batch: any(|s| &s.batch_connections),
        }
    }

    /// With `level`: every event is also compressed once (permessage-deflate) at that level.
    pub(crate) fn with_compression(mut self, level: Option<u32>) -> Distributor {
        self.registry.compress_at(level);
        self
    }

    /// Runs until [`Ingress`] receives a stop; dispatches what is pending before returning.
    pub(crate) fn run(mut self) {
        match self.period {
            Some(period) => self.run_ticked(period),
            None => self.run_immediate(),
        }
    }

    fn run_ticked(&mut self, period: Duration) {
        // In a cluster every node numbers a tick by the wall clock, so frames agree.
        let mut clock = match &self.cluster {
            Some(_) => {
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                FrameClock::wall_aligned(Instant::now(), unix, self.tick_hz())
            }
            None => FrameClock::new(Instant::now(), period),
        };
        let mut running = true;
        loop {
            running &= self.wait_for(clock.deadline());
            let tick = clock.fire(Instant::now());
            self.stats.ticks.fetch_add(1, Ordering::Relaxed);
            self.stats
                .merged_ticks
                .fetch_add(tick.merged, Ordering::Relaxed);
            let late_us = tick.lateness.as_micros() as u64;
            self.stats
                .max_lateness_us
                .fetch_max(late_us, Ordering::Relaxed);
            self.stats
                .last_lateness_us
                .store(late_us, Ordering::Relaxed);
            let work = Instant::now();
            running &= self.collect(None);
            self.dispatch(tick.frame);
            let took = work.elapsed();
            self.record_tick(took);
            self.adapt_host_level(took, tick.merged > 0);
            if !running {
                return;
            }
        }
    }

    /// Sleeps until `deadline`, answering joins as they arrive meanwhile (so a `subscribe` is
    /// answered in microseconds, not at the next tick); publications queued before a join are
    /// taken with it, still numbered only at the tick. False once a stop was seen.
    fn wait_for(&mut self, deadline: Instant) -> bool {
        let mut running = true;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return running;
            }
            // Never disconnected: `self.ingress` holds a ringer.
            if self.doorbell.recv_timeout(deadline - now).is_ok() {
                running &= self.collect(None);
            }
        }
    }

    /// Steps conflated channels down (every 2nd, 4th... tick) while a tick's work overruns
    /// most of its period or ticks merge, and back up on a calm tick. Changes are logged at
    /// most once per 10 s (with how many were not), every one at debug level.
    fn adapt_host_level(&mut self, took: Duration, merged: bool) {
        let Some(level) = self.host.observe(took, merged) else {
            return;
        };
        self.stats
            .host_level
            .store(u64::from(level), Ordering::Relaxed);
        let every = 1u32 << level;
        let tick_us = took.as_micros() as u64;
        let cause = HostLevel::cause(took, self.period.unwrap_or(Duration::from_secs(1)));
        // Without a conflated namespace the level changes nothing anyone receives, and a step
        // back up is good news: neither is a warning.
        let any_conflated = self
            .namespaces
            .iter()
            .any(|(_, ns)| ns.delivery == crate::config::Delivery::Conflated);
        let stepped_down = level > self.host_level_logged;
        self.host_level_logged = level;
        match (any_conflated && stepped_down)
            .then(|| self.host_log.admit(Instant::now()))
            .flatten()
        {
            Some(unlogged) => tracing::warn!(
                level,
                tick_us,
                merged,
                cause = cause.as_str(),
                unlogged_changes = unlogged,
                "frame clock behind ({}): conflated channels now every {every} ticks",
                cause.describe()
            ),
            None => tracing::debug!(
                level,
                tick_us,
                merged,
                cause = cause.as_str(),
                "host degrade level changed"
            ),
        }
    }

    fn record_tick(&mut self, took: Duration) {
        let us = took.as_micros() as u64;
        let bucket = TICK_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(TICK_BUCKETS_US.len());
        self.stats.tick_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.stats.tick_us_sum.fetch_add(us, Ordering::Relaxed);
        self.stats.last_tick_us.store(us, Ordering::Relaxed);
        self.stats.max_tick_us.fetch_max(us, Ordering::Relaxed);
        let since = self.last_snapshot.elapsed();
        if since >= Duration::from_secs(1) {
            self.last_snapshot = Instant::now();
            let namespaces = self.namespaces.clone();
            self.registry
                .expire(self.last_snapshot, |name| namespaces.of(name).clone());
            let (events, bytes) = self.registry.history_totals();
            self.stats.history_events.store(events, Ordering::Relaxed);
            self.stats.history_bytes.store(bytes, Ordering::Relaxed);
            let snapshot = self.registry.snapshot(since.as_secs_f64());
            self.stats
                .channels
                .store(snapshot.len() as u64, Ordering::Relaxed);
            self.state.set_channels(snapshot);
        }
    }

    fn run_immediate(&mut self) {
        let mut frame = 0;
        loop {
            let first = match self.rx.recv_timeout(Duration::from_millis(250)) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let work = Instant::now();
            let running = first.is_none() || self.collect(first);
            let outgoing = self.cluster.as_ref().is_some_and(|c| c.has_outgoing());
            if self.registry.has_pending() || !self.registry.acks.is_empty() || outgoing {
                frame += 1;
                self.dispatch(frame);
            } else if let Some(cluster) = &mut self.cluster {
                cluster.after_dispatch();
            }
            self.record_tick(work.elapsed());
            if !running {
                return;
            }
        }
    }

    /// Takes everything queued; false once a stop was seen (or every sender is gone).
    fn collect(&mut self, first: Option<IngressMsg>) -> bool {
        let mut released = 0;
        let mut running = true;
        let mut next = first;
        loop {
            let msg = match next.take() {
                Some(m) => m,
                None => match self.rx.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        running = false;
                        break;
                    }
                },
            };
            match msg {
                IngressMsg::Publish(p) => {
                    released += Ingress::cost_of(&p);
                    self.stats.events_in.fetch_add(1, Ordering::Relaxed);
                    let p = match &mut self.cluster {
                        Some(cluster) => match cluster.take(p, &mut self.registry) {
                            Some(local) => local,
                            None => continue,
                        },
                        None => p,
                    };
                    if !self.registry.queue(p) {
                        self.stats
                            .dropped_channel_full
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                IngressMsg::Cluster(msg) => {
                    if let Some(cluster) = &mut self.cluster {
                        cluster.receive(msg, &mut self.registry, &self.namespaces, Instant::now());
                    }
                }
                IngressMsg::Join(request) => self.join(request),
                IngressMsg::Leave { shard, channel } => self.registry.leave(shard, &channel),
                IngressMsg::Stop => running = false,
            }
        }
        self.ingress.release(released);
        running
    }

    /// Answers a join on the asking shard's inbox, ahead of the next tick's batch.
    fn join(&mut self, request: JoinRequest) {
        let joined = join::answer(&mut self.registry, request, &self.namespaces);
        for recovered in joined.channels.iter().filter_map(|c| c.recovered) {
            let counter = if recovered {
                &self.stats.recoveries
            } else {
                &self.stats.recovery_misses
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let shard = joined.request.shard;
        if let Some(link) = self.links.get_mut(shard) {
            let dropped = link.send(ShardMsg::Joined(Box::new(joined)));
            self.count_dropped(dropped);
        }
    }

    fn count_dropped(&self, dropped: u64) {
        if dropped > 0 {
            self.stats
                .dropped_batches
                .fetch_add(dropped, Ordering::Relaxed);
            tracing::error!(dropped, "a shard's inbox is full; dropped tick batches");
        }
    }

    /// Encodes this tick's events and hands each shard its batch.
    fn dispatch(&mut self, frame: u64) {
        self.dispatch_tick(frame);
        if let Some(cluster) = &mut self.cluster {
            cluster.after_dispatch();
        }
    }

    fn dispatch_tick(&mut self, frame: u64) {
        let levels = self.period.is_some();
        let boundaries = if levels {
            conflate::boundaries(self.last_frame, frame)
        } else {
            0
        };
        self.last_frame = frame;
        let outgoing = self.cluster.as_ref().is_some_and(|c| c.has_outgoing());
        if !outgoing
            && !self.registry.has_pending()
            && self.registry.acks.is_empty()
            && (boundaries == 0 || self.registry.levelled.is_empty())
        {
            return;
        }
        self.stats.busy_ticks.fetch_add(1, Ordering::Relaxed);
        let wall = crate::wire::WallTime::of(std::time::SystemTime::now());
        let timestamp = wall.rfc3339();
        if let Some(cluster) = &mut self.cluster {
            let mut acks = Vec::new();
            cluster.flush(
                frame,
                &timestamp,
                &self.namespaces,
                &mut acks,
                Instant::now(),
            );
            self.registry.acks.extend(acks);
        }
        self.registry.demand = self.wire_demand();
        let input = tick::TickInput {
            frame,
            timestamp: &timestamp,
            unix_ms: wall.unix_ms(),
            shards: self.links.len(),
            now: Instant::now(),
            boundaries,
            host_level: self.host.level(),
            levels,
        };
        let per_shard = tick::encode_tick(&mut self.registry, &input, &self.namespaces);
        // Most ticks acknowledge nothing: no per-shard lists are allocated for them.
        let mut acks: Vec<Vec<PublishAck>> = Vec::new();
        if !self.registry.acks.is_empty() {
            acks.resize_with(self.links.len(), Vec::new);
            for ack in self.registry.acks.drain(..) {
                if let Some(list) = acks.get_mut(ack.shard as usize) {
                    list.push(ack);
                }
            }
        }
        let mut acks = acks.into_iter();
        let mut dropped = 0;
        for (link, items) in self.links.iter_mut().zip(per_shard) {
            let acks = acks.next().unwrap_or_default();
            if items.is_empty() && acks.is_empty() && link.backlog.is_empty() {
                continue;
            }
            dropped += link.send(ShardMsg::Tick(TickBatch {
                frame,
                boundaries,
                items,
                acks,
            }));
        }
        self.count_dropped(dropped);
    }
}
