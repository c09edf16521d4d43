//! The text storage commands (`set`, `add`, `replace`, `append`,
//! `prepend`, `cas`), framed as memcached's `process_update_command`
//! (proto_text.c) frames them.

use super::{
    parse_i32, parse_u32, parse_u64, refused, split, Request, BAD_CHUNK, BAD_FORMAT, ERROR,
};
use crate::protocol::{Oversized, Parse, Refusal, SetMode, Storage, StoreCmd, KEY_MAX};

/// Parses the storage command `cmd` whose line is `line` (without its
/// "\r\n", `used` bytes with it) at the front of `buf`.
///
/// memcached's order: a token count other than 5 or 6 (6 or 7 for `cas`)
/// is `ERROR`; then a key over 250 bytes, a bad flags, exptime, length or
/// CAS unique, or a length outside 0..=INT_MAX-2 is `CLIENT_ERROR bad
/// command line format`, and the next line is read as a command (no data
/// block is swallowed: memcached swallows one only after it knows the
/// length and fails to allocate, i.e. for an item over `-I`). `noreply` is
/// the last token being `noreply`, and it silences those errors as well.
pub(super) fn parse<'a>(
    cmd: &[u8],
    line: &'a [u8],
    used: usize,
    buf: &'a [u8],
    item_max: usize,
) -> Parse<Request<'a>> {
    let is_cas = cmd == b"cas";
    let ([_, key, flags, exp, len, cas_tok], n, last) = split::<6>(line);
    let want = if is_cas { 6 } else { 5 };
    if n != want && n != want + 1 {
        return Parse::Done(Request::Error(ERROR), used);
    }
    let noreply = last == b"noreply";
    let bad = Parse::Done(refused(BAD_FORMAT, noreply), used);
    if key.len() > KEY_MAX {
        return bad;
    }
    let (Some(flags), Some(exptime), Some(vlen)) =
        (parse_u32(flags), parse_i32(exp), parse_i32(len))
    else {
        return bad;
    };
    let cas = match is_cas {
        true => match parse_u64(cas_tok) {
            Some(c) => Some(c),
            None => return bad,
        },
        false => None,
    };
    if !(0..=i32::MAX as i64 - 2).contains(&vlen) {
        return bad;
    }
    let vlen = vlen as usize;
    let mode = match cmd {
        b"set" | b"cas" => SetMode::Set,
        b"add" => SetMode::Add,
        b"replace" => SetMode::Replace,
        b"append" => SetMode::Append,
        _ => SetMode::Prepend,
    };
    if vlen > item_max {
        let req = Request::TooLarge(Oversized {
            refusal: Refusal::TooLarge,
            key,
            base64: false,
            mode,
            cmd: if is_cas {
                StoreCmd::Cas
            } else {
                StoreCmd::Plain
            },
            flags,
            noreply,
            quiet: false,
        });
        return Parse::Skip(req, used, vlen + 2);
    }
    let need = used + vlen + 2;
    if buf.len() < need {
        return Parse::NeedMore(need - buf.len());
    }
    if &buf[used + vlen..need] != b"\r\n" {
        // memcached reads the declared length + 2 bytes, then refuses
        // them; the rest of the line is read as a command.
        return Parse::Done(refused(BAD_CHUNK, noreply), need);
    }
    Parse::Done(
        Request::Store(Storage {
            mode,
            key,
            flags,
            exptime,
            value: &buf[used..used + vlen],
            cas,
            noreply,
        }),
        need,
    )
}
