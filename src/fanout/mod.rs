//! The shard side of a tick: a [`TickBatch`] from the distributor is appended, by reference, to
//! the outbox of every local subscriber of each channel in it. Per subscriber this is one
//! `Bytes` clone (a reference-count increment) and a length check: no allocation (beyond
//! amortized queue growth), no encoding, no lock, no syscall. Sends happen after, one per
//! connection per loop turn.
//!
//! What happens when a subscriber's queue is full depends on the channel's delivery class:
//! `reliable` closes it (it can recover from history), `volatile` and `conflated` drop and tell
//! the client with a `gap` notice before its next event there. On conflated channels a client
//! whose queue stays above the high-water mark is first stepped down to every 2nd, 4th...
//! tick (the distributor's shared rate-level variants), and stepped back up once it drains.
#![forbid(unsafe_code)]

mod gaps;
pub(crate) mod topics;

use std::time::Instant;

use bytes::Bytes;

use crate::config::Delivery;
use crate::conn::ConnSettings;
use crate::conn::Full;
use crate::distributor::conflate::crossed;
use crate::distributor::{Batch, ChannelFrames, Exclusion, TickBatch};
use crate::limits::MAX_RATE_LEVEL;
use crate::table::SendQueue;
use crate::table::{ConnTable, Entry};
use gaps::announce_or_miss;
pub(crate) use topics::Member;
pub use topics::Topics;

/// Counts from delivering one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Connection-deliveries (one per subscriber per channel).
    pub deliveries: u64,
    /// Event frames delivered (events × subscribers, at full rate).
    pub frames: u64,
    /// Subscribers closed as slow consumers.
    pub slow: u64,
    /// Events not delivered to a full queue (volatile and conflated channels).
    pub dropped: u64,
    /// `gap` notices queued.
    pub gaps: u64,
    /// Connections stepped down a rate level (minus those stepped back up).
    pub degraded_delta: i64,
}

/// Appends each channel's frames to its subscribers' outboxes and queues the ones not already
/// waiting at the back of `dirty` (the shard's send order).
pub fn deliver(
    shard: u32,
    batch: &TickBatch,
    topics: &mut Topics,
    table: &mut ConnTable,
    settings: &ConnSettings,
    now: Instant,
    dirty: &mut SendQueue,
) -> Delivered {
    let mut out = Delivered::default();
    for item in &batch.items {
        let Some(members) = topics.subscribers_mut(&item.channel) else {
            continue;
        };
        out.frames += u64::from(item.count) * members.len() as u64;
        for member in members.iter_mut() {
            let Some(entry) = table.get_mut(member.slot) else {
                debug_assert!(false, "topic lists a free slot");
                continue;
            };
            if !entry.conn.is_open() {
                continue;
            }
            out.deliveries += 1;
            match item.delivery {
                Delivery::Reliable | Delivery::Volatile => {
                    let lossy = item.delivery == Delivery::Volatile;
                    let frames = Shared::level0(item, entry);
                    let pushed =
                        push_shared(entry, item, &frames, shard, settings, now, lossy, &mut out);
                    if pushed.is_err() && !lossy {
                        out.slow += 1;
                    }
                }
                Delivery::Conflated => {
                    deliver_conflated(entry, member, item, batch, shard, settings, now, &mut out)
                }
            }
            dirty.push_once(member.slot, &mut entry.dirty);
        }
    }
    out
}

/// A conflated channel: the member's rate level picks the tick's frames (level 0) or the
/// level's shared variant at its boundary; then the level follows the connection's step-down
/// and the member's `max_hz` floor, changing only at a boundary of the higher level.
#[allow(clippy::too_many_arguments)]
fn deliver_conflated(
    entry: &mut Entry,
    member: &mut Member,
    item: &ChannelFrames,
    batch: &TickBatch,
    shard: u32,
    settings: &ConnSettings,
    now: Instant,
    out: &mut Delivered,
) {
    if batch.boundaries != 0 && entry.degrade_frame != batch.frame {
        entry.degrade_frame = batch.frame;
        out.degraded_delta += step_degrade(entry, batch.boundaries, settings);
    }
    if member.level == 0 {
        if item.count > 0 {
            let frames = Shared::level0(item, entry);
            let _ = push_shared(entry, item, &frames, shard, settings, now, true, out);
        }
    } else if crossed(batch.boundaries, member.level) {
        let variant = item
            .variants
            .as_ref()
            .and_then(|v| v[member.level as usize - 1].as_ref());
        if let Some(v) = variant {
            let (bytes, exclusions) = match (&v.deflated, entry.conn.deflates()) {
                (Some(d), true) => (&d.frames, d.exclusions.as_deref()),
                _ => (&v.bytes, v.exclusions.as_deref()),
            };
            let shared = Shared {
                bytes,
                exclusions,
                range: (v.first_seq, v.last_seq, v.last_seq + 1 - v.first_seq),
            };
            let _ = push_shared(entry, item, &shared, shard, settings, now, true, out);
        }
    }
    let desired = entry.degrade.max(member.floor);
    if desired != member.level && crossed(batch.boundaries, desired.max(member.level)) {
        member.level = desired;
    }
}

/// One step down while the queue is above the high-water mark, one step up once it is below
/// the low-water mark, each at that level's boundary; returns the change in degraded
/// connections (+1, -1 or 0).
fn step_degrade(entry: &mut Entry, bits: u8, settings: &ConnSettings) -> i64 {
    let queued = entry.conn.queued();
    let high = settings.max_queued_bytes / 4;
    let low = settings.max_queued_bytes / 16;
    let before = entry.degrade;
    if queued > high && entry.degrade < MAX_RATE_LEVEL && crossed(bits, entry.degrade + 1) {
        entry.degrade += 1;
    } else if queued <= low && entry.degrade > 0 && crossed(bits, entry.degrade) {
        entry.degrade -= 1;
    }
    match (before, entry.degrade) {
        (0, 1) => 1,
        (1, 0) => -1,
        _ => 0,
    }
}

/// Frames shared by many subscribers: a tick's frames of a channel or a rate-level variant.
struct Shared<'a> {
    bytes: &'a Bytes,
    /// Byte ranges publishers in `echo = false` namespaces must not get back.
    exclusions: Option<&'a [Exclusion]>,
    /// First seq, last seq and number of events `bytes` stands for (for `gap` accounting).
    range: (u64, u64, u64),
}

impl<'a> Shared<'a> {
    /// The tick's frames of `item` in the form `entry` takes: binary frames if it asked for
    /// them and the tick has binary events, else one batch message if it asked for tick
    /// batches, compressed if it agreed to permessage-deflate (where those forms exist).
    fn level0(item: &'a ChannelFrames, entry: &Entry) -> Shared<'a> {
        let count = u64::from(item.count);
        let range = (item.first_seq, item.first_seq + count - 1, count);
        if let Some(b) = item.binary.as_ref().filter(|_| entry.session.binary) {
            let b = match (&item.binary_deflated, entry.conn.deflates()) {
                (Some(d), true) => d,
                _ => b,
            };
            return Shared {
                bytes: &b.frames,
                exclusions: b.exclusions.as_deref(),
                range,
            };
        }
        let deflate = entry.conn.deflates();
        let batch = item.batch.as_ref().filter(|_| entry.session.batch);
        let (bytes, exclusions) = match (batch, &item.deflated, deflate) {
            (
                Some(Batch {
                    deflated: Some(d), ..
                }),
                _,
                true,
            ) => (d, None),
            (Some(b), _, _) => (&b.frames, None),
            (None, Some(d), true) => (&d.frames, d.exclusions.as_deref()),
            _ => (&item.frames, item.exclusions.as_deref()),
        };
        Shared {
            bytes,
            exclusions,
            range,
        }
    }
}

/// Queues shared frames for one subscriber: by reference, minus its own frames where the
/// namespace has `echo = false` (slices of the same buffer, no copy). `lossy`: a full queue
/// drops them (to be told by a `gap`) instead of closing the connection.
#[allow(clippy::too_many_arguments)]
fn push_shared(
    entry: &mut Entry,
    item: &ChannelFrames,
    shared: &Shared<'_>,
    shard: u32,
    settings: &ConnSettings,
    now: Instant,
    lossy: bool,
    out: &mut Delivered,
) -> Result<(), Full> {
    if lossy {
        // Either there is room (and any pending gap notice goes first) or the events are
        // recorded as missed; the pushes below then stay under the cap.
        announce_or_miss(entry, item, shared.bytes.len(), shared.range, settings, out)?;
    }
    let own = shared.exclusions.filter(|ex| {
        ex.iter()
            .any(|x| x.origin.shard == shard && x.origin.conn == entry.id)
    });
    let push = |entry: &mut Entry, frame: Bytes| push_frame(entry, frame, lossy, settings, now);
    match own {
        None => push(entry, shared.bytes.clone()),
        Some(ex) => push_without_own(entry, shared.bytes, ex, shard, push),
    }
}

/// Queues one shared frame. A lossy push had its room checked (gap notice included) by
/// [`announce_or_miss`], so it must not fail here: an empty queue takes any frame, and the
/// notice just queued must not turn that into a slow-consumer close.
fn push_frame(
    entry: &mut Entry,
    frame: Bytes,
    lossy: bool,
    settings: &ConnSettings,
    now: Instant,
) -> Result<(), Full> {
    if !lossy {
        return entry.conn.push_broadcast(frame, settings, now);
    }
    if entry.conn.is_open() {
        entry.conn.queue(frame);
    }
    Ok(())
}

fn push_without_own(
    entry: &mut Entry,
    frames: &Bytes,
    exclusions: &[Exclusion],
    shard: u32,
    mut push: impl FnMut(&mut Entry, Bytes) -> Result<(), Full>,
) -> Result<(), Full> {
    let mut at = 0usize;
    for x in exclusions {
        if x.origin.shard != shard || x.origin.conn != entry.id {
            continue;
        }
        if x.start as usize > at {
            push(entry, frames.slice(at..x.start as usize))?;
        }
        at = x.end as usize;
    }
    if at < frames.len() {
        push(entry, frames.slice(at..))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
