//! The answer to a client's `publish` that carried an `id`: which `seq` (and frame) the frame
//! clock gave the event, or why it got none. Only the distributor knows, and only at the tick
//! that numbers the event, so the answer travels back to the publisher's shard inside that
//! tick's batch, ahead of the tick's events.

use std::sync::Arc;

use super::ingress::Publication;
use crate::conn_id::ConnId;

/// Where a publication's `published` reply goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckTo {
    /// The publishing client's request `id` (raw JSON), echoed in its `published` reply.
    Client {
        /// The id.
        id: Box<str>,
    },
    /// An HTTP broadcast waiting on connection `conn` of `shard` for its seqs.
    Http {
        /// The shard serving the request.
        shard: u32,
        /// The HTTP connection there.
        conn: ConnId,
    },
}

/// What became of an acknowledged publication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// The event was numbered `seq` in tick `frame`.
    Numbered {
        /// Its sequence number in the channel.
        seq: u64,
        /// The frame-clock tick that carried it.
        frame: u64,
    },
    /// A conflated channel replaced it with a newer event of the same key in tick `frame`.
    Superseded {
        /// The tick that dispatched the newer event.
        frame: u64,
    },
    /// The channel did not exist and clients may create no more (`max_channels`).
    ChannelLimit,
    /// Cluster mode: the event could not be committed in time (broker unreachable, or too
    /// much waiting); it was not delivered anywhere.
    Unavailable,
}

/// One `published` reply to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishAck {
    /// The publisher's shard.
    pub shard: u32,
    /// The publishing connection there (a reused slot must not get another connection's reply).
    pub conn: ConnId,
    /// The request id.
    pub to: AckTo,
    /// The channel published to.
    pub channel: Arc<str>,
    /// What happened.
    pub outcome: AckOutcome,
}

impl PublishAck {
    /// The acknowledgement `p` asked for, if it asked for one.
    pub fn of(p: &Publication, outcome: AckOutcome) -> Option<PublishAck> {
        PublishAck::to(p.origin, p.ack.as_deref()?, &p.channel, outcome)
    }

    /// The reply `to` asks for (a client's needs its `origin`).
    pub fn to(
        origin: Option<super::Origin>,
        to: &AckTo,
        channel: &Arc<str>,
        outcome: AckOutcome,
    ) -> Option<PublishAck> {
        let (shard, conn) = match to {
            AckTo::Client { .. } => {
                let o = origin?;
                (o.shard, o.conn)
            }
            AckTo::Http { shard, conn } => (*shard, *conn),
        };
        Some(PublishAck {
            shard,
            conn,
            to: to.clone(),
            channel: channel.clone(),
            outcome,
        })
    }
}
