//! The distributor's answer to a join, applied on the shard: the `subscribed` reply with each
//! channel's position, then the frames that precede live events (missed events on recovery, or
//! the snapshot), then the connection enters the channel's topic, then the replies to commands
//! the client sent after the `subscribe` (held until now, so replies keep command order).
//! Because the answer arrives in the same ordered inbox as tick batches, every later batch holds
//! only newer events.

use crate::auth::Policy;
use crate::config::Delivery;
use crate::distributor::{Ingress, JoinReply, Joined};
use crate::driver::Slot;
use crate::fanout::Topics;
use crate::shard::table::ConnTable;
use crate::wire::command::ErrorCode;
use crate::wire::reply::{self, ChannelTraits, Position, SubscribedTo};

/// What applying an answer needs to know about the shard.
#[derive(Clone, Copy)]
pub struct ShardView<'a> {
    /// This shard's index.
    pub shard: usize,
    /// Namespaces and limits.
    pub policy: &'a Policy,
    /// Frame-clock rate (0 = immediate mode).
    pub tick_hz: u32,
}

/// How `channel` is delivered to a subscriber at rate level `floor`.
fn traits(view: &ShardView<'_>, channel: &str, floor: u8) -> ChannelTraits {
    let ns = view.policy.namespace(channel);
    ChannelTraits {
        delivery: ns.delivery.as_str(),
        history: ns.history_size,
        snapshot: ns.snapshot,
        echo: ns.echo,
        rate_hz: if ns.delivery == Delivery::Conflated {
            view.tick_hz >> floor
        } else {
            view.tick_hz
        },
    }
}

/// Applies `joined`; returns the slot if its connection has new output. Replayed events may
/// exceed the client's `max_queued_bytes` (they are history frames the server holds anyway, and
/// the distributor caps a request's replay): the queue's cap is raised by their size until they
/// are sent. A request the distributor refused a channel of (`max_channels`) is undone whole:
/// the client gets `LIMIT_EXCEEDED` and none of its channels.
pub fn apply(
    joined: Joined,
    table: &mut ConnTable,
    topics: &mut Topics,
    ingress: &Ingress,
    view: ShardView<'_>,
) -> Option<Slot> {
    let (shard, max_channels) = (view.shard, view.policy.max_channels);
    let entry = table.get_mut(joined.request.slot)?;
    if entry.session.serial != joined.request.serial || entry.closing || !entry.conn.is_open() {
        return None; // the connection is gone (its leave messages balance the counts)
    }
    let request = &joined.request;
    let replied = request.reply.is_some();
    if joined.channels.iter().any(|c| c.refused) {
        for channel in &joined.channels {
            let pending = entry
                .session
                .channels
                .iter()
                .position(|s| !s.live && s.name == channel.name);
            if let Some(i) = pending {
                let sub = entry.session.channels.swap_remove(i);
                if !channel.refused {
                    ingress.leave(shard, sub.name); // the distributor counted this one in
                }
            }
        }
        if replied {
            entry.conn.outbox.push_unchecked(reply::error(
                ErrorCode::LimitExceeded,
                &format!("the server has reached max_channels ({max_channels}): no new channel can be created"),
                request.id.as_deref(),
            ));
            let outbox = &mut entry.conn.outbox;
            entry
                .session
                .release_held(|frame| outbox.push_unchecked(frame));
        }
        return (!entry.conn.outbox.is_empty()).then_some(joined.request.slot);
    }
    if let Some(to) = request.reply {
        let names: Vec<&str> = request.names.iter().map(String::as_str).collect();
        let positions: Vec<Position<'_>> = joined
            .channels
            .iter()
            .map(|c| {
                let floor = entry
                    .session
                    .channels
                    .iter()
                    .find(|s| s.name == c.name)
                    .map_or(0, |s| s.floor);
                let replayed = c.recovered == Some(true);
                Position {
                    channel: &c.name,
                    seq: c.seq,
                    epoch: &c.epoch,
                    recovered: c.recovered,
                    traits: traits(&view, &c.name, floor),
                    snapshot_events: if replayed { 0 } else { c.events },
                    replay_events: if replayed { c.events } else { 0 },
                }
            })
            .collect();
        let to = match to {
            JoinReply::Subscribe => SubscribedTo::Request(request.id.as_deref()),
            JoinReply::Defaults => SubscribedTo::Defaults,
        };
        entry
            .conn
            .outbox
            .push_unchecked(reply::subscribed(&names, &positions, to));
    }
    for channel in joined.channels {
        let Some(sub) = entry
            .session
            .channels
            .iter_mut()
            .find(|s| !s.live && s.name == channel.name)
        else {
            continue; // unsubscribed meanwhile
        };
        sub.live = true;
        topics.subscribe(&channel.name, request.slot, sub.floor);
        for frame in channel.frames {
            entry.conn.outbox.push_replay(frame);
        }
    }
    if replied {
        // Replies to commands sent after this `subscribe` waited for it (and its replay).
        let outbox = &mut entry.conn.outbox;
        entry
            .session
            .release_held(|frame| outbox.push_unchecked(frame));
    }
    (!entry.conn.outbox.is_empty()).then_some(joined.request.slot)
}
