//! Shard-local subscriptions: channel → the connections subscribed on this shard, each with
//! its rate level (for conflated channels: 0 = every tick, L = every 2^L-th tick).

use std::collections::HashMap;
use std::sync::Arc;

use crate::driver::Slot;

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

/// Channel → subscribers, for one shard.
#[derive(Debug, Default)]
pub struct Topics {
    map: HashMap<Arc<str>, Vec<Member>>,
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
        if let Some(subs) = self.map.get_mut(channel) {
            debug_assert!(!subs.iter().any(|m| m.slot == slot), "double subscription");
            subs.push(member);
            let count = subs.len();
            let (name, _) = self.map.get_key_value(channel).expect("just found");
            return (name.clone(), count);
        }
        let name: Arc<str> = Arc::from(channel);
        self.map.insert(name.clone(), vec![member]);
        (name, 1)
    }

    /// Removes `slot` from `channel`; returns the local subscriber count left.
    pub fn unsubscribe(&mut self, channel: &str, slot: Slot) -> usize {
        let Some(subs) = self.map.get_mut(channel) else {
            return 0;
        };
        if let Some(i) = subs.iter().position(|m| m.slot == slot) {
            subs.swap_remove(i);
        }
        let left = subs.len();
        if left == 0 {
            self.map.remove(channel);
        }
        left
    }

    /// The subscribers of `channel` here.
    pub fn subscribers(&self, channel: &str) -> Option<&[Member]> {
        self.map.get(channel).map(Vec::as_slice)
    }

    /// The subscribers of `channel` here, to update their rate levels.
    pub fn subscribers_mut(&mut self, channel: &str) -> Option<&mut [Member]> {
        self.map.get_mut(channel).map(Vec::as_mut_slice)
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
}
