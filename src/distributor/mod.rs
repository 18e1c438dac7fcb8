//! The distributor: one thread that owns every channel's sequence numbers. On each frame-clock
//! tick (or at once, in immediate mode) it takes all pending publications, numbers them per
//! channel, encodes each event once into a complete WebSocket frame, joins a channel's frames of
//! that tick into one `Bytes`, and hands each shard that has subscribers of the channel a
//! reference to it. Shards never share a lock or a map with it.
#![forbid(unsafe_code)]

pub mod channels;
pub mod ingress;
pub mod tick;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

use crate::clock::FrameClock;
use crate::driver::EventFd;
use crate::status::ServerState;
use channels::ChannelRegistry;
use ingress::IngressMsg;
pub use ingress::{Ingress, Origin, Publication, PublishError};

/// One channel's frames of one tick.
#[derive(Clone, Debug)]
pub struct ChannelFrames {
    /// The channel.
    pub channel: Arc<str>,
    /// Every event frame of the tick for this channel, joined.
    pub frames: Bytes,
    /// How many event frames `frames` holds.
    pub count: u32,
    /// For `echo = false` namespaces: the byte ranges of `frames` each publishing client must
    /// not receive back.
    pub exclusions: Option<Arc<[Exclusion]>>,
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
    /// Channels in dispatch order.
    pub items: Vec<ChannelFrames>,
}

/// The distributor's way to one shard.
pub struct ShardLink {
    /// Tick batches, bounded.
    pub batches: Sender<TickBatch>,
    /// Wakes the shard's loop.
    pub waker: Arc<EventFd>,
}

/// Upper bounds (microseconds) of the tick-duration histogram buckets; +Inf follows.
pub const TICK_BUCKETS_US: [u64; 11] = [
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
    /// Batches dropped because a shard's inbox was full.
    pub dropped_batches: AtomicU64,
    /// Publications dropped because the channel registry was full.
    pub dropped_channel_full: AtomicU64,
}

/// The distributor thread's state.
pub struct Distributor {
    rx: Receiver<IngressMsg>,
    ingress: Ingress,
    links: Vec<ShardLink>,
    registry: ChannelRegistry,
    period: Option<Duration>,
    stats: Arc<DistributorStats>,
    state: Arc<ServerState>,
    last_snapshot: Instant,
    namespaces: Arc<crate::config::Namespaces>,
}

impl Distributor {
    pub(crate) fn new(
        rx: Receiver<IngressMsg>,
        ingress: Ingress,
        links: Vec<ShardLink>,
        period: Option<Duration>,
        state: Arc<ServerState>,
        namespaces: Arc<crate::config::Namespaces>,
    ) -> Distributor {
        Distributor {
            rx,
            ingress,
            links,
            registry: ChannelRegistry::default(),
            period,
            stats: state.distributor.clone(),
            state,
            last_snapshot: Instant::now(),
            namespaces,
        }
    }

    /// Runs until [`Ingress`] receives a stop; dispatches what is pending before returning.
    pub fn run(mut self) {
        match self.period {
            Some(period) => self.run_ticked(period),
            None => self.run_immediate(),
        }
    }

    fn run_ticked(&mut self, period: Duration) {
        let mut clock = FrameClock::new(Instant::now(), period);
        loop {
            let now = Instant::now();
            let deadline = clock.deadline();
            if deadline > now {
                std::thread::sleep(deadline - now);
            }
            let tick = clock.fire(Instant::now());
            self.stats.ticks.fetch_add(1, Ordering::Relaxed);
            self.stats
                .merged_ticks
                .fetch_add(tick.merged, Ordering::Relaxed);
            self.stats
                .max_lateness_us
                .fetch_max(tick.lateness.as_micros() as u64, Ordering::Relaxed);
            let work = Instant::now();
            let running = self.collect(None);
            self.dispatch(tick.frame);
            self.record_tick(work.elapsed());
            if !running {
                return;
            }
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
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            };
            let work = Instant::now();
            let running = first.is_none() || self.collect(first);
            if self.registry.has_pending() {
                frame += 1;
                self.dispatch(frame);
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
                    if !self.registry.queue(p) {
                        self.stats
                            .dropped_channel_full
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                IngressMsg::Subscribers {
                    shard,
                    channel,
                    delta,
                    local,
                } => self.registry.set_subscribers(shard, channel, delta, local),
                IngressMsg::Stop => running = false,
            }
        }
        self.ingress.release(released);
        running
    }

    /// Encodes this tick's events and hands each shard its batch.
    fn dispatch(&mut self, frame: u64) {
        if !self.registry.has_pending() {
            return;
        }
        self.stats.busy_ticks.fetch_add(1, Ordering::Relaxed);
        let timestamp = crate::wire::timestamp();
        let per_shard = tick::encode_tick(
            &mut self.registry,
            frame,
            &timestamp,
            self.links.len(),
            &self.namespaces,
        );
        for (link, items) in self.links.iter().zip(per_shard) {
            if items.is_empty() {
                continue;
            }
            match link.batches.try_send(TickBatch { frame, items }) {
                Ok(()) => link.waker.wake(),
                Err(TrySendError::Full(_)) => {
                    self.stats.dropped_batches.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("a shard's inbox is full; dropped one tick batch");
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}
