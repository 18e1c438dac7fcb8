//! What an io_uring completion belongs to, packed into its 64-bit `user_data`:
//!
//! ```text
//!  63      56 55                32 31                               0
//! ┌──────────┬────────────────────┬──────────────────────────────────┐
//! │   kind   │ generation (24 b)  │            slot (32 b)           │
//! └──────────┴────────────────────┴──────────────────────────────────┘
//! ```
//!
//! The slot and generation are the connection's [`ConnId`], which the shard's table hands out:
//! the shard reuses a slot only after the driver reported it closed, which happens only once no
//! operation of it is in flight, and with the next generation. A completion whose id is not the
//! slot's current one is stale: it is counted and dropped, never applied to the newer
//! connection (in release builds too).

use crate::conn_id::ConnId;

const GEN_MASK: u64 = (1 << ConnId::GEN_BITS) - 1;

/// The operation a completion reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Multishot accept on the listener.
    Accept,
    /// Multishot receive on a connection.
    Recv(ConnId),
    /// A vectored send on a connection.
    Send(ConnId),
    /// The read on the wake-up eventfd.
    Wake,
    /// A cancellation request (its own completion carries nothing).
    Cancel,
}

const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
const WAKE: u64 = 4;
const CANCEL: u64 = 5;

impl Op {
    /// Packs the operation into `user_data`.
    pub(crate) fn encode(self) -> u64 {
        let (kind, tag) = match self {
            Op::Accept => (ACCEPT, ConnId::new(0, 0)),
            Op::Recv(t) => (RECV, t),
            Op::Send(t) => (SEND, t),
            Op::Wake => (WAKE, ConnId::new(0, 0)),
            Op::Cancel => (CANCEL, ConnId::new(0, 0)),
        };
        (kind << 56) | ((u64::from(tag.gen) & GEN_MASK) << 32) | u64::from(tag.slot)
    }

    /// Unpacks `user_data`; `None` for a value framecast never submitted.
    pub(crate) fn decode(user_data: u64) -> Option<Op> {
        let tag = ConnId::new(user_data as u32, ((user_data >> 32) & GEN_MASK) as u32);
        Some(match user_data >> 56 {
            ACCEPT => Op::Accept,
            RECV => Op::Recv(tag),
            SEND => Op::Send(tag),
            WAKE => Op::Wake,
            CANCEL => Op::Cancel,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_roundtrips_with_its_slot_and_generation() {
        let max = ConnId::new(u32::MAX, (1 << ConnId::GEN_BITS) - 1);
        for op in [
            Op::Accept,
            Op::Recv(ConnId::new(0, 0)),
            Op::Recv(max),
            Op::Send(ConnId::new(7, 3)),
            Op::Send(max),
            Op::Wake,
            Op::Cancel,
        ] {
            assert_eq!(Op::decode(op.encode()), Some(op));
        }
        assert_eq!(Op::decode(0), None);
    }

    #[test]
    fn the_same_slot_at_another_generation_is_another_operation() {
        let old = Op::Send(ConnId::new(5, 1)).encode();
        let new = Op::Send(ConnId::new(5, 2)).encode();
        assert_ne!(old, new);
    }

    #[test]
    fn generations_wrap_within_their_bits() {
        let op = Op::Recv(ConnId::new(1, (1 << ConnId::GEN_BITS) + 9));
        assert_eq!(Op::decode(op.encode()), Some(Op::Recv(ConnId::new(1, 9))));
    }
}
