//! Shard-local subscriptions: channel → the connections subscribed on this shard, each with
//! its rate level (for conflated channels: 0 = every tick, L = every 2^L-th tick).

use std::collections::HashMap;
use std::sync::Arc;

use crate::conn_id::Slot;

/// One subscriber of a channel on this shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// The connection.
    pub slot: Slot,
    /// Lowest rate level the subscriber asked for (`max_hz`).
    pub floor: u8,
    /// Rate level in effect (changes only at that level's boundary).
    pub level: u8,
}

/// Members from which a channel keeps a slot → position index, so a subscriber leaves in O(1)
/// instead of a scan (a mass disconnect of a big channel would otherwise be quadratic); below
/// half of it the index is dropped again.
const INDEX_FROM: usize = 64;

/// The subscribers of one channel on this shard.
#[derive(Debug, Default)]
struct Members {
    list: Vec<Member>,
    /// Slot → position in `list`, kept only for big channels.
    index: Option<HashMap<Slot, u32>>,
}

impl Members {
    fn push(&mut self, member: Member) {
        debug_assert!(
            !self.list.iter().any(|m| m.slot == member.slot),
            "double subscription"
        );
        if let Some(index) = &mut self.index {
            index.insert(member.slot, self.list.len() as u32);
        }
        self.list.push(member);
        if self.index.is_none() && self.list.len() >= INDEX_FROM {
            let index = self
                .list
                .iter()
                .enumerate()
                .map(|(i, m)| (m.slot, i as u32))
                .collect();
            self.index = Some(index);
        }
    }

    fn remove(&mut self, slot: Slot) {
        let at = match &mut self.index {
            Some(index) => index.remove(&slot).map(|i| i as usize),
            None => self.list.iter().position(|m| m.slot == slot),
        };
        let Some(at) = at else {
            return;
        };
        self.list.swap_remove(at);
        if let (Some(index), Some(moved)) = (&mut self.index, self.list.get(at)) {
            index.insert(moved.slot, at as u32);
        }
        if self.list.len() < INDEX_FROM / 2 {
            self.index = None;
        }
    }
}

/// Channel → subscribers, for one shard.
#[derive(Debug, Default)]
pub struct Topics {
    map: HashMap<Arc<str>, Members>,
}

impl Topics {
    /// Adds `slot` to `channel` at rate level 0 with the given floor; returns the interned name
    /// and the channel's local subscriber count after the change.
    pub fn subscribe(&mut self, channel: &str, slot: Slot, floor: u8) -> (Arc<str>, usize) {
        let member = Member {
            slot,
            floor,
            level: 0,
        };
        if let Some(name) = self
            .map
            .get_key_value(channel)
            .map(|(name, _)| name.clone())
        {
            let members = self.map.get_mut(channel).expect("just found");
            members.push(member);
            return (name, members.list.len());
        }
        let name: Arc<str> = Arc::from(channel);
        let mut members = Members::default();
        members.push(member);
        self.map.insert(name.clone(), members);
        (name, 1)
    }

    /// Removes `slot` from `channel`; returns the local subscriber count left.
    pub fn unsubscribe(&mut self, channel: &str, slot: Slot) -> usize {
        let Some(members) = self.map.get_mut(channel) else {
            return 0;
        };
        members.remove(slot);
        let left = members.list.len();
        if left == 0 {
            self.map.remove(channel);
        }
        left
    }

    /// The subscribers of `channel` here.
    pub fn subscribers(&self, channel: &str) -> Option<&[Member]> {
        self.map.get(channel).map(|m| m.list.as_slice())
    }

    /// The subscribers of `channel` here, to update their rate levels.
    pub fn subscribers_mut(&mut self, channel: &str) -> Option<&mut [Member]> {
        self.map.get_mut(channel).map(|m| m.list.as_mut_slice())
    }

    /// Channels with local subscribers.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no channel has local subscribers.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_counts_follow_subscribes_and_unsubscribes() {
        let mut t = Topics::default();
        assert_eq!(t.subscribe("a", 1, 0).1, 1);
        assert_eq!(t.subscribe("a", 2, 0).1, 2);
        assert_eq!(t.unsubscribe("a", 1), 1);
        assert_eq!(t.unsubscribe("a", 2), 0);
        assert!(t.subscribers("a").is_none());
    }

    #[test]
    fn members_of_a_big_channel_leave_in_any_order_and_the_rest_stay() {
        let mut t = Topics::default();
        let n = 4 * INDEX_FROM as Slot;
        for slot in 0..n {
            t.subscribe("big", slot, 0);
        }
        // Leave in a scrambled order, checking the exact remaining set each time (through the
        // index while big, the scan once small again).
        let mut left: Vec<Slot> = (0..n).collect();
        let order: Vec<Slot> = (0..n).map(|i| (i * 7 + 3) % n).collect();
        for slot in order {
            assert_eq!(t.unsubscribe("big", slot), left.len() - 1);
            left.retain(|&s| s != slot);
            let mut now: Vec<Slot> = t
                .subscribers("big")
                .map_or(Vec::new(), |m| m.iter().map(|m| m.slot).collect());
            now.sort_unstable();
            assert_eq!(now, left);
        }
        assert!(t.subscribers("big").is_none());
    }

    #[test]
    fn leaving_a_channel_one_is_not_in_changes_nothing() {
        let mut t = Topics::default();
        for slot in 0..INDEX_FROM as Slot {
            t.subscribe("a", slot, 0);
        }
        assert_eq!(t.unsubscribe("a", 9999), INDEX_FROM);
        assert_eq!(t.unsubscribe("b", 1), 0);
    }
}
