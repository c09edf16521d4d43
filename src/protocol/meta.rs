//! memcached's meta protocol: `mg`, `ms`, `md`, `ma`, `mn`, `me`.
//! Flags are single letters, some with a token right after them; the
//! executor walks them again in request order to build the reply.

use super::text::{parse_i32, parse_u32, parse_u64, tokens, Request, BAD_FORMAT, ERROR};
use super::{Oversized, Parse, Refusal, SetMode, StoreCmd, KEY_MAX};

/// memcached's limit on an `O` (opaque) token, in bytes.
pub const MAX_OPAQUE: usize = 32;
/// memcached's limit on a meta command's tokens (`MFLAG_MAX_OPT_LENGTH`
/// in 1.6.18's proto_text.c), counted as its tokenizer counts them: the
/// command, the key, the rest, and one empty token after the last. At it
/// or over, mg, ms, md and ma answer that the flags are too long: 18
/// flags for mg, md and ma, 17 for ms (whose length is a token).
pub const MFLAG_MAX_OPT_LENGTH: usize = 20;

/// A key sent under `b` that is not base64 (memcached's process_*_command).
pub const BAD_KEY_ENCODING: &str = "CLIENT_ERROR error decoding key";

/// ms's answer to a mode it does not know.
pub const MS_BAD_MODE: &str = "CLIENT_ERROR invalid mode for ms M token";

/// ms's `M` mode (none: set). Upper case only: memcached 1.6.18 (and
/// HEAD's proto_parser.c) switch on E A P R S and answer any other byte,
/// lower case included, with [`MS_BAD_MODE`] (None here).
pub fn ms_mode(mode: Option<u8>) -> Option<SetMode> {
    Some(match mode {
        None | Some(b'S') => SetMode::Set,
        Some(b'E') => SetMode::Add,
        Some(b'A') => SetMode::Append,
        Some(b'P') => SetMode::Prepend,
        Some(b'R') => SetMode::Replace,
        Some(_) => return None,
    })
}

/// Which meta command (protocol.txt, "Meta Commands").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaCmd {
    /// `mg`: meta get.
    Get,
    /// `ms`: meta set.
    Set,
    /// `md`: meta delete.
    Delete,
    /// `ma`: meta arithmetic.
    Arith,
    /// `mn`: meta no-op, answered `MN` (ends a pipeline of quiet commands).
    Noop,
    /// `me`: meta debug, an item's internals.
    Debug,
}

/// The flags of a meta command that change what it does; flags that only
/// ask for a reply field (`k s t c f h l`) are rendered from
/// `MetaRequest::flag_tokens`. Letters are memcached's; times are
/// exptimes as sent (seconds relative, or absolute past 30 days).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaFlags<'a> {
    /// `b`: the key is base64.
    pub base64: bool,
    /// `q`: suppress the reply on the common outcome (HD, EN, NF).
    pub quiet: bool,
    /// `v`: return the value.
    pub value: bool,
    /// `u`: do not bump the item in the LRU (no access recorded).
    pub no_bump: bool,
    /// `I`: invalidate (md: mark stale instead of deleting; ms: with CAS).
    pub invalidate: bool,
    /// `O<token>`: opaque echoed in the reply (at most [`MAX_OPAQUE`] bytes).
    pub opaque: Option<&'a [u8]>,
    /// `T<exptime>`: update the exptime.
    pub touch: Option<i64>,
    /// `C<cas>`: compare and swap against this CAS unique.
    pub cas: Option<u64>,
    /// `N<exptime>`: vivify on miss, with this exptime.
    pub vivify: Option<i64>,
    /// `R<seconds>`: win the recache token when the TTL left is below this.
    pub recache: Option<i64>,
    /// `M<char>`: the mode (ms: S E A P R; ma: I + D -).
    pub mode: Option<u8>,
    /// `F<flags>`: client flags for ms.
    pub client_flags: Option<u32>,
    /// `J<n>`: ma's initial value on auto-create.
    pub initial: Option<u64>,
    /// `D<n>`: ma's delta (default 1).
    pub delta: Option<u64>,
}

/// One parsed meta command, borrowing the input buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaRequest<'a> {
    /// Which command.
    pub cmd: MetaCmd,
    /// As sent: base64 when `f.base64`.
    pub key: &'a [u8],
    /// The flag tokens, in request order, for building the reply.
    pub flag_tokens: &'a [u8],
    /// ms's data block, without its "\r\n"; empty for the others.
    pub value: &'a [u8],
    /// The flags that change what the command does.
    pub f: MetaFlags<'a>,
}

const BAD_TOKEN: &str = "CLIENT_ERROR bad token in command line format";

fn parse_flags(toks: &[u8]) -> Result<MetaFlags<'_>, &'static str> {
    let mut f = MetaFlags::default();
    let mut seen = [false; 128];
    for t in tokens(toks) {
        let c = t[0];
        if c >= 128 || seen[c as usize] {
            return Err("CLIENT_ERROR duplicate flag");
        }
        seen[c as usize] = true;
        let arg = &t[1..];
        match c {
            b'b' => f.base64 = true,
            b'q' => f.quiet = true,
            b'v' => f.value = true,
            b'u' => f.no_bump = true,
            b'I' => f.invalidate = true,
            b'k' | b's' | b't' | b'c' | b'f' | b'h' | b'l' | b'P' | b'L' => {}
            b'O' => {
                if arg.len() > MAX_OPAQUE {
                    return Err("CLIENT_ERROR opaque token too long");
                }
                f.opaque = Some(arg);
            }
            b'T' => f.touch = Some(parse_i32(arg).ok_or(BAD_TOKEN)?),
            b'N' => f.vivify = Some(parse_i32(arg).ok_or(BAD_TOKEN)?),
            b'R' => f.recache = Some(parse_i32(arg).ok_or(BAD_TOKEN)?),
            b'C' => f.cas = Some(parse_u64(arg).ok_or(BAD_TOKEN)?),
            // memcached sets no message of its own for a bad F token.
            b'F' => f.client_flags = Some(parse_u32(arg).ok_or(BAD_FORMAT)?),
            b'J' => {
                f.initial =
                    Some(parse_u64(arg).ok_or("CLIENT_ERROR invalid numeric initial value")?)
            }
            b'D' => {
                f.delta = Some(parse_u64(arg).ok_or("CLIENT_ERROR invalid numeric delta value")?)
            }
            b'M' if arg.len() != 1 => return Err("CLIENT_ERROR incorrect length for M token"),
            b'M' => f.mode = arg.first().copied(),
            // Among them `E` (set the CAS) and `x` (md: drop the value),
            // which memcached 1.6.18 does not know yet (measured: `mg k x`,
            // `ms k 1 E5` give `CLIENT_ERROR invalid flag`).
            _ => return Err("CLIENT_ERROR invalid flag"),
        }
    }
    Ok(f)
}

/// Parses the meta command `cmd` whose line (without "\r\n") is `line`,
/// `used` bytes of `buf` with its line ending; for `ms` the data block
/// follows in `buf` (at most `item_max` bytes are kept, larger ones
/// become `Request::TooLarge`).
pub fn parse<'a>(
    cmd: &[u8],
    line: &'a [u8],
    used: usize,
    buf: &'a [u8],
    item_max: usize,
) -> Parse<Request<'a>> {
    let cmd = match cmd {
        b"mg" => MetaCmd::Get,
        b"ms" => MetaCmd::Set,
        b"md" => MetaCmd::Delete,
        b"ma" => MetaCmd::Arith,
        b"mn" => MetaCmd::Noop,
        _ => MetaCmd::Debug,
    };
    let done = |r| Parse::Done(r, used);
    if cmd == MetaCmd::Noop {
        return done(Request::Meta(MetaRequest {
            cmd,
            key: b"",
            flag_tokens: b"",
            value: b"",
            f: MetaFlags::default(),
        }));
    }
    let mut it = tokens(line).skip(1);
    // memcached wants at least a key: fewer tokens are an unknown command,
    // but for `me`, which checks its own tokens.
    let Some(key) = it.next() else {
        return done(Request::Error(match cmd {
            MetaCmd::Debug => BAD_FORMAT,
            _ => ERROR,
        }));
    };
    if key.len() > KEY_MAX {
        return done(Request::Error(BAD_FORMAT));
    }
    // (me reads its key and nothing else.)
    if cmd != MetaCmd::Debug && tokens(line).count() + 1 > MFLAG_MAX_OPT_LENGTH {
        // mg's wording differs from the others' in memcached; an ms
        // refused here leaves its data line to be read as a command.
        return done(Request::Error(match cmd {
            MetaCmd::Get => "CLIENT_ERROR options flags are too long",
            _ => "CLIENT_ERROR options flags too long",
        }));
    }
    let mut vlen = None;
    if cmd == MetaCmd::Set {
        match it.next().map(parse_i32) {
            Some(Some(n)) if n >= 0 => vlen = Some(n as usize),
            _ => return done(Request::Error(BAD_FORMAT)),
        }
    }
    let rest = match it.next() {
        Some(t) => {
            let start = t.as_ptr() as usize - line.as_ptr() as usize;
            &line[start..]
        }
        None => b"",
    };
    // me reads no flags but a `b` right after the key, and ignores the
    // rest (1.6.18's process_meta_command): `me k x` is a lookup.
    if cmd == MetaCmd::Debug {
        let f = MetaFlags {
            base64: tokens(rest).next() == Some(b"b".as_slice()),
            ..MetaFlags::default()
        };
        return done(Request::Meta(MetaRequest {
            cmd,
            key,
            flag_tokens: b"",
            value: b"",
            f,
        }));
    }
    let f = match parse_flags(rest) {
        Ok(f) => f,
        Err(e) => {
            // md and ma answer every flag they cannot read alike.
            let e = match cmd {
                MetaCmd::Delete | MetaCmd::Arith if e != "CLIENT_ERROR opaque token too long" => {
                    "CLIENT_ERROR invalid or duplicate flag"
                }
                _ => e,
            };
            return match vlen {
                Some(n) => Parse::Skip(Request::Error(e), used, n + 2),
                None => done(Request::Error(e)),
            };
        }
    };
    let mut value: &[u8] = b"";
    let mut total = used;
    if let Some(n) = vlen {
        if n > item_max {
            // memcached's process_mset_command switches on the mode
            // before it allocates: an unknown mode is the error a
            // too-large value gets.
            let Some(mode) = ms_mode(f.mode) else {
                return Parse::Skip(Request::Error(MS_BAD_MODE), used, n + 2);
            };
            // Errors go out even in quiet mode (but see `Oversized::quiet`).
            let req = Request::TooLarge(Oversized {
                refusal: Refusal::TooLarge,
                key,
                base64: f.base64,
                mode,
                cmd: StoreCmd::Meta,
                flags: f.client_flags.unwrap_or(0),
                noreply: false,
                quiet: f.quiet,
            });
            return Parse::Skip(req, used, n + 2);
        }
        total = used + n + 2;
        if buf.len() < total {
            return Parse::NeedMore(total - buf.len());
        }
        if &buf[used + n..total] != b"\r\n" {
            return Parse::Done(Request::Error(super::text::BAD_CHUNK), total);
        }
        value = &buf[used..used + n];
    }
    Parse::Done(
        Request::Meta(MetaRequest {
            cmd,
            key,
            flag_tokens: rest,
            value,
            f,
        }),
        total,
    )
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Decodes standard base64 into `out`; None if malformed or too long.
pub fn base64_decode<'o>(input: &[u8], out: &'o mut [u8; KEY_MAX + 6]) -> Option<&'o [u8]> {
    if input.is_empty() || !input.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> { B64.iter().position(|&b| b == c).map(|p| p as u32) };
    let mut n = 0;
    for chunk in input.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut acc = 0u32;
        for &c in &chunk[..4 - pad] {
            acc = (acc << 6) | val(c)?;
        }
        acc <<= 6 * pad as u32;
        let bytes = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        for &b in &bytes[..3 - pad] {
            if n >= out.len() {
                return None;
            }
            out[n] = b;
            n += 1;
        }
    }
    (n <= KEY_MAX).then_some(&out[..n])
}

/// Appends standard base64 (with padding) of `input` to `out`, for
/// echoing a `b` key.
pub fn base64_encode(input: &[u8], out: &mut Vec<u8>) {
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let acc = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((acc >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}
