//! One tick's work, as a pure function: number each pending publication per channel, encode it
//! once into a complete WebSocket frame, join a channel's frames into one `Bytes`, and list it
//! for every shard with subscribers of that channel.

use bytes::BytesMut;

use std::sync::Arc;

use super::channels::ChannelRegistry;
use super::{ChannelFrames, Exclusion};
use crate::config::Namespaces;
use crate::wire::event::{put_event_frame, EventFields};

/// Bytes an event frame adds around its payload, for sizing the joined buffer up front.
const FRAME_OVERHEAD: usize = 160;

/// Encodes every pending publication; returns each shard's items (index = shard).
pub fn encode_tick(
    registry: &mut ChannelRegistry,
    frame: u64,
    timestamp: &str,
    shards: usize,
    namespaces: &Namespaces,
) -> Vec<Vec<ChannelFrames>> {
    let mut per_shard: Vec<Vec<ChannelFrames>> = (0..shards).map(|_| Vec::new()).collect();
    let dirty = registry.take_dirty();
    for name in &dirty {
        let Some(state) = registry.get_mut(name) else {
            continue;
        };
        let pending = std::mem::take(&mut state.pending);
        if state.shards.is_empty() {
            state.last_seq += pending.len() as u64;
            continue;
        }
        let size: usize = pending
            .iter()
            .map(|p| p.data.len() + p.event_type.len() + name.len() + FRAME_OVERHEAD)
            .sum();
        let mut out = BytesMut::with_capacity(size);
        let no_echo = !namespaces.of(name).echo;
        let mut exclusions = Vec::new();
        for p in &pending {
            state.last_seq += 1;
            let start = out.len() as u32;
            put_event_frame(
                &mut out,
                &EventFields {
                    channel: name,
                    seq: state.last_seq,
                    frame,
                    timestamp,
                    event_type: &p.event_type,
                    data: &p.data,
                },
            );
            if let (true, Some(origin)) = (no_echo, p.origin) {
                exclusions.push(Exclusion {
                    origin,
                    start,
                    end: out.len() as u32,
                });
            }
        }
        let item = ChannelFrames {
            channel: name.clone(),
            frames: out.freeze(),
            count: pending.len() as u32,
            exclusions: (!exclusions.is_empty()).then(|| Arc::from(exclusions)),
        };
        for shard in state.shards.iter() {
            if let Some(list) = per_shard.get_mut(shard) {
                list.push(item.clone());
            }
        }
    }
    registry.return_dirty(dirty);
    per_shard
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::distributor::Publication;

    fn publication(channel: &str, n: u32) -> Publication {
        Publication {
            origin: None,
            channel: Arc::from(channel),
            event_type: Bytes::from_static(b"\"t\""),
            data: Bytes::from(n.to_string()),
        }
    }

    #[test]
    fn seq_counts_per_channel_and_only_interested_shards_get_frames() {
        let mut reg = ChannelRegistry::default();
        reg.set_subscribers(1, Arc::from("a"), 1, 1);
        for n in 0..3 {
            reg.queue(publication("a", n));
        }
        reg.queue(publication("nobody", 0));
        let batches = encode_tick(&mut reg, 7, "ts", 2, &Namespaces::default());
        assert!(batches[0].is_empty());
        assert_eq!(batches[1].len(), 1);
        assert_eq!(batches[1][0].count, 3);
        let text = String::from_utf8_lossy(&batches[1][0].frames).to_string();
        assert!(
            text.contains("\"seq\":1,")
                && text.contains("\"seq\":3,")
                && text.contains("\"frame\":7,")
        );
        reg.queue(publication("a", 9));
        let next = encode_tick(&mut reg, 8, "ts", 2, &Namespaces::default());
        assert!(String::from_utf8_lossy(&next[1][0].frames).contains("\"seq\":4,"));
        assert!(!reg.has_pending());
    }
}
