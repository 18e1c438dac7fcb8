//! Shard-local subscriptions: channel → the slots subscribed on this shard. The first local
//! subscriber of a channel and the last one leaving are what the distributor hears about.

use std::collections::HashMap;
use std::sync::Arc;

use crate::driver::Slot;

/// Channel → subscribed slots, for one shard.
#[derive(Debug, Default)]
pub struct Topics {
    map: HashMap<Arc<str>, Vec<Slot>>,
}

impl Topics {
    /// Adds `slot` to `channel`; returns the interned name and whether it is the channel's
    /// first subscriber on this shard.
    pub fn subscribe(&mut self, channel: &str, slot: Slot) -> (Arc<str>, bool) {
        if let Some(subs) = self.map.get_mut(channel) {
            debug_assert!(!subs.contains(&slot), "double subscription");
            subs.push(slot);
            let (name, _) = self.map.get_key_value(channel).expect("just found");
            return (name.clone(), false);
        }
        let name: Arc<str> = Arc::from(channel);
        self.map.insert(name.clone(), vec![slot]);
        (name, true)
    }

    /// Removes `slot` from `channel`; true if that was the channel's last local subscriber.
    pub fn unsubscribe(&mut self, channel: &str, slot: Slot) -> bool {
        let Some(subs) = self.map.get_mut(channel) else {
            return false;
        };
        if let Some(i) = subs.iter().position(|&s| s == slot) {
            subs.swap_remove(i);
        }
        if subs.is_empty() {
            self.map.remove(channel);
            return true;
        }
        false
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
    fn first_and_last_subscriber_are_reported() {
        let mut t = Topics::default();
        assert!(t.subscribe("a", 1).1);
        assert!(!t.subscribe("a", 2).1);
        assert!(!t.unsubscribe("a", 1));
        assert!(t.unsubscribe("a", 2));
        assert!(t.subscribers("a").is_none());
    }
}
