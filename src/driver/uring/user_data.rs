//! What an io_uring completion belongs to, packed into its 64-bit `user_data`: the operation
//! kind in the top byte, the connection slot in the low 32 bits. A slot is reused only after all
//! of its operations completed (see `shard::table`), so no generation is needed to tell a stale
//! completion from a live one.

use crate::driver::Slot;

/// The operation a completion reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Multishot accept on the listener.
    Accept,
    /// Multishot receive on a connection.
    Recv(Slot),
    /// A vectored send on a connection.
    Send(Slot),
    /// The read on the wake-up eventfd.
    Wake,
    /// A cancellation request (its own completion is ignored).
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
        let (kind, slot) = match self {
            Op::Accept => (ACCEPT, 0),
            Op::Recv(s) => (RECV, s),
            Op::Send(s) => (SEND, s),
            Op::Wake => (WAKE, 0),
            Op::Cancel => (CANCEL, 0),
        };
        (kind << 56) | u64::from(slot)
    }

    /// Unpacks `user_data`; `None` for a value framecast never submitted.
    pub fn decode(user_data: u64) -> Option<Op> {
        let slot = user_data as u32;
        Some(match user_data >> 56 {
            ACCEPT => Op::Accept,
            RECV => Op::Recv(slot),
            SEND => Op::Send(slot),
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
    fn every_op_roundtrips() {
        for op in [
            Op::Accept,
            Op::Recv(0),
            Op::Recv(u32::MAX),
            Op::Send(7),
            Op::Wake,
            Op::Cancel,
        ] {
            assert_eq!(Op::decode(op.encode()), Some(op));
        }
        assert_eq!(Op::decode(0), None);
    }
}
