//! The distributor's answer to a join, applied on the shard: the `subscribed` reply with each
//! channel's position, then the frames that precede live events (missed events on recovery, or
//! the snapshot), then the connection enters the channel's topic, then the replies to commands
//! the client sent after the `subscribe` (held until now, so replies keep command order).
//! Because the answer arrives in the same ordered inbox as tick batches, every later batch holds
//! only newer events.

use crate::auth::Policy;
use crate::config::Delivery;
use crate::conn_id::Slot;
use crate::distributor::{Ingress, JoinReply, Joined};
use crate::fanout::Topics;
use crate::table::{ConnTable, SubState};
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
    /// The loop turn's wall-clock time.
    pub wall: crate::wire::WallTime,
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
    let entry = match table.get_id_mut(joined.request.conn) {
        Some(e) if !e.is_closing() && e.conn.is_open() => e,
        _ => {
            // The connection is gone; its close sent no `leave` for channels still joining.
            for channel in joined.channels.iter().filter(|c| !c.refused) {
                ingress.leave(shard, channel.name.clone());
            }
            return None;
        }
    };
    let request = &joined.request;
    let replied = request.reply.is_some();
    if joined.channels.iter().any(|c| c.refused) {
        for channel in &joined.channels {
            if let Some(i) = entry.session.waiting(&channel.name) {
                entry.session.channels.remove(i);
            }
            if !channel.refused {
                ingress.leave(shard, channel.name.clone()); // the distributor counted it in
            }
        }
        if replied {
            entry.conn.queue(reply::error(
                ErrorCode::LimitExceeded,
                &format!("the server has reached max_channels ({max_channels}): no new channel can be created"),
                request.id.as_deref(),
            ));
            let conn = &mut entry.conn;
            entry.session.release_held(|frame| conn.queue(frame));
        }
        return (entry.conn.has_output()).then_some(joined.request.conn.slot);
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
            .queue(reply::subscribed(view.wall, &names, &positions, to));
    }
    for channel in joined.channels {
        let waiting = entry.session.waiting(&channel.name);
        let Some(sub) = waiting.filter(|&i| entry.session.channels[i].state == SubState::Joining)
        else {
            // Unsubscribed meanwhile: the counted-in subscriber leaves now.
            if let Some(i) = waiting {
                entry.session.channels.remove(i);
            }
            ingress.leave(shard, channel.name);
            continue;
        };
        let sub = &mut entry.session.channels[sub];
        sub.state = SubState::Live;
        topics.subscribe(&channel.name, request.conn.slot, sub.floor);
        for frame in channel.frames {
            entry.conn.queue_replay(frame);
        }
    }
    if replied {
        // Replies to commands sent after this `subscribe` waited for it (and its replay).
        let conn = &mut entry.conn;
        entry.session.release_held(|frame| conn.queue(frame));
    }
    (entry.conn.has_output()).then_some(joined.request.conn.slot)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::conn_id::ConnId;
    use crate::distributor::{JoinRequest, JoinedChannel};
    use crate::table::{Session, Subscription};

    fn policy() -> Policy {
        Policy::from_config(&crate::Config::default()).unwrap()
    }

    fn answer(conn: ConnId, channel: &str, refused: bool) -> Joined {
        Joined {
            request: JoinRequest {
                shard: 0,
                conn,
                id: None,
                reply: Some(JoinReply::Subscribe),
                names: vec![channel.into()],
                channels: vec![(Arc::from(channel), None)],
                form: Default::default(),
            },
            channels: vec![JoinedChannel {
                name: Arc::from(channel),
                seq: 0,
                epoch: Arc::from("e"),
                recovered: None,
                frames: Vec::new(),
                events: 0,
                refused,
            }],
        }
    }

    /// A connection whose subscribe to `channel` waits for the distributor, then was cancelled.
    fn cancelled_join(table: &mut ConnTable, channel: &str) -> ConnId {
        let mut session = Session::default();
        session.channels.push(Subscription {
            name: Arc::from(channel),
            state: SubState::Cancelled,
            floor: 0,
        });
        session.expect_join();
        crate::testing::open_entry(table, session, Instant::now())
    }

    fn leaves(rx: &crate::distributor::ingress::IngressRx) -> Vec<String> {
        rx.msgs
            .try_iter()
            .filter_map(|m| match m {
                crate::distributor::ingress::IngressMsg::Leave { channel, .. } => {
                    Some(channel.to_string())
                }
                _ => None,
            })
            .collect()
    }

    fn view(policy: &Policy) -> ShardView<'_> {
        ShardView {
            shard: 0,
            policy,
            tick_hz: 60,
            wall: crate::wire::WallTime::of(std::time::SystemTime::UNIX_EPOCH),
        }
    }

    #[test]
    fn a_refused_join_that_was_cancelled_meanwhile_sends_no_leave() {
        let (ingress, rx) = Ingress::new();
        let (mut table, mut topics, policy) = (ConnTable::default(), Topics::default(), policy());
        let conn = cancelled_join(&mut table, "a");
        apply(
            answer(conn, "a", true),
            &mut table,
            &mut topics,
            &ingress,
            view(&policy),
        );
        assert!(
            leaves(&rx).is_empty(),
            "the distributor never counted it in: a leave would take another subscriber's count"
        );
        assert!(table.get_id_mut(conn).unwrap().session.channels.is_empty());
    }

    #[test]
    fn an_accepted_join_that_was_cancelled_meanwhile_leaves_once() {
        let (ingress, rx) = Ingress::new();
        let (mut table, mut topics, policy) = (ConnTable::default(), Topics::default(), policy());
        let conn = cancelled_join(&mut table, "a");
        apply(
            answer(conn, "a", false),
            &mut table,
            &mut topics,
            &ingress,
            view(&policy),
        );
        assert_eq!(leaves(&rx), vec!["a"]);
        assert!(table.get_id_mut(conn).unwrap().session.channels.is_empty());
        assert!(topics.subscribers_mut("a").is_none_or(|m| m.is_empty()));
    }

    #[test]
    fn an_answer_for_a_connection_that_is_gone_leaves_what_was_counted_in() {
        let (ingress, rx) = Ingress::new();
        let (mut table, mut topics, policy) = (ConnTable::default(), Topics::default(), policy());
        let gone = cancelled_join(&mut table, "a").next();
        apply(
            answer(gone, "a", false),
            &mut table,
            &mut topics,
            &ingress,
            view(&policy),
        );
        apply(
            answer(gone, "b", true),
            &mut table,
            &mut topics,
            &ingress,
            view(&policy),
        );
        assert_eq!(leaves(&rx), vec!["a"], "the refused `b` was never counted");
    }
}
