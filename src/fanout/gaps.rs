//! Lossy delivery for `volatile` and `conflated` channels: frames a full queue cannot take are
//! recorded as missed, per channel, and announced by one `gap` notice (merged ranges) right
//! before the next frames of that channel the client does get.

use bytes::Bytes;

use super::Delivered;
use crate::conn::{ConnSettings, Full};
use crate::distributor::ChannelFrames;
use crate::table::{Entry, PendingGap};
use crate::wire::reply;

/// Before a lossy push of `len` bytes (events `range` = first seq, last seq, count): if the
/// queue can take them plus any pending `gap` notice for the channel, queues that notice and
/// returns `Ok`; otherwise records the events as missed.
pub(super) fn announce_or_miss(
    entry: &mut Entry,
    item: &ChannelFrames,
    len: usize,
    range: (u64, u64, u64),
    settings: &ConnSettings,
    out: &mut Delivered,
) -> Result<(), Full> {
    let pending = entry.gaps.iter().position(|g| *g.channel == *item.channel);
    let notice = pending.map(|i| {
        let g = &entry.gaps[i];
        reply::gap(&g.channel, g.skipped, g.from_seq, g.to_seq)
    });
    let need = len + notice.as_ref().map_or(0, Bytes::len);
    if !entry.conn.queue_fits(need, settings.max_queued_bytes) {
        miss(entry, item, range, out);
        return Err(Full);
    }
    if let (Some(i), Some(n)) = (pending, notice) {
        entry.gaps.swap_remove(i);
        out.gaps += 1;
        entry.conn.queue(n);
    }
    Ok(())
}

/// Records events `(first, last, count)` of the item's channel as missed by this client.
fn miss(
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
