//! `published` replies, applied on the publisher's shard when the tick that numbered its
//! events arrives (before that tick's events are fanned out, so an `echo = false` publisher
//! knows its own seqs before it sees the next event).

use std::collections::HashMap;

use bytes::Bytes;

use crate::conn_id::{ConnId, Slot};
use crate::distributor::{AckOutcome, AckTo, PublishAck};
use crate::http::pending::PendingBroadcast;
use crate::table::ConnTable;
use crate::wire::command::ErrorCode;
use crate::wire::reply;

/// What applying one outcome did.
pub(crate) enum Applied {
    /// A `published` (or error) reply was queued on this slot's connection.
    Queued(Slot),
    /// An HTTP broadcast has every outcome: the connection is owed this response.
    Answer(ConnId, Bytes),
}

/// Queues the reply `ack` asks for, or settles the HTTP broadcast it belongs to.
pub(crate) fn apply(
    ack: &PublishAck,
    table: &mut ConnTable,
    http_waits: &mut HashMap<ConnId, Box<PendingBroadcast>>,
) -> Option<Applied> {
    let entry = table.get_id_mut(ack.conn)?;
    if entry.is_closing() {
        return None; // the publisher is gone
    }
    let id = match &ack.to {
        AckTo::Client { id } => id,
        AckTo::Http { .. } => {
            let wait = http_waits.get_mut(&ack.conn)?;
            let response = wait.settle(&ack.channel, ack.outcome)?;
            http_waits.remove(&ack.conn);
            return Some(Applied::Answer(ack.conn, response));
        }
    };
    if !entry.conn.is_open() {
        return None;
    }
    let id = Some(&**id);
    let frame = match ack.outcome {
        AckOutcome::Numbered { seq, frame } => reply::published(&ack.channel, Some(seq), frame, id),
        AckOutcome::Superseded { frame } => reply::published(&ack.channel, None, frame, id),
        AckOutcome::ChannelLimit => reply::error(
            ErrorCode::LimitExceeded,
            &format!(
                "channel `{}` does not exist and the server has reached max_channels",
                ack.channel
            ),
            id,
        ),
        AckOutcome::Unavailable => reply::error(
            ErrorCode::Unavailable,
            &format!(
                "could not commit to channel `{}`: the cluster is unreachable; not delivered, publish again",
                ack.channel
            ),
            id,
        ),
    };
    if let Some(frame) = entry.session.hold(frame) {
        entry.conn.queue(frame);
    }
    Some(Applied::Queued(ack.conn.slot))
}
