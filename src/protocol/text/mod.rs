//! memcached's text protocol (memcached `doc/protocol.txt`), and the entry
//! point that hands meta commands to `meta`.

use super::meta::{self, MetaRequest};
use super::{Oversized, Parse, Storage, KEY_MAX, LINE_MAX, READ_MAX};

mod number;
mod storage;

pub use number::{parse_f64, parse_i32, parse_u32, parse_u64};

/// The reply to an unknown command or a malformed line memcached cannot
/// frame (protocol.txt, "Error strings").
pub const ERROR: &str = "ERROR";
/// A known command with arguments memcached's tokenizer rejects.
pub const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
/// A storage command whose data block does not end in "\r\n" where its
/// length says.
pub const BAD_CHUNK: &str = "CLIENT_ERROR bad data chunk";
/// An exptime that is not a number (touch, gat).
pub const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument";
/// An incr/decr delta that is not an unsigned 64-bit number.
pub const BAD_DELTA: &str = "CLIENT_ERROR invalid numeric delta argument";
/// incr/decr of a value that is not a decimal number.
pub const NON_NUMERIC: &str = "CLIENT_ERROR cannot increment or decrement non-numeric value";
/// A storage command whose data exceeds the item size limit (`-I`).
pub const TOO_LARGE: &str = "SERVER_ERROR object too large for cache";
/// A store the cache has no room for, after eviction (or with `-M`).
pub const NO_MEMORY: &str = "SERVER_ERROR out of memory storing object";
/// A store whose data block could not be held while it arrived, for an
/// item memcached reads in chunks (memcached.c conn_nread).
pub const NO_MEMORY_READING: &str = "SERVER_ERROR Out of memory during read";

/// One parsed text-protocol request; keys and data borrow the input
/// buffer. Exptimes are as sent (seconds relative, or absolute Unix time
/// past 30 days; negative means already expired), resolved by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// get/gets/gat/gats; `keys` is the rest of the line (space separated).
    Get {
        /// The keys, space separated, as sent.
        keys: &'a [u8],
        /// gets/gats: replies carry the CAS unique.
        cas: bool,
        /// gat/gats: the new exptime.
        touch: Option<i64>,
    },
    /// set/add/replace/append/prepend/cas.
    Store(Storage<'a>),
    /// `delete <key> [noreply]`.
    Delete {
        /// The key.
        key: &'a [u8],
        /// Send no reply.
        noreply: bool,
    },
    /// `incr`/`decr <key> <delta> [noreply]`.
    Delta {
        /// The key.
        key: &'a [u8],
        /// incr (else decr).
        incr: bool,
        /// The amount, unsigned 64-bit.
        delta: u64,
        /// Send no reply.
        noreply: bool,
    },
    /// `touch <key> <exptime> [noreply]`.
    Touch {
        /// The key.
        key: &'a [u8],
        /// The new exptime.
        exptime: i64,
        /// Send no reply.
        noreply: bool,
    },
    /// `flush_all [delay] [noreply]`.
    Flush {
        /// Seconds from now (or absolute time) at which everything goes; 0 now.
        delay: i64,
        /// Send no reply.
        noreply: bool,
    },
    /// `flush_prefix <prefix> [noreply]` (corecache's own): every item
    /// stored so far under the prefix becomes a miss (`Store::flush_prefix`).
    FlushPrefix {
        /// The key prefix (raw bytes, at most 250).
        prefix: &'a [u8],
        /// Send no reply.
        noreply: bool,
    },
    /// `version`.
    Version,
    /// `verbosity <level> [noreply]`.
    Verbosity {
        /// The level asked for; None when it was not a number (which
        /// noreply lets through, as in memcached).
        level: Option<u32>,
        /// Send no reply.
        noreply: bool,
    },
    /// `quit`: close the connection.
    Quit,
    /// `shutdown [graceful]`; only honoured when enabled with `-A`.
    Shutdown {
        /// `graceful` was given (corecache always stops gracefully; the
        /// audit trail records what was asked).
        graceful: bool,
        /// Anything else after `shutdown` (`shutdown foo`, `shutdown
        /// graceful x`): with `-A`, memcached answers `CLIENT_ERROR
        /// invalid shutdown mode`; without, `ERROR: shutdown not enabled`
        /// as for any shutdown.
        bad_mode: bool,
    },
    /// `refresh_certs [noreply]`: read the TLS certificates again
    /// (memcached 1.6, with `-Z`).
    RefreshCerts {
        /// Send no reply (memcached: the last token is `noreply`).
        noreply: bool,
    },
    /// `cache_memlimit <MB> [noreply]`.
    CacheMemlimit {
        /// The new limit in megabytes.
        mb: u32,
        /// Send no reply.
        noreply: bool,
    },
    /// `stats [group]`.
    Stats {
        /// The group (`settings`, `items`, `reset`, ...), empty for the
        /// general stats.
        arg: &'a [u8],
    },
    /// `lru_crawler ...`, `lru ...`, `slabs ...` or `watch ...`: `cmd` is the
    /// command word, `arg` the rest of the line (see `protocol::admin`,
    /// `engine::watch`).
    Admin {
        /// `lru_crawler`, `lru`, `slabs` or `watch`.
        cmd: &'a [u8],
        /// What follows it.
        arg: &'a [u8],
    },
    /// A meta command (`mg`, `ms`, `md`, `ma`, `mn`, `me`), see `meta`.
    Meta(MetaRequest<'a>),
    /// A storage command whose data is over the item size limit.
    TooLarge(Oversized<'a>),
    /// A request that is answered with an error line.
    Error(&'static str),
    /// A refused request whose error line its `noreply` silences: memcached
    /// sets noreply before it checks a line's arguments, and its
    /// `out_string` then skips errors too (proto_text.c). Nothing is sent.
    Quiet(&'static str),
}

/// The refusal `error`, silenced when the line asked for `noreply`.
fn refused(error: &'static str, noreply: bool) -> Request<'static> {
    if noreply {
        Request::Quiet(error)
    } else {
        Request::Error(error)
    }
}

/// A line's first `N` tokens (empty slices past its end), how many tokens
/// it has in all, and its last token (empty for none): memcached checks a
/// command's token count and takes `noreply` from the last token
/// (`set_noreply_maybe`).
fn split<const N: usize>(line: &[u8]) -> ([&[u8]; N], usize, &[u8]) {
    let mut first: [&[u8]; N] = [&[]; N];
    let mut n = 0;
    let mut last: &[u8] = &[];
    for t in tokens(line) {
        if n < N {
            first[n] = t;
        }
        n += 1;
        last = t;
    }
    (first, n, last)
}

/// Space-separated tokens, as memcached's tokenizer splits them.
pub fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&c| c == b' ').filter(|t| !t.is_empty())
}

/// Parses one text or meta request from the front of `buf`.
pub fn parse(buf: &[u8], item_max: usize) -> Parse<Request<'_>> {
    parse_stream(buf, item_max, &mut 0, false)
}

/// `parse` for a connection's byte stream.
///
/// `scanned`: how many bytes at the front of `buf` an earlier call already
/// searched for the line end (it sets this when it needs more, and zero
/// once the line is whole), so a long line arriving in pieces is searched
/// once in all, not once per piece.
///
/// The line-length rule is memcached's (`try_read_command_ascii`): after a
/// read, more than `LINE_MAX` bytes with no line end close the connection
/// unless they start (after at most 100 spaces) with `get ` or `gets `,
/// whose key lists are unbounded. memcached reads up to `READ_MAX` bytes at
/// once, so any command's line that arrives whole within that is served;
/// `more_waiting` says the bytes came in a read that filled its buffer (more
/// were waiting, as in one of memcached's larger reads), and then the limit
/// is `READ_MAX`.
pub fn parse_stream<'a>(
    buf: &'a [u8],
    item_max: usize,
    scanned: &mut usize,
    more_waiting: bool,
) -> Parse<Request<'a>> {
    let from = (*scanned).min(buf.len());
    let Some(nl) = memchr(b'\n', &buf[from..]).map(|i| from + i) else {
        *scanned = buf.len();
        let over = buf.len() >= READ_MAX || (buf.len() > LINE_MAX && !more_waiting);
        if over && !may_exceed_line_max(buf) {
            return Parse::Close;
        }
        return Parse::NeedMore(1);
    };
    *scanned = 0;
    let used = nl + 1;
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    // memcached reads a command line as a C string: it ends at a NUL.
    if let Some(z) = memchr(0, line) {
        line = &line[..z];
    }
    if nl >= READ_MAX && !may_exceed_line_max(buf) {
        // Never whole in one of memcached's reads: it closes these.
        return Parse::Close;
    }
    let mut it = tokens(line);
    let Some(cmd) = it.next() else {
        return Parse::Done(Request::Error(ERROR), used);
    };
    let req = match cmd {
        b"get" | b"gets" => {
            let rest = rest_after(line, cmd);
            if tokens(rest).next().is_none() {
                Request::Error(ERROR)
            } else {
                Request::Get {
                    keys: rest,
                    cas: cmd == b"gets",
                    touch: None,
                }
            }
        }
        b"gat" | b"gats" => {
            let Some(exp) = it.next() else {
                return Parse::Done(Request::Error(ERROR), used);
            };
            // memcached's process_get_command reads the exptime first and
            // then the keys while there are any: `gat 100` with none is
            // just END.
            let rest = rest_after(line, exp);
            match parse_i32(exp) {
                None => Request::Error(BAD_EXPTIME),
                Some(e) => Request::Get {
                    keys: rest,
                    cas: cmd == b"gats",
                    touch: Some(e),
                },
            }
        }
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
            return storage::parse(cmd, line, used, buf, item_max);
        }
        // Token counts, noreply and the order of checks are memcached's
        // (process_delete_command, process_arithmetic_command,
        // process_touch_command): every error after the count is silenced
        // by a trailing noreply.
        b"delete" => {
            let ([_, key, hold], n, last) = split::<3>(line);
            let noreply = last == b"noreply";
            let hold_zero = hold == b"0";
            let valid =
                n == 2 || (n == 3 && (hold_zero || noreply)) || (n == 4 && hold_zero && noreply);
            if !(2..=4).contains(&n) {
                Request::Error(ERROR)
            } else if !valid {
                refused(
                    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                    noreply,
                )
            } else if key.len() > KEY_MAX {
                refused(BAD_FORMAT, noreply)
            } else {
                Request::Delete { key, noreply }
            }
        }
        b"incr" | b"decr" | b"touch" => {
            let ([_, key, arg], n, last) = split::<3>(line);
            let noreply = last == b"noreply";
            if n != 3 && n != 4 {
                Request::Error(ERROR)
            } else if key.len() > KEY_MAX {
                refused(BAD_FORMAT, noreply)
            } else if cmd == b"touch" {
                match parse_i32(arg) {
                    Some(exptime) => Request::Touch {
                        key,
                        exptime,
                        noreply,
                    },
                    None => refused(BAD_EXPTIME, noreply),
                }
            } else {
                match parse_u64(arg) {
                    Some(delta) => Request::Delta {
                        key,
                        incr: cmd == b"incr",
                        delta,
                        noreply,
                    },
                    None => refused(BAD_DELTA, noreply),
                }
            }
        }
        b"flush_prefix" => {
            let p = it.next();
            let nr = it.next();
            match (p, nr, it.next()) {
                (Some(prefix), None | Some(b"noreply"), None) if prefix.len() <= KEY_MAX => {
                    Request::FlushPrefix {
                        prefix,
                        noreply: nr.is_some(),
                    }
                }
                _ => Request::Error(BAD_FORMAT),
            }
        }
        // process_flush_all_command: a delay is read only when the line
        // has more than the command and its noreply; what follows it is
        // ignored.
        b"flush_all" => {
            let ([_, arg], n, last) = split::<2>(line);
            let noreply = last == b"noreply";
            if n > 3 {
                Request::Error(ERROR)
            } else if n == 1 + noreply as usize {
                Request::Flush { delay: 0, noreply }
            } else {
                match parse_i32(arg) {
                    Some(delay) => Request::Flush { delay, noreply },
                    None => refused(BAD_EXPTIME, noreply),
                }
            }
        }
        // memcached 1.6 ignores what follows `version` and `quit` (1.4
        // answered ERROR): `version noreply` still answers VERSION.
        b"version" => Request::Version,
        // process_memlimit_command, its refusals silenced by noreply.
        b"cache_memlimit" => {
            let ([_, arg], n, last) = split::<2>(line);
            let noreply = last == b"noreply";
            match parse_u32(arg) {
                _ if n != 2 && n != 3 => Request::Error(ERROR),
                None => refused(ERROR, noreply),
                Some(mb) if mb < 8 => refused(
                    "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m",
                    noreply,
                ),
                Some(mb) if mb > 1_000_000_000 => refused(
                    "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes",
                    noreply,
                ),
                Some(mb) => Request::CacheMemlimit { mb, noreply },
            }
        }
        b"shutdown" => match (it.next(), it.next()) {
            (None, _) => Request::Shutdown {
                graceful: false,
                bad_mode: false,
            },
            (Some(b"graceful"), None) => Request::Shutdown {
                graceful: true,
                bad_mode: false,
            },
            _ => Request::Shutdown {
                graceful: false,
                bad_mode: true,
            },
        },
        b"quit" => Request::Quit,
        b"refresh_certs" => Request::RefreshCerts {
            noreply: it.last() == Some(b"noreply".as_slice()),
        },
        // As memcached: one or two arguments, and a trailing noreply (even
        // alone) silences the reply, the error for a bad level included.
        b"verbosity" => match (it.next(), it.next(), it.next()) {
            (Some(a), b, None) => {
                let noreply = b.unwrap_or(a) == b"noreply";
                let level = parse_u32(a);
                if level.is_none() && !noreply {
                    Request::Error(BAD_FORMAT)
                } else {
                    Request::Verbosity { level, noreply }
                }
            }
            _ => Request::Error(ERROR),
        },
        b"stats" => Request::Stats {
            arg: rest_after(line, cmd),
        },
        b"lru_crawler" | b"lru" | b"slabs" | b"watch" => Request::Admin {
            cmd,
            arg: rest_after(line, cmd),
        },
        b"mg" | b"ms" | b"md" | b"ma" | b"mn" | b"me" => {
            return meta::parse(cmd, line, used, buf, item_max);
        }
        _ => {
            // A request line ending in " HTTP/..." is a web client: close.
            if let Some(last) = tokens(line).last() {
                if last.starts_with(b"HTTP/") && tokens(line).count() > 1 {
                    return Parse::Close;
                }
            }
            Request::Error(ERROR)
        }
    };
    Parse::Done(req, used)
}

/// The part of `line` after token `tok` (which must be a subslice of it).
fn rest_after<'a>(line: &'a [u8], tok: &[u8]) -> &'a [u8] {
    let end = tok.as_ptr() as usize - line.as_ptr() as usize + tok.len();
    &line[end..]
}

/// Whether a line may run past `LINE_MAX` bytes: memcached allows it for
/// `get ` and `gets ` after at most 100 leading spaces (not for `gat`, nor
/// meta commands).
pub(crate) fn may_exceed_line_max(buf: &[u8]) -> bool {
    let Some(start) = buf.iter().take(101).position(|&c| c != b' ') else {
        return false;
    };
    let b = &buf[start..];
    b.starts_with(b"get ") || b.starts_with(b"gets ")
}

/// The first position of byte `c` in `buf`.
#[inline]
pub fn memchr(c: u8, buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == c)
}

#[cfg(test)]
mod tests;
