//! The one name of a connection inside its shard: a slot in the shard's table and the slot's
//! generation at the time. The table hands it out ([`crate::table::ConnTable::insert`]), the
//! driver tags every operation and event with it, and the distributor's answers (joins, publish
//! acknowledgements) and echo exclusions carry it back. A slot is reused only after the driver
//! reported its connection closed, and every reuse bumps the generation, so an answer or a
//! completion meant for an earlier connection in the same slot is recognised and dropped.
//!
//! A leaf module: the driver, the table, fan-out and the distributor all name connections, and
//! none of them should depend on another for it.

/// Index of a connection in its shard's table.
pub(crate) type Slot = u32;

/// A slot's generation; only the low [`ConnId::GEN_BITS`] bits are kept (io_uring's 64-bit
/// `user_data` carries them beside the slot and the operation).
pub(crate) type Gen = u32;

/// One connection of a shard: `{slot, generation}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConnId {
    /// Index in the shard's table.
    pub slot: Slot,
    /// Generation of the slot, masked to [`ConnId::GEN_BITS`].
    pub gen: Gen,
}

impl ConnId {
    /// Bits of the generation kept (it wraps after 16 M reuses of one slot).
    pub const GEN_BITS: u32 = 24;
    const GEN_MASK: u32 = (1 << Self::GEN_BITS) - 1;

    /// The id of `slot` at generation `gen` (masked to [`ConnId::GEN_BITS`]).
    pub const fn new(slot: Slot, gen: Gen) -> ConnId {
        ConnId {
            slot,
            gen: gen & Self::GEN_MASK,
        }
    }

    /// The id the next connection in the same slot gets.
    pub const fn next(self) -> ConnId {
        ConnId::new(self.slot, self.gen.wrapping_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_wrap_within_their_bits() {
        assert_eq!(ConnId::new(1, 1 << ConnId::GEN_BITS), ConnId::new(1, 0));
        assert_eq!(
            ConnId::new(3, (1 << ConnId::GEN_BITS) - 1).next(),
            ConnId::new(3, 0)
        );
    }

    #[test]
    fn the_next_connection_in_a_slot_is_another_connection() {
        let first = ConnId::new(5, 1);
        assert_ne!(first, first.next());
        assert_eq!(first.next().slot, 5);
    }
}
