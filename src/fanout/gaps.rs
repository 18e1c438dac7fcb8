//! Lossy delivery for `volatile` and `conflated` channels: frames a full queue cannot take are
//! recorded as missed, per channel, and announced by one `gap` notice (merged ranges) right
//! before the next frames of that channel the client does get.

use bytes::Bytes;

use super::Delivered;
use crate::conn::{ConnSettings, Full};
use crate::distributor::ChannelFrames;
use crate::shard::table::{Entry, PendingGap};
use crate::wire::reply;

/// Queues `bytes` (events `range` = first seq, last seq, count) after any pending `gap`
/// notice for the channel, or, if the queue cannot take them, records them as missed.
pub(super) fn push_lossy(
    entry: &mut Entry,
    item: &ChannelFrames,
    bytes: &Bytes,
    range: (u64, u64, u64),
    settings: &ConnSettings,
    out: &mut Delivered,
) -> Result<(), Full> {
    let pending = entry.gaps.iter().position(|g| *g.channel == *item.channel);
    let notice = pending.map(|i| {
        let g = &entry.gaps[i];
        reply::gap(&g.channel, g.skipped, g.from_seq, g.to_seq)
    });
    let need = bytes.len() + notice.as_ref().map_or(0, Bytes::len);
    if !fits(entry, need, settings) {
        miss(entry, item, range, out);
        return Err(Full);
    }
    if let (Some(i), Some(n)) = (pending, notice) {
        entry.gaps.swap_remove(i);
        out.gaps += 1;
        entry.conn.outbox.push_unchecked(n);
    }
    entry.conn.outbox.push_unchecked(bytes.clone());
    Ok(())
}

/// Whether the outbox takes `len` more bytes under the cap (an empty one takes anything).
pub(super) fn fits(entry: &Entry, len: usize, settings: &ConnSettings) -> bool {
    entry.conn.outbox.fits(len, settings.max_queued_bytes)
}

/// Records events `(first, last, count)` of the item's channel as missed by this client.
pub(super) fn miss(
    entry: &mut Entry,
    item: &ChannelFrames,
    (first, last, count): (u64, u64, u64),
    out: &mut Delivered,
) {
    out.dropped += count;
    merge_gap(
        entry,
        PendingGap {
            channel: item.channel.clone(),
            skipped: count,
            from_seq: first,
            to_seq: last,
        },
    );
}

fn merge_gap(entry: &mut Entry, g: PendingGap) {
    match entry.gaps.iter_mut().find(|p| p.channel == g.channel) {
        Some(p) => {
            p.skipped += g.skipped;
            p.from_seq = p.from_seq.min(g.from_seq);
            p.to_seq = p.to_seq.max(g.to_seq);
        }
        None => entry.gaps.push(g),
    }
}
