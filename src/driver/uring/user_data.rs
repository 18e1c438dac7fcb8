//! What an io_uring completion belongs to, packed into its 64-bit `user_data`:
//!
//! ```text
//!  63      56 55                32 31                               0
//! ┌──────────┬────────────────────┬──────────────────────────────────┐
//! │   kind   │ generation (24 b)  │            slot (32 b)           │
//! └──────────┴────────────────────┴──────────────────────────────────┘
//! ```
//!
//! The shard reuses a slot only after the driver reported it closed, which happens only once no
//! operation of it is in flight; the driver also bumps the slot's generation on every
//! [`register`](crate::driver::Driver::register). A completion whose generation is not the
//! slot's current one is stale: it is counted and dropped, never applied to the newer
//! connection (in release builds too).

use crate::driver::Slot;

/// A connection's generation; only the low [`GEN_BITS`] bits travel in `user_data`.
pub type Gen = u32;

/// Bits of the generation kept in `user_data` (it wraps after 16 M reuses of one slot).
pub const GEN_BITS: u32 = 24;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

/// One connection: its slot and the generation it was registered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnTag {
    /// Index in the shard's table.
    pub slot: Slot,
    /// Generation of the slot (already masked to [`GEN_BITS`]).
    pub gen: Gen,
}

impl ConnTag {
    /// The tag of `slot` at generation `gen` (masked to [`GEN_BITS`]).
    pub fn new(slot: Slot, gen: Gen) -> ConnTag {
        ConnTag {
            slot,
            gen: (u64::from(gen) & GEN_MASK) as Gen,
        }
    }
}

/// The operation a completion reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Multishot accept on the listener.
    Accept,
    /// Multishot receive on a connection.
    Recv(ConnTag),
    /// A vectored send on a connection.
    Send(ConnTag),
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
    pub fn encode(self) -> u64 {
        let (kind, tag) = match self {
            Op::Accept => (ACCEPT, ConnTag::new(0, 0)),
            Op::Recv(t) => (RECV, t),
            Op::Send(t) => (SEND, t),
            Op::Wake => (WAKE, ConnTag::new(0, 0)),
            Op::Cancel => (CANCEL, ConnTag::new(0, 0)),
        };
        (kind << 56) | ((u64::from(tag.gen) & GEN_MASK) << 32) | u64::from(tag.slot)
    }

    /// Unpacks `user_data`; `None` for a value framecast never submitted.
    pub fn decode(user_data: u64) -> Option<Op> {
        let tag = ConnTag::new(user_data as u32, (user_data >> 32) as u32);
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
        let max = ConnTag::new(u32::MAX, (1 << GEN_BITS) - 1);
        for op in [
            Op::Accept,
            Op::Recv(ConnTag::new(0, 0)),
            Op::Recv(max),
            Op::Send(ConnTag::new(7, 3)),
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
        let old = Op::Send(ConnTag::new(5, 1)).encode();
        let new = Op::Send(ConnTag::new(5, 2)).encode();
        assert_ne!(old, new);
    }

    #[test]
    fn generations_wrap_within_their_bits() {
        assert_eq!(ConnTag::new(1, 1 << GEN_BITS), ConnTag::new(1, 0));
        let op = Op::Recv(ConnTag::new(1, (1 << GEN_BITS) + 9));
        assert_eq!(Op::decode(op.encode()), Some(Op::Recv(ConnTag::new(1, 9))));
    }
}
