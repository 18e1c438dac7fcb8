//! The shard side of a tick: a [`TickBatch`] from the distributor is appended, by reference, to
//! the outbox of every local subscriber of each channel in it. Per subscriber this is one
//! `Bytes` clone (a reference-count increment) and a length check: no allocation (beyond
//! amortized queue growth), no encoding, no lock, no syscall. Sends happen after, one per
//! connection per loop turn.
#![forbid(unsafe_code)]

pub mod topics;

use std::time::Instant;

use crate::conn::ConnSettings;
use crate::conn::Full;
use crate::distributor::Exclusion;
use crate::distributor::TickBatch;
use crate::driver::Slot;
use crate::shard::table::{ConnTable, Entry};
pub use topics::Topics;

/// Counts from delivering one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Connection-deliveries (one per subscriber per channel).
    pub deliveries: u64,
    /// Event frames delivered (events × subscribers).
    pub frames: u64,
    /// Subscribers closed as slow consumers.
    pub slow: u64,
}

/// Appends each channel's frames to its subscribers' outboxes and lists them in `dirty`.
pub fn deliver(
    shard: u32,
    batch: &TickBatch,
    topics: &Topics,
    table: &mut ConnTable,
    settings: &ConnSettings,
    now: Instant,
    dirty: &mut Vec<Slot>,
) -> Delivered {
    let mut out = Delivered::default();
    for item in &batch.items {
        let Some(subscribers) = topics.subscribers(&item.channel) else {
            continue;
        };
        out.frames += u64::from(item.count) * subscribers.len() as u64;
        for &slot in subscribers {
            let Some(entry) = table.get_mut(slot) else {
                debug_assert!(false, "topic lists a free slot");
                continue;
            };
            out.deliveries += 1;
            let own = item.exclusions.as_deref().filter(|ex| {
                ex.iter()
                    .any(|x| x.origin.shard == shard && x.origin.serial == entry.session.serial)
            });
            let pushed = match own {
                None => entry
                    .conn
                    .push_broadcast(item.frames.clone(), settings, now),
                // A publisher in an echo = false namespace: everything but its own frames, as
                // slices of the same buffer (no copy).
                Some(ex) => push_without_own(entry, &item.frames, ex, shard, settings, now),
            };
            if pushed.is_err() {
                out.slow += 1;
            }
            if !entry.dirty {
                entry.dirty = true;
                dirty.push(slot);
            }
        }
    }
    out
}

fn push_without_own(
    entry: &mut Entry,
    frames: &bytes::Bytes,
    exclusions: &[Exclusion],
    shard: u32,
    settings: &ConnSettings,
    now: Instant,
) -> Result<(), Full> {
    let mut at = 0usize;
    for x in exclusions {
        if x.origin.shard != shard || x.origin.serial != entry.session.serial {
            continue;
        }
        if x.start as usize > at {
            entry
                .conn
                .push_broadcast(frames.slice(at..x.start as usize), settings, now)?;
        }
        at = x.end as usize;
    }
    if at < frames.len() {
        entry
            .conn
            .push_broadcast(frames.slice(at..), settings, now)?;
    }
    Ok(())
}
