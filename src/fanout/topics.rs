//! Shard-local subscriptions: channel → the slots subscribed on this shard. Each change reports
//! the channel's local count, which the distributor uses to route ticks and count subscribers.

use std::collections::HashMap;
use std::sync::Arc;

use crate::driver::Slot;

/// Channel → subscribed slots, for one shard.
#[derive(Debug, Default)]
pub struct Topics {
    map: HashMap<Arc<str>, Vec<Slot>>,
}

impl Topics {
    /// Adds `slot` to `channel`; returns the interned name and the channel's local subscriber
    /// count after the change.
    pub fn subscribe(&mut self, channel: &str, slot: Slot) -> (Arc<str>, usize) {
        if let Some(subs) = self.map.get_mut(channel) {
            debug_assert!(!subs.contains(&slot), "double subscription");
            subs.push(slot);
            let count = subs.len();
            let (name, _) = self.map.get_key_value(channel).expect("just found");
            return (name.clone(), count);
        }
        let name: Arc<str> = Arc::from(channel);
        self.map.insert(name.clone(), vec![slot]);
        (name, 1)
    }

    /// Removes `slot` from `channel`; returns the local subscriber count left.
    pub fn unsubscribe(&mut self, channel: &str, slot: Slot) -> usize {
        let Some(subs) = self.map.get_mut(channel) else {
            return 0;
        };
        if let Some(i) = subs.iter().position(|&s| s == slot) {
            subs.swap_remove(i);
        }
        let left = subs.len();
        if left == 0 {
            self.map.remove(channel);
        }
        left
    }

    /// The slots subscribed to `channel` here.
    pub fn subscribers(&self, channel: &str) -> Option<&[Slot]> {
        self.map.get(channel).map(Vec::as_slice)
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
        assert_eq!(t.subscribe("a", 1).1, 1);
        assert_eq!(t.subscribe("a", 2).1, 2);
        assert_eq!(t.unsubscribe("a", 1), 1);
        assert_eq!(t.unsubscribe("a", 2), 0);
        assert!(t.subscribers("a").is_none());
    }
}
