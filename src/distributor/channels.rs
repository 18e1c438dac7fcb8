//! The distributor's channel registry: per channel the sequence number and epoch, subscriber
//! counts per shard, the publications waiting for the current tick, and what the namespace asks
//! to keep (history, snapshot, conflation windows).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::conflate::RateLevels;
use super::history::History;
use super::ingress::Publication;
use super::snapshot::Snapshot;
use crate::config::Namespace;
use crate::limits::MAX_CHANNELS;

/// A part of a channel's state that most channels never use (a snapshot, rate-level windows),
/// allocated on first use: an unused one costs a pointer, so the channel map stays compact
/// (fewer cache lines touched per channel per tick, less memory per idle channel).
#[derive(Debug)]
pub struct Lazy<T>(Option<Box<T>>);

impl<T> Default for Lazy<T> {
    fn default() -> Self {
        Lazy(None)
    }
}

impl<T: Default> Lazy<T> {
    /// The part, if it was ever used.
    pub fn get(&self) -> Option<&T> {
        self.0.as_deref()
    }

    /// The part, mutably, if it was ever used.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.0.as_deref_mut()
    }

    /// The part, allocated now if this is its first use.
    pub fn get_or_default(&mut self) -> &mut T {
        self.0.get_or_insert_with(Box::default)
    }
}

/// A set of shard indices (up to 1024 shards).
#[derive(Clone, Debug, Default)]
pub struct ShardSet([u64; 16]);

impl ShardSet {
    /// Adds or removes `shard`.
    pub fn set(&mut self, shard: usize, on: bool) {
        let (w, b) = (shard / 64, shard % 64);
        if on {
            self.0[w] |= 1 << b;
        } else {
            self.0[w] &= !(1 << b);
        }
    }

    /// The shards in the set, ascending (visits set bits only: this runs per channel per tick).
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            let mut rest = bits;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let b = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    w * 64 + b
                })
            })
        })
    }

    /// Whether no shard is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
}

/// One channel's distributor-side state.
#[derive(Debug)]
pub struct ChannelState {
    /// Sequence number of the last event (0 before the first).
    pub last_seq: u64,
    /// Names this incarnation of the channel: new whenever its history is lost (restart, or the
    /// channel was forgotten), so a client's `since` from before is known to be stale.
    pub epoch: Arc<str>,
    /// Shards with at least one subscriber.
    pub shards: ShardSet,
    /// Subscribers per shard (index = shard).
    pub shard_counts: Vec<u32>,
    /// Recent events for recovery (`history_size` > 0).
    pub history: History,
    /// Newest event per key (`snapshot = true`).
    pub snapshot: Lazy<Snapshot>,
    /// Rate-level windows (conflated channels with subscribers).
    pub levels: Lazy<RateLevels>,
    /// Last frame in which the channel was dispatched.
    pub dispatched_frame: u64,
    /// Publications of the current tick, in arrival order.
    pub pending: Vec<Publication>,
    /// Subscribers over all shards.
    pub subscribers: u64,
    /// `last_seq` at the previous snapshot (for events per second).
    pub seq_at_snapshot: u64,
    /// Created by a client (a join or a client publication): counts toward `max_channels`.
    pub client_created: bool,
    /// Cluster mode: seqs `from..=to` the stream no longer held when this node reached them
    /// (it lagged past the retention); the next tick tells subscribers with a `gap`.
    pub lost: Option<Box<(u64, u64)>>,
}

impl Default for ChannelState {
    fn default() -> Self {
        ChannelState {
            last_seq: 0,
            epoch: crate::epoch::fresh(),
            shards: ShardSet::default(),
            shard_counts: Vec::new(),
            history: History::default(),
            snapshot: Lazy::default(),
            levels: Lazy::default(),
            dispatched_frame: 0,
            pending: Vec::new(),
            subscribers: 0,
            seq_at_snapshot: 0,
            client_created: false,
            lost: None,
        }
    }
}

impl ChannelState {
    /// Counts one subscriber in or out on `shard`.
    pub fn count(&mut self, shard: usize, join: bool) {
        if self.shard_counts.len() <= shard {
            self.shard_counts.resize(shard + 1, 0);
        }
        let c = &mut self.shard_counts[shard];
        if join {
            *c += 1;
            self.subscribers += 1;
        } else if *c > 0 {
            *c -= 1;
            self.subscribers -= 1;
        }
        self.shards.set(shard, *c > 0);
    }

    /// Whether the channel holds nothing worth keeping once idle (no subscribers, no history,
    /// no snapshot, no pending work).
    fn forgettable(&self) -> bool {
        self.subscribers == 0
            && self.pending.is_empty()
            && self.history.is_empty()
            && self.snapshot.get().is_none_or(Snapshot::is_empty)
            && !self.has_level_windows()
    }

    /// Whether a rate-level window holds events (the channel is visited at the next boundary).
    pub fn has_level_windows(&self) -> bool {
        self.levels.get().is_some_and(|l| !l.is_empty())
    }
}
/// Every channel the distributor knows.
#[derive(Debug)]
pub struct ChannelRegistry {
    map: HashMap<Arc<str>, ChannelState>,
    /// Channels clients may create (`max_channels`): a join or a client publication that would
    /// create one more is refused. The distributor owns the registry, so this is exact.
    client_limit: usize,
    /// Channels in `map` that a client created (built-in and server-published ones are not).
    client_channels: usize,
    /// Channels with pending publications this tick, in first-publication order.
    dirty: Vec<Arc<str>>,
    /// Conflated channels whose rate-level windows hold events.
    pub(crate) levelled: Vec<Arc<str>>,
    /// `published` replies due, drained by the distributor after each tick.
    pub(crate) acks: Vec<super::PublishAck>,
    /// Cluster mode: a channel that has events is never forgotten (the stream keeps its head,
    /// so forgetting it here would renumber it on this node only), and a channel without
    /// events has no epoch yet (`""`): the stream's first batch names it, the same on every
    /// node, and a client's `since` with the empty epoch means "from the start".
    pub(crate) clustered: bool,
    /// Cluster mode: the stream's incarnation, which names channels' first epochs.
    incarnation: Option<Arc<str>>,
    /// Cluster mode: events the stream no longer held when this node reached them, in all.
    pub(crate) lost_events: u64,
    /// With `compression` on: compresses each event once, next to its plain frame.
    pub(crate) deflater: Option<crate::protocol::compress::FrameDeflater>,
    /// Which extra wire forms connections take now (set by the distributor every tick).
    pub(crate) demand: WireDemand,
}

/// Whether any connection takes compressed frames or tick batches: the distributor builds those
/// forms only while one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireDemand {
    /// Some connection agreed to permessage-deflate.
    pub deflate: bool,
    /// Some connection asked for tick batches.
    pub batch: bool,
}

impl Default for WireDemand {
    /// Both (what a registry without a distributor, in tests and benchmarks, builds).
    fn default() -> WireDemand {
        WireDemand {
            deflate: true,
            batch: true,
        }
    }
}

impl Default for ChannelRegistry {
    fn default() -> ChannelRegistry {
        ChannelRegistry::with_client_limit(MAX_CHANNELS)
    }
}

impl ChannelRegistry {
    /// An empty registry where clients may create at most `limit` channels (server-side
    /// publications are bounded by [`MAX_CHANNELS`] only).
    pub fn with_client_limit(limit: usize) -> ChannelRegistry {
        ChannelRegistry {
            map: HashMap::new(),
            client_limit: limit.min(MAX_CHANNELS),
            client_channels: 0,
            dirty: Vec::new(),
            levelled: Vec::new(),
            acks: Vec::new(),
            clustered: false,
            incarnation: None,
            lost_events: 0,
            deflater: None,
            demand: WireDemand::default(),
        }
    }

    /// With `level`: every event is also compressed once (permessage-deflate) at that level,
    /// while some connection agreed to compression.
    pub fn compress_at(&mut self, level: Option<u32>) {
        self.deflater = level.map(crate::protocol::compress::FrameDeflater::new);
    }

    /// Whether a client may create one more channel.
    pub fn has_room_for_clients(&self) -> bool {
        self.client_room() > 0
    }

    /// How many more channels clients may create.
    pub fn client_room(&self) -> usize {
        (self.client_limit.saturating_sub(self.client_channels))
            .min(MAX_CHANNELS.saturating_sub(self.map.len()))
    }

    /// Whether `channel` exists now.
    pub fn contains(&self, channel: &str) -> bool {
        self.map.contains_key(channel)
    }

    /// Makes sure `channel` exists, creating it on behalf of a client (`client`) or the
    /// server; false when that would pass `max_channels` (clients) or [`MAX_CHANNELS`].
    fn ensure(&mut self, channel: &Arc<str>, client: bool) -> bool {
        if self.map.contains_key(channel) {
            return true;
        }
        if client && !self.has_room_for_clients() || self.map.len() >= MAX_CHANNELS {
            return false;
        }
        self.client_channels += usize::from(client);
        let state = self.map.entry(channel.clone()).or_default();
        state.client_created = client;
        if self.clustered {
            state.epoch = match &self.incarnation {
                Some(inc) => crate::epoch::first(inc, channel),
                None => Arc::from(""),
            };
        }
        true
    }

    /// Makes sure `channel` exists, created by a client if it is new; false when clients may
    /// create no more channels (`max_channels`).
    pub fn create_for_client(&mut self, channel: &Arc<str>) -> bool {
        self.ensure(channel, true)
    }

    /// Counts a subscriber in on `shard`; `None` if the channel is new and clients may create
    /// no more channels (`max_channels`).
    pub fn join(&mut self, shard: usize, channel: Arc<str>) -> Option<&mut ChannelState> {
        self.join_as(shard, channel, true)
    }

    /// Counts a subscriber in; `by_client` false for the server's own channels (its
    /// `default_channels`), which never count toward nor hit the clients' `max_channels`.
    pub fn join_as(
        &mut self,
        shard: usize,
        channel: Arc<str>,
        by_client: bool,
    ) -> Option<&mut ChannelState> {
        if !self.ensure(&channel, by_client) {
            return None;
        }
        let state = self.map.get_mut(&channel).expect("ensured");
        state.count(shard, true);
        Some(state)
    }

    /// Counts a subscriber out on `shard`.
    pub fn leave(&mut self, shard: usize, channel: &str) {
        if let Some(state) = self.map.get_mut(channel) {
            state.count(shard, false);
        }
    }

    /// Drops history older than each namespace's `history_ttl`.
    pub fn expire(&mut self, now: Instant, namespace_of: impl Fn(&str) -> Namespace) {
        for (name, state) in &mut self.map {
            if !state.history.is_empty() {
                state.history.expire(now, namespace_of(name).history_ttl);
            }
        }
    }

    /// Every channel with its figures, sorted by name; resets the per-second baseline. Channels
    /// with no subscribers, no history and no snapshot that saw no event since the previous
    /// snapshot are forgotten first, so the registry (and `max_channels`) counts live channels
    /// only; such a channel starts again at seq 1, in a new epoch, if used later.
    pub fn snapshot(&mut self, elapsed_secs: f64) -> Vec<crate::status::ChannelInfo> {
        let mut forgot_client = 0;
        let clustered = self.clustered;
        self.map.retain(|_, s| {
            let keep = !s.forgettable()
                || s.last_seq != s.seq_at_snapshot
                || (clustered && s.last_seq > 0);
            forgot_client += usize::from(!keep && s.client_created);
            keep
        });
        self.client_channels -= forgot_client;
        let mut out: Vec<_> = self
            .map
            .iter_mut()
            .map(|(name, state)| {
                let events = state.last_seq - state.seq_at_snapshot;
                state.seq_at_snapshot = state.last_seq;
                crate::status::ChannelInfo {
                    name: name.clone(),
                    subscribers: state.subscribers,
                    last_seq: state.last_seq,
                    events_per_second: if elapsed_secs > 0.0 {
                        events as f64 / elapsed_secs
                    } else {
                        0.0
                    },
                    epoch: state.epoch.clone(),
                    history: state.history.len() as u64,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Queues a publication for this tick; false if the registry is full.
    pub fn queue(&mut self, p: Publication) -> bool {
        if !self.ensure(&p.channel, p.origin.is_some()) {
            self.acks
                .extend(super::PublishAck::of(&p, super::AckOutcome::ChannelLimit));
            return false;
        }
        let state = self.map.get_mut(&p.channel).expect("ensured");
        if state.epoch.is_empty() {
            state.epoch = crate::epoch::fresh(); // a node-local channel in cluster mode
        }
        if state.pending.is_empty() {
            self.dirty.push(p.channel.clone());
        }
        state.pending.push(p);
        true
    }

    /// Queues a batch the cluster committed (seqs `first_seq..`, numbering fixed in each
    /// publication), keeping the channel's numbering contiguous: a new epoch replaces the
    /// channel's history, events already queued or dispatched are skipped, and the first batch
    /// a node sees of a channel sets where it starts. Err names what was unusual (logged).
    pub fn queue_committed(
        &mut self,
        channel: &Arc<str>,
        epoch: &Arc<str>,
        first_seq: u64,
        mut batch: Vec<Publication>,
    ) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        if !self.ensure(channel, false) {
            return Err(
                "channel table full (MAX_CHANNELS); batch not delivered on this node".into(),
            );
        }
        let state = self.map.get_mut(channel).expect("ensured");
        let mut note = Ok(());
        let queued = state.last_seq + state.pending.len() as u64;
        if state.epoch != *epoch {
            if queued > 0 {
                note = Err(format!(
                    "new epoch {epoch} (was {}): history restarts",
                    state.epoch
                ));
                state.history = History::default();
                state.snapshot = Lazy::default();
                state.pending.clear();
            }
            state.epoch = epoch.clone();
            state.last_seq = first_seq - 1;
        }
        let queued = state.last_seq + state.pending.len() as u64;
        if first_seq <= queued {
            let skip = ((queued - first_seq + 1) as usize).min(batch.len());
            batch.drain(..skip);
        } else if first_seq > queued + 1 && (queued > 0 || state.subscribers > 0) {
            // Events the stream dropped before this node read them (it was told a position
            // before them): the history has a hole (recovery across it must fail), and
            // subscribers are told by a `gap`.
            note = Err(format!(
                "seq jumps from {queued} to {first_seq}: this node lagged past the stream's retention; {} events lost here",
                first_seq - queued - 1
            ));
            state.history = History::default();
            self.lost_events += first_seq - queued - 1;
            let from = state.lost.as_deref().map_or(queued + 1, |&(from, _)| from);
            state.lost = Some(Box::new((from, first_seq - 1)));
            if state.pending.is_empty() {
                state.last_seq = first_seq - 1;
            }
        } else if first_seq > queued + 1 && state.pending.is_empty() {
            // The first batch this node sees of a channel nobody here was told a seq of.
            state.last_seq = first_seq - 1;
        }
        if batch.is_empty() {
            return note;
        }
        if state.pending.is_empty() {
            self.dirty.push(channel.clone());
        }
        state.pending.extend(batch);
        note
    }

    /// Cluster mode: the stream's incarnation is `id`; channels without events take their
    /// first epoch from it.
    pub fn set_incarnation(&mut self, id: Arc<str>) {
        for (name, state) in &mut self.map {
            if state.last_seq == 0 && state.pending.is_empty() && state.history.is_empty() {
                state.epoch = crate::epoch::first(&id, name);
            }
        }
        self.incarnation = Some(id);
    }

    /// Puts a snapshot entry read from the cluster (at boot, before the channel's events):
    /// the stream keeps a few entries per key, and the one with the highest seq wins.
    pub fn put_snapshot_entry(
        &mut self,
        channel: &Arc<str>,
        epoch: &Arc<str>,
        seq: u64,
        p: &Publication,
    ) {
        if !self.ensure(channel, false) {
            return;
        }
        let state = self.map.get_mut(channel).expect("ensured");
        if state.epoch != *epoch {
            if state.last_seq > 0 || !state.pending.is_empty() {
                return; // the channel moved on to another epoch; the entry is stale
            }
            state.epoch = epoch.clone();
            state.snapshot = Lazy::default(); // entries of another epoch
        }
        let Some(c) = &p.committed else { return };
        let kept = state
            .snapshot
            .get()
            .and_then(|s| s.seq_of_key(p.key.as_ref()));
        if kept.is_some_and(|kept| kept >= seq) {
            return; // two writers' entries raced: the newer one stays
        }
        let fields = crate::wire::event::EventFields {
            channel,
            seq,
            frame: c.frame,
            timestamp: std::str::from_utf8(&c.timestamp).unwrap_or(""),
            unix_ms: super::tick::committed_unix_ms(&c.timestamp),
            event_type: &p.event_type,
            data: &p.data,
            key: p.key.as_deref(),
            snapshot: false,
            binary: p.binary,
        };
        let snapshot = state.snapshot.get_or_default();
        let deflater = self.deflater.as_mut().filter(|_| self.demand.deflate);
        snapshot.put_with(p.key.as_ref(), &fields, deflater);
    }

    /// Whether any publication waits for dispatch.
    pub fn has_pending(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Takes the channels with pending publications, for one tick's dispatch.
    pub fn take_dirty(&mut self) -> Vec<Arc<str>> {
        std::mem::take(&mut self.dirty)
    }

    /// Gives back the (emptied) dirty list so its allocation is reused.
    pub fn return_dirty(&mut self, mut list: Vec<Arc<str>>) {
        list.clear();
        if self.dirty.is_empty() {
            self.dirty = list;
        }
    }

    /// Pushes channels back into the dirty list (their pending publications wait a tick).
    pub fn defer(&mut self, channels: impl IntoIterator<Item = Arc<str>>) {
        self.dirty.extend(channels);
    }

    /// Mutable state of a channel.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut ChannelState> {
        self.map.get_mut(name)
    }

    /// Events and frame bytes held in every channel's history.
    pub fn history_totals(&self) -> (u64, u64) {
        self.map.values().fold((0, 0), |(e, b), s| {
            (e + s.history.len() as u64, b + s.history.bytes() as u64)
        })
    }

    /// Number of channels known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no channel is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazy_part_is_allocated_on_first_use_only() {
        let mut part: Lazy<Vec<u8>> = Lazy::default();
        assert!(part.get().is_none() && part.get_mut().is_none());
        part.get_or_default().push(7);
        part.get_or_default().push(8);
        assert_eq!(part.get(), Some(&vec![7, 8]));
    }

    #[test]
    fn a_shard_set_lists_exactly_its_shards_in_ascending_order() {
        let mut set = ShardSet::default();
        for shard in [1023, 0, 64, 63, 5, 700] {
            set.set(shard, true);
        }
        set.set(5, false);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 63, 64, 700, 1023]);
        assert!(!set.is_empty());
        assert_eq!(ShardSet::default().iter().count(), 0);
    }

    #[test]
    fn idle_channels_without_subscribers_are_forgotten_at_the_second_snapshot() {
        let mut reg = ChannelRegistry::default();
        reg.join(0, Arc::from("kept"));
        reg.join(0, Arc::from("left"));
        reg.leave(0, "left");
        reg.queue(crate::distributor::Publication {
            origin: None,
            channel: Arc::from("busy"),
            event_type: bytes::Bytes::from_static(b"\"e\""),
            data: bytes::Bytes::from_static(b"1"),
            binary: false,
            key: None,
            ack: None,
            committed: None,
        });
        let _ = crate::distributor::tick::encode_tick(
            &mut reg,
            &crate::distributor::tick::TickInput::immediate(1, "t", 1, std::time::Instant::now()),
            &Default::default(),
        );
        let names = |v: Vec<crate::status::ChannelInfo>| {
            v.into_iter()
                .map(|c| c.name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(reg.snapshot(1.0)),
            vec!["busy", "kept"],
            "`left` had no subscribers and no events"
        );
        assert_eq!(names(reg.snapshot(1.0)), vec!["kept"], "`busy` went idle");
    }

    #[test]
    fn clients_create_at_most_their_limit_but_the_servers_own_channels_always_join() {
        let mut reg = ChannelRegistry::with_client_limit(1);
        assert!(reg.join(0, Arc::from("c1")).is_some());
        assert!(reg.join(0, Arc::from("c2")).is_none(), "the limit is exact");
        assert!(
            reg.join(1, Arc::from("c1")).is_some(),
            "existing channels stay joinable"
        );
        assert!(
            reg.join_as(0, Arc::from("news"), false).is_some(),
            "a default channel is the server's, not a client's"
        );
        assert!(reg.join(0, Arc::from("news")).is_some());
        assert!(reg.join(0, Arc::from("c3")).is_none());
    }

    #[test]
    fn shard_set_tracks_members() {
        let mut s = ShardSet::default();
        s.set(0, true);
        s.set(65, true);
        s.set(3, true);
        s.set(3, false);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 65]);
        s.set(0, false);
        s.set(65, false);
        assert!(s.is_empty());
    }

    fn committed(channel: &str, seq: u64, data: &'static str) -> Publication {
        Publication {
            origin: None,
            channel: Arc::from(channel),
            event_type: bytes::Bytes::from_static(b"\"e\""),
            data: bytes::Bytes::from_static(data.as_bytes()),
            binary: false,
            key: Some(bytes::Bytes::from_static(b"\"k\"")),
            ack: None,
            committed: Some(Box::new(crate::distributor::ingress::Committed {
                seq,
                frame: 7,
                timestamp: bytes::Bytes::from_static(b"t"),
            })),
        }
    }

    fn clustered() -> ChannelRegistry {
        ChannelRegistry {
            clustered: true,
            ..ChannelRegistry::default()
        }
    }

    #[test]
    fn a_cluster_channel_without_events_takes_its_first_epoch_from_the_stream() {
        let mut reg = clustered();
        reg.join(0, Arc::from("a"));
        assert_eq!(
            &*reg.get_mut("a").unwrap().epoch,
            "",
            "not known before the stream"
        );
        reg.set_incarnation(Arc::from("inc1"));
        let first = crate::epoch::first("inc1", "a");
        assert_eq!(reg.get_mut("a").unwrap().epoch, first);
        reg.join(0, Arc::from("b"));
        assert_eq!(
            reg.get_mut("b").unwrap().epoch,
            crate::epoch::first("inc1", "b")
        );
    }

    #[test]
    fn committed_batches_skip_what_was_queued_and_start_where_the_stream_is() {
        let mut reg = clustered();
        let c: Arc<str> = Arc::from("c");
        let e: Arc<str> = Arc::from("e1");
        // The first batch a node sees of a channel may start anywhere (trimmed history).
        let batch = vec![committed("c", 40, "1"), committed("c", 41, "2")];
        reg.queue_committed(&c, &e, 40, batch).unwrap();
        let state = reg.get_mut("c").unwrap();
        assert_eq!((state.last_seq, state.pending.len()), (39, 2));
        // Redelivered (a recreated consumer): only the new event is queued.
        let again = vec![committed("c", 41, "2"), committed("c", 42, "3")];
        reg.queue_committed(&c, &e, 41, again).unwrap();
        let state = reg.get_mut("c").unwrap();
        let seqs: Vec<u64> = state
            .pending
            .iter()
            .map(|p| p.committed.as_ref().unwrap().seq)
            .collect();
        assert_eq!(seqs, vec![40, 41, 42]);
        // A new epoch replaces what was queued and kept.
        let e2: Arc<str> = Arc::from("e2");
        assert!(reg
            .queue_committed(&c, &e2, 1, vec![committed("c", 1, "x")])
            .is_err());
        let state = reg.get_mut("c").unwrap();
        assert_eq!(
            (&*state.epoch, state.last_seq, state.pending.len()),
            ("e2", 0, 1)
        );
    }

    #[test]
    fn events_the_stream_dropped_before_this_node_read_them_are_a_gap_and_a_hole_in_history() {
        let mut reg = clustered();
        reg.join(0, Arc::from("c"));
        let c: Arc<str> = Arc::from("c");
        let e: Arc<str> = Arc::from("e1");
        reg.queue_committed(&c, &e, 1, vec![committed("c", 1, "1")])
            .unwrap();
        let tick = |reg: &mut ChannelRegistry, frame| {
            let input = crate::distributor::tick::TickInput::immediate(
                frame,
                "t",
                1,
                std::time::Instant::now(),
            );
            let ns: crate::config::Namespaces = {
                let t: toml::Table = "[namespaces.default]\nhistory_size = 10\n".parse().unwrap();
                crate::config::Namespaces::from_toml(t["namespaces"].as_table().unwrap()).unwrap()
            };
            crate::distributor::tick::encode_tick(reg, &input, &ns)
        };
        tick(&mut reg, 1);
        // The node lagged: seqs 2..=4 were dropped by the stream's retention.
        assert!(reg
            .queue_committed(&c, &e, 5, vec![committed("c", 5, "5")])
            .is_err());
        let out = tick(&mut reg, 2);
        let text = String::from_utf8_lossy(&out[0][0].frames).to_string();
        let gap = text.find("\"type\":\"gap\"").expect(&text);
        assert!(
            gap < text.find("\"seq\":5").unwrap(),
            "the gap comes first: {text}"
        );
        assert!(
            text.contains("\"skipped\":3,\"from_seq\":2,\"to_seq\":4"),
            "{text}"
        );
        let state = reg.get_mut("c").unwrap();
        assert!(
            state.history.after(1, 5, Default::default()).is_none(),
            "recovery across the hole fails"
        );
        assert!(
            state.history.after(4, 5, Default::default()).is_some(),
            "after it, it works"
        );
    }

    #[test]
    fn a_subscriber_told_seq_0_is_told_of_events_dropped_before_the_first_batch() {
        let mut reg = clustered();
        reg.join(0, Arc::from("c"));
        let (c, e): (Arc<str>, Arc<str>) = (Arc::from("c"), Arc::from(""));
        assert!(reg
            .queue_committed(&c, &e, 16, vec![committed("c", 16, "x")])
            .is_err());
        let state = reg.get_mut("c").unwrap();
        assert_eq!(state.lost.as_deref(), Some(&(1, 15)));
        assert_eq!(reg.lost_events, 15);
    }

    #[test]
    fn of_two_racing_snapshot_entries_for_a_key_the_higher_seq_stays() {
        let mut reg = clustered();
        let c: Arc<str> = Arc::from("c");
        let e: Arc<str> = Arc::from("e1");
        reg.put_snapshot_entry(&c, &e, 6, &committed("c", 6, "\"new\""));
        reg.put_snapshot_entry(&c, &e, 5, &committed("c", 5, "\"old\""));
        let frames = reg
            .get_mut("c")
            .unwrap()
            .snapshot
            .get_mut()
            .unwrap()
            .frames()
            .unwrap();
        let text = String::from_utf8_lossy(&frames);
        assert!(
            text.contains("\"new\"") && !text.contains("\"old\""),
            "{text}"
        );
        assert_eq!(&*reg.get_mut("c").unwrap().epoch, "e1");
    }
}
