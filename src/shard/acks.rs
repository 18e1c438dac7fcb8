//! `published` replies, applied on the publisher's shard when the tick that numbered its
//! events arrives (before that tick's events are fanned out, so an `echo = false` publisher
//! knows its own seqs before it sees the next event).

use crate::conn_id::Slot;
use crate::distributor::{AckOutcome, PublishAck};
use crate::table::ConnTable;
use crate::wire::command::ErrorCode;
use crate::wire::reply;

/// Queues the reply `ack` asks for; returns the slot if its connection has new output.
pub(crate) fn apply(ack: &PublishAck, table: &mut ConnTable) -> Option<Slot> {
    let entry = table.get_id_mut(ack.conn)?;
    if entry.is_closing() || !entry.conn.is_open() {
        return None; // the publisher is gone
    }
    let id = Some(&*ack.to.id);
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
    };
    if let Some(frame) = entry.session.hold(frame) {
        entry.conn.queue(frame);
    }
    Some(ack.conn.slot)
}
