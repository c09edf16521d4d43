//! The tags a worker puts on its io_uring operations, and the name of a
//! connection that outlives its slot.
//!
//! A completion carries back the 64-bit user data of its submission. A
//! connection's slot in the worker's table is reused once it closes, so the
//! tag also holds the slot's generation: a late completion (or a reply from
//! another shard) for a connection that has closed finds a different
//! generation in the slot and is dropped.

/// Generations are kept to 24 bits, the room left in `UserData`.
pub const GEN_MASK: u32 = 0xff_ffff;

/// A connection: its slot in the worker's table and that slot's generation
/// when the connection was accepted.
///
/// ```text
///  as a cross-shard token (u64):
///  63                   32 31                             0
/// +-----------------------+--------------------------------+
/// |  generation (24 bits) |  slot index                    |
/// +-----------------------+--------------------------------+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnId {
    /// Slot in the worker's connection table.
    pub idx: u32,
    /// Generation of the slot, `GEN_MASK` bits.
    pub gen: u32,
}

impl ConnId {
    const GEN_SHIFT: u64 = 32;
    const IDX_MASK: u64 = 0xffff_ffff;

    /// Packs the id for a message to another worker.
    pub fn token(self) -> u64 {
        ((self.gen as u64) << Self::GEN_SHIFT) | self.idx as u64
    }

    /// The id a `token` packed.
    pub fn from_token(t: u64) -> ConnId {
        ConnId {
            idx: (t & Self::IDX_MASK) as u32,
            gen: (t >> Self::GEN_SHIFT) as u32 & GEN_MASK,
        }
    }
}

/// What an io_uring operation was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The multishot poll of the worker's listen set (listen_set.rs).
    Accept = 1,
    /// Multishot receive on a connection.
    Recv = 2,
    /// A send or sendmsg on a connection.
    Send = 3,
    /// A MSG_RING wake-up from (or to) another worker.
    Wake = 4,
    /// Cancellation of a connection's receive (backpressure).
    Cancel = 5,
}

/// The user data of one submission.
///
/// ```text
///  63      56 55                    32 31                              0
/// +----------+------------------------+--------------------------------+
/// |   kind   |  generation (24 bits)  |  connection slot / listener    |
/// +----------+------------------------+--------------------------------+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserData(pub u64);

impl UserData {
    const KIND_SHIFT: u64 = 56;
    const GEN_SHIFT: u64 = 32;
    const IDX_MASK: u64 = 0xffff_ffff;

    /// Tags an operation on a connection (or, for `Accept`, a listener
    /// index with generation 0).
    pub fn new(kind: Kind, id: ConnId) -> UserData {
        UserData(
            ((kind as u64) << Self::KIND_SHIFT)
                | (((id.gen & GEN_MASK) as u64) << Self::GEN_SHIFT)
                | id.idx as u64,
        )
    }

    /// Tags an operation on no connection (accepts, wake-ups).
    pub fn plain(kind: Kind, idx: u32) -> UserData {
        UserData::new(kind, ConnId { idx, gen: 0 })
    }

    /// The kind, or None for a tag this worker did not make.
    pub fn kind(self) -> Option<Kind> {
        Some(match self.0 >> Self::KIND_SHIFT {
            1 => Kind::Accept,
            2 => Kind::Recv,
            3 => Kind::Send,
            4 => Kind::Wake,
            5 => Kind::Cancel,
            _ => return None,
        })
    }

    /// The connection (or listener index, generation 0).
    pub fn conn(self) -> ConnId {
        ConnId {
            idx: (self.0 & Self::IDX_MASK) as u32,
            gen: ((self.0 >> Self::GEN_SHIFT) as u32) & GEN_MASK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_every_field() {
        for kind in [
            Kind::Accept,
            Kind::Recv,
            Kind::Send,
            Kind::Wake,
            Kind::Cancel,
        ] {
            for (idx, gen) in [(0, 0), (1, 1), (u32::MAX, GEN_MASK), (77, 0x12_3456)] {
                let u = UserData::new(kind, ConnId { idx, gen });
                assert_eq!(u.kind(), Some(kind));
                assert_eq!(u.conn(), ConnId { idx, gen });
            }
        }
        assert_eq!(UserData(0).kind(), None);
    }

    #[test]
    fn generation_is_cut_to_24_bits() {
        let u = UserData::new(
            Kind::Recv,
            ConnId {
                idx: 3,
                gen: 0x0100_0002,
            },
        );
        assert_eq!(u.conn().gen, 2);
    }

    #[test]
    fn token_round_trips() {
        let id = ConnId {
            idx: 0xdead_beef,
            gen: 0xab_cdef,
        };
        assert_eq!(ConnId::from_token(id.token()), id);
    }
}
