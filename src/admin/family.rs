//! The command families latency is kept for, and which family a parsed
//! request belongs to, for each protocol.

use crate::protocol::binary::op;
use crate::protocol::meta::MetaCmd;
use crate::protocol::text::Request;

/// Command families the histograms are kept for (issue 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Family {
    /// get, gets, gat, gats, mg, binary GET*.
    Get = 0,
    /// set, add, replace, append, prepend, cas, ms, binary SET* etc.
    Set = 1,
    /// delete, md.
    Delete = 2,
    /// incr, decr, ma.
    Arith = 3,
    /// touch, binary TOUCH (gat, a get that also touches, is a get).
    Touch = 4,
    /// Everything else: stats, version, flush_all, mn, noop, errors...
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

impl Family {
    /// The family of a text-protocol request (meta commands included).
    pub fn of_text(req: &Request<'_>) -> Family {
        match req {
            Request::Get { .. } => Family::Get,
            Request::Store(_) | Request::TooLarge { .. } => Family::Set,
            Request::Delete { .. } => Family::Delete,
            Request::Delta { .. } => Family::Arith,
            Request::Touch { .. } => Family::Touch,
            Request::Meta(m) => Family::of_meta(m.cmd),
            _ => Family::Other,
        }
    }

    /// The family of a meta command.
    pub fn of_meta(cmd: MetaCmd) -> Family {
        match cmd {
            MetaCmd::Get => Family::Get,
            MetaCmd::Set => Family::Set,
            MetaCmd::Delete => Family::Delete,
            MetaCmd::Arith => Family::Arith,
            MetaCmd::Noop | MetaCmd::Debug => Family::Other,
        }
    }

    /// The family of a binary-protocol opcode.
    pub fn of_binary(opcode: u8) -> Family {
        match opcode {
            op::GET
            | op::GETQ
            | op::GETK
            | op::GETKQ
            | op::GAT
            | op::GATQ
            | op::GATK
            | op::GATKQ => Family::Get,
            op::SET
            | op::SETQ
            | op::ADD
            | op::ADDQ
            | op::REPLACE
            | op::REPLACEQ
            | op::APPEND
            | op::APPENDQ
            | op::PREPEND
            | op::PREPENDQ => Family::Set,
            op::DELETE | op::DELETEQ => Family::Delete,
            op::INCREMENT | op::INCREMENTQ | op::DECREMENT | op::DECREMENTQ => Family::Arith,
            op::TOUCH => Family::Touch,
            _ => Family::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::text::parse;
    use crate::protocol::Parse;

    fn text(b: &[u8]) -> Family {
        match parse(b, 1 << 20) {
            Parse::Done(r, _) | Parse::Skip(r, _, _) => Family::of_text(&r),
            _ => panic!("{:?} did not parse", String::from_utf8_lossy(b)),
        }
    }

    #[test]
    fn text_and_meta_requests() {
        for (req, want) in [
            (&b"get a b\r\n"[..], Family::Get),
            (b"gets a\r\n", Family::Get),
            (b"gat 10 a\r\n", Family::Get),
            (b"set a 0 0 1\r\nx\r\n", Family::Set),
            (b"cas a 0 0 1 5\r\nx\r\n", Family::Set),
            (b"append a 0 0 1\r\nx\r\n", Family::Set),
            (b"delete a\r\n", Family::Delete),
            (b"incr a 1\r\n", Family::Arith),
            (b"decr a 1\r\n", Family::Arith),
            (b"touch a 10\r\n", Family::Touch),
            (b"mg a v\r\n", Family::Get),
            (b"ms a 1\r\nx\r\n", Family::Set),
            (b"md a\r\n", Family::Delete),
            (b"ma a\r\n", Family::Arith),
            (b"mn\r\n", Family::Other),
            (b"stats\r\n", Family::Other),
            (b"version\r\n", Family::Other),
            (b"flush_all\r\n", Family::Other),
            (b"bogus\r\n", Family::Other),
        ] {
            assert_eq!(text(req), want, "{}", String::from_utf8_lossy(req));
        }
    }

    #[test]
    fn binary_opcodes() {
        assert_eq!(Family::of_binary(op::GETKQ), Family::Get);
        assert_eq!(Family::of_binary(op::GAT), Family::Get);
        assert_eq!(Family::of_binary(op::PREPENDQ), Family::Set);
        assert_eq!(Family::of_binary(op::DELETEQ), Family::Delete);
        assert_eq!(Family::of_binary(op::DECREMENTQ), Family::Arith);
        assert_eq!(Family::of_binary(op::TOUCH), Family::Touch);
        assert_eq!(Family::of_binary(op::NOOP), Family::Other);
        assert_eq!(Family::of_binary(op::STAT), Family::Other);
        // Every family's index is its place in ALL.
        for (i, f) in Family::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
    }
}
