//! The distributor's channel registry: per channel the next sequence number, which shards have
//! subscribers, and the publications waiting for the current tick.

use std::collections::HashMap;
use std::sync::Arc;

use super::ingress::Publication;
use crate::config::limits::MAX_CHANNELS;

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

    /// The shards in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }

    /// Whether no shard is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
}

/// One channel's distributor-side state.
#[derive(Debug, Default)]
pub struct ChannelState {
    /// Sequence number of the last event (0 before the first).
    pub last_seq: u64,
    /// Shards with at least one subscriber.
    pub shards: ShardSet,
    /// Publications of the current tick, in arrival order.
    pub pending: Vec<Publication>,
    /// Subscribers over all shards.
    pub subscribers: u64,
    /// `last_seq` at the previous snapshot (for events per second).
    pub seq_at_snapshot: u64,
}

/// Every channel the distributor knows.
#[derive(Debug, Default)]
pub struct ChannelRegistry {
    map: HashMap<Arc<str>, ChannelState>,
    /// Channels with pending publications this tick, in first-publication order.
    dirty: Vec<Arc<str>>,
    /// Publications dropped because the registry was full.
    pub dropped_full: u64,
}

impl ChannelRegistry {
    /// Records a change in a shard's subscriber count for a channel.
    pub fn set_subscribers(&mut self, shard: usize, channel: Arc<str>, delta: i64, local: usize) {
        if !self.map.contains_key(&channel) && (local == 0 || self.map.len() >= MAX_CHANNELS) {
            return;
        }
        let state = self.map.entry(channel).or_default();
        state.shards.set(shard, local > 0);
        state.subscribers = state.subscribers.saturating_add_signed(delta);
    }

    /// Every channel with its figures, sorted by name; resets the per-second baseline. Channels
    /// with no subscribers that saw no event since the previous snapshot are forgotten first, so
    /// the registry (and `max_channels`) counts live channels only; such a channel starts again
    /// at seq 1 if it is used later.
    pub fn snapshot(&mut self, elapsed_secs: f64) -> Vec<crate::status::ChannelInfo> {
        self.map.retain(|_, s| {
            s.subscribers > 0 || !s.pending.is_empty() || s.last_seq != s.seq_at_snapshot
        });
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
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Queues a publication for this tick; false if the registry is full.
    pub fn queue(&mut self, p: Publication) -> bool {
        if !self.map.contains_key(&p.channel) && self.map.len() >= MAX_CHANNELS {
            self.dropped_full += 1;
            return false;
        }
        let state = self.map.entry(p.channel.clone()).or_default();
        if state.pending.is_empty() {
            self.dirty.push(p.channel.clone());
        }
        state.pending.push(p);
        true
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

    /// Mutable state of a channel.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut ChannelState> {
        self.map.get_mut(name)
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
    fn idle_channels_without_subscribers_are_forgotten_at_the_second_snapshot() {
        let mut reg = ChannelRegistry::default();
        reg.set_subscribers(0, Arc::from("kept"), 1, 1);
        reg.set_subscribers(0, Arc::from("left"), 1, 1);
        reg.set_subscribers(0, Arc::from("left"), -1, 0);
        reg.queue(crate::distributor::Publication {
            origin: None,
            channel: Arc::from("busy"),
            event_type: bytes::Bytes::from_static(b"\"e\""),
            data: bytes::Bytes::from_static(b"1"),
        });
        let _ = crate::distributor::tick::encode_tick(&mut reg, 1, "t", 1, &Default::default());
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
}
