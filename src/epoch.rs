//! Epochs: the names of a channel's incarnations of history (docs/protocol.md, "Positions").
//! A single node draws a random one whenever a channel's history starts; in a cluster a
//! channel's first epoch is derived from the stream's incarnation so every node names it alike
//! before its first event. One home for both, used by the distributor and the cluster bridge.
#![forbid(unsafe_code)]

use std::sync::Arc;

/// A new epoch: 48 random bits in hex.
pub(crate) fn fresh() -> Arc<str> {
    let n = uuid::Uuid::new_v4().as_u128() as u64 & 0xffff_ffff_ffff;
    Arc::from(format!("{n:012x}"))
}

/// A channel's first epoch in a stream incarnation: the same on every node before the channel
/// has any event, so a subscriber told it early recovers from it later. (With an age limit on
/// the stream a channel can lose all its batches; its next epoch is [`fresh`] then.)
pub(crate) fn first(incarnation: &str, channel: &str) -> Arc<str> {
    // FNV-1a: fixed, so every node derives the same value.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in incarnation.bytes().chain([0]).chain(channel.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Arc::from(format!("{:012x}", h & 0xffff_ffff_ffff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_epochs_are_the_same_everywhere_and_differ_per_channel_and_incarnation() {
        assert_eq!(first("i1", "a"), first("i1", "a"));
        assert_ne!(first("i1", "a"), first("i1", "b"));
        assert_ne!(first("i1", "a"), first("i2", "a"));
        assert_eq!(first("i1", "a").len(), 12);
    }

    #[test]
    fn fresh_epochs_look_like_first_ones_and_differ() {
        let (a, b) = (fresh(), fresh());
        assert_eq!(a.len(), 12);
        assert_ne!(a, b);
    }
}
