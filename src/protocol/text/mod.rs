//! memcached's text protocol (memcached `doc/protocol.txt`), and the entry
//! point that hands meta commands to `meta`.

use super::meta::{self, MetaRequest};
use super::{Oversized, Parse, SetMode, Storage, StoreCmd, KEY_MAX, LINE_MAX, READ_MAX};

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
    Shutdown,
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
    /// A meta command (`mg`, `ms`, `md`, `ma`, `mn`, `me`), see `meta`.
    Meta(MetaRequest<'a>),
    /// A storage command whose data is over the item size limit.
    TooLarge(Oversized<'a>),
    /// A request that is answered with an error line.
    Error(&'static str),
}

/// Space-separated tokens, as memcached's tokenizer splits them.
pub fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&c| c == b' ').filter(|t| !t.is_empty())
}

/// C's `isspace` in the "C" locale.
fn c_isspace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// A token read as C's `strtoull`/`strtol` read it in memcached's
/// `safe_strto*` (util.c): leading whitespace, one optional sign, decimal
/// digits, and then either the end of the token or a whitespace byte after
/// which the rest is ignored. Returns the sign and the magnitude; None for
/// no digits, other trailing bytes, or a magnitude over 64 bits (ERANGE).
fn c_number(t: &[u8]) -> Option<(bool, u64)> {
    let mut i = t.iter().take_while(|&&c| c_isspace(c)).count();
    let neg = match t.get(i) {
        Some(b'-') => true,
        Some(b'+') => false,
        _ => {
            i = i.wrapping_sub(1);
            false
        }
    };
    i = i.wrapping_add(1);
    let start = i;
    let mut n: u64 = 0;
    while let Some(&c) = t.get(i).filter(|c| c.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add((c - b'0') as u64)?;
        i += 1;
    }
    if i == start || t.get(i).is_some_and(|&c| !c_isspace(c)) {
        return None;
    }
    Some((neg, n))
}

/// memcached's `safe_strtoull`: `+5` and `5<TAB>` are 5; a minus sign is
/// refused unless the negated value still reads as non-negative (so `-0`
/// is 0), as memcached checks it.
pub fn parse_u64(t: &[u8]) -> Option<u64> {
    match c_number(t)? {
        (false, n) => Some(n),
        (true, n) => Some(n.wrapping_neg()).filter(|v| (*v as i64) >= 0),
    }
}

/// memcached's `safe_strtoul` for 32-bit fields (flags, verbosity). Where
/// memcached 1.6.18 silently truncates a larger number to 32 bits, this
/// refuses it (as later memcached releases do for flags).
pub fn parse_u32(t: &[u8]) -> Option<u32> {
    parse_u64(t).and_then(|n| u32::try_from(n).ok())
}

/// A signed 32-bit number, as memcached's `safe_strtol` takes exptimes and
/// lengths; out of the 32-bit range it is refused (memcached 1.6.18
/// truncates the 64-bit `long`).
pub fn parse_i32(t: &[u8]) -> Option<i64> {
    let (neg, d) = c_number(t)?;
    let n = i64::try_from(d).ok()?;
    let n = if neg { -n } else { n };
    (i32::MIN as i64..=i32::MAX as i64)
        .contains(&n)
        .then_some(n)
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
            let rest = rest_after(line, exp);
            match (parse_i32(exp), tokens(rest).next()) {
                (_, None) => Request::Error(ERROR),
                (None, _) => Request::Error(BAD_EXPTIME),
                (Some(e), _) => Request::Get {
                    keys: rest,
                    cas: cmd == b"gats",
                    touch: Some(e),
                },
            }
        }
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
            return parse_storage(cmd, line, used, buf, item_max);
        }
        b"delete" => {
            let key = it.next();
            let next = it.next();
            // memcached accepts a legacy "0" time and noreply.
            let (noreply, ok) = match (next, it.next()) {
                (None, None) => (false, true),
                (Some(b"noreply"), None) => (true, true),
                (Some(b"0"), None) => (false, true),
                (Some(b"0"), Some(b"noreply")) => (true, true),
                _ => (false, false),
            };
            match key {
                None => Request::Error(ERROR),
                Some(k) if k.len() > KEY_MAX => Request::Error(BAD_FORMAT),
                Some(_) if !ok => Request::Error(
                    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                ),
                Some(k) => Request::Delete { key: k, noreply },
            }
        }
        b"incr" | b"decr" => {
            let (key, delta) = (it.next(), it.next());
            let noreply = it.next() == Some(b"noreply");
            match (key, delta) {
                (Some(k), Some(d)) => {
                    if k.len() > KEY_MAX {
                        Request::Error(BAD_FORMAT)
                    } else {
                        match parse_u64(d) {
                            Some(delta) => Request::Delta {
                                key: k,
                                incr: cmd == b"incr",
                                delta,
                                noreply,
                            },
                            None => Request::Error(BAD_DELTA),
                        }
                    }
                }
                _ => Request::Error(ERROR),
            }
        }
        b"touch" => {
            let (key, exp) = (it.next(), it.next());
            let noreply = it.next() == Some(b"noreply");
            match (key, exp) {
                (Some(k), Some(e)) => {
                    if k.len() > KEY_MAX {
                        Request::Error(BAD_FORMAT)
                    } else {
                        match parse_i32(e) {
                            Some(exptime) => Request::Touch {
                                key: k,
                                exptime,
                                noreply,
                            },
                            None => Request::Error(BAD_EXPTIME),
                        }
                    }
                }
                _ => Request::Error(ERROR),
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
        b"flush_all" => {
            let a = it.next();
            let b = it.next();
            match (a, b) {
                (None, _) => Request::Flush {
                    delay: 0,
                    noreply: false,
                },
                (Some(b"noreply"), None) => Request::Flush {
                    delay: 0,
                    noreply: true,
                },
                (Some(d), nr) => match parse_i32(d) {
                    Some(delay) if nr.is_none() || nr == Some(b"noreply") => Request::Flush {
                        delay,
                        noreply: nr.is_some(),
                    },
                    _ => Request::Error(BAD_FORMAT),
                },
            }
        }
        // memcached 1.6 ignores what follows `version` and `quit` (1.4
        // answered ERROR): `version noreply` still answers VERSION.
        b"version" => Request::Version,
        b"cache_memlimit" => match it.next().map(parse_u32) {
            Some(Some(mb)) if mb < 8 => {
                Request::Error("MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m")
            }
            Some(Some(mb)) if mb > 1_000_000_000 => {
                Request::Error("MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes")
            }
            Some(Some(mb)) => Request::CacheMemlimit {
                mb,
                noreply: it.next() == Some(b"noreply"),
            },
            _ => Request::Error(ERROR),
        },
        b"shutdown" => match (it.next(), it.next()) {
            (None, _) | (Some(b"graceful"), None) => Request::Shutdown,
            _ => Request::Error(ERROR),
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

fn parse_storage<'a>(
    cmd: &[u8],
    line: &'a [u8],
    used: usize,
    buf: &'a [u8],
    item_max: usize,
) -> Parse<Request<'a>> {
    let mut it = tokens(line).skip(1);
    let is_cas = cmd == b"cas";
    let (key, flags, exp, len) = (it.next(), it.next(), it.next(), it.next());
    let cas_tok = if is_cas { it.next() } else { None };
    let noreply = it.next() == Some(b"noreply");
    let (Some(key), Some(flags), Some(exp), Some(len)) = (key, flags, exp, len) else {
        return Parse::Done(Request::Error(ERROR), used);
    };
    if is_cas && cas_tok.is_none() {
        return Parse::Done(Request::Error(ERROR), used);
    }
    let Some(vlen) = parse_i32(len).filter(|n| *n >= 0) else {
        return Parse::Done(Request::Error(BAD_FORMAT), used);
    };
    let vlen = vlen as usize;
    let fields = (
        parse_u32(flags),
        parse_i32(exp),
        if is_cas {
            cas_tok.and_then(parse_u64)
        } else {
            Some(0)
        },
    );
    let (Some(flags), Some(exptime), Some(cas)) = fields else {
        return Parse::Skip(Request::Error(BAD_FORMAT), used, vlen + 2);
    };
    if key.len() > KEY_MAX {
        return Parse::Skip(Request::Error(BAD_FORMAT), used, vlen + 2);
    }
    let mode = match cmd {
        b"set" | b"cas" => SetMode::Set,
        b"add" => SetMode::Add,
        b"replace" => SetMode::Replace,
        b"append" => SetMode::Append,
        _ => SetMode::Prepend,
    };
    if vlen > item_max {
        let req = Request::TooLarge(Oversized {
            key,
            base64: false,
            mode,
            cmd: if cmd == b"cas" {
                StoreCmd::Cas
            } else {
                StoreCmd::Plain
            },
            noreply,
        });
        return Parse::Skip(req, used, vlen + 2);
    }
    let need = used + vlen + 2;
    if buf.len() < need {
        return Parse::NeedMore(need - buf.len());
    }
    if &buf[used + vlen..need] != b"\r\n" {
        return Parse::Done(Request::Error(BAD_CHUNK), need);
    }
    Parse::Done(
        Request::Store(Storage {
            mode,
            key,
            flags,
            exptime,
            value: &buf[used..used + vlen],
            cas: is_cas.then_some(cas),
            noreply,
        }),
        need,
    )
}

/// The part of `line` after token `tok` (which must be a subslice of it).
fn rest_after<'a>(line: &'a [u8], tok: &[u8]) -> &'a [u8] {
    let end = tok.as_ptr() as usize - line.as_ptr() as usize + tok.len();
    &line[end..]
}

/// Whether a line may run past `LINE_MAX` bytes: memcached allows it for
/// `get ` and `gets ` after at most 100 leading spaces (not for `gat`, nor
/// meta commands).
fn may_exceed_line_max(buf: &[u8]) -> bool {
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
