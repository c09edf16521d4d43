//! The command families latency is kept for. They follow the engine's
//! one classification of requests (`engine::dispatch::Op`): Get, Touch,
//! Store (here Set), Delete and Arith map one to one, every other Op is
//! Other.

/// Command families the histograms are kept for (issue 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Family {
    /// get, gets, mg, binary GET* (Op::Get).
    Get = 0,
    /// set, add, replace, append, prepend, cas, ms, binary SET..PREPEND
    /// (Op::Store).
    Set = 1,
    /// delete, md, binary DELETE (Op::Delete).
    Delete = 2,
    /// incr, decr, ma, binary INCREMENT/DECREMENT (Op::Arith).
    Arith = 3,
    /// touch, gat, gats, mg with T, binary TOUCH/GAT* (Op::Touch).
    Touch = 4,
    /// Everything else: stats, version, flush_all, mn, noop, errors.
    Other = 5,
}

impl Family {
    /// Every family, in index order.
    pub const ALL: [Family; FAMILIES] = [
        Family::Get,
        Family::Set,
        Family::Delete,
        Family::Arith,
        Family::Touch,
        Family::Other,
    ];

    /// The `family` label value in the exposition.
    pub fn name(self) -> &'static str {
        match self {
            Family::Get => "get",
            Family::Set => "set",
            Family::Delete => "delete",
            Family::Arith => "arith",
            Family::Touch => "touch",
            Family::Other => "other",
        }
    }
}

/// How many command families there are.
pub const FAMILIES: usize = 6;
