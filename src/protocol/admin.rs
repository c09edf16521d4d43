//! memcached's maintenance commands that concern the LRU crawler, the
//! LRU's tuning and the slab allocator (`lru_crawler ...`, `lru ...`,
//! `slabs ...`, `stats cachedump`),
//! parsed from the arguments the text parser hands over. Pure: what to do,
//! or the exact line memcached 1.6 answers.

use super::text::{parse_f64, parse_i32, parse_u64, tokens};

/// The highest class id memcached has with its default classes.
pub const MAX_CLASS_ID: u32 = 39;
/// The highest class id memcached accepts in a command
/// (`MAX_NUMBER_OF_SLAB_CLASSES` - 1); ids past the last class exist
/// and are empty.
const MAX_ID: i64 = 63;

/// What an admin command asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminCmd {
    /// `lru_crawler metadump all|hash|<id,id,...>`: every live item's
    /// metadata line, then `END`. Bit i of `classes` = class id i.
    MetaDump {
        /// Which classes.
        classes: u64,
    },
    /// `stats cachedump <id> <limit>`: up to `limit` (0 = no limit but
    /// memcached's 2 MiB) `ITEM` lines of class `class`, then `END`.
    CacheDump {
        /// The class id.
        class: u32,
        /// Lines at most; 0 = all.
        limit: u32,
    },
    /// A command answered with one line and nothing else done.
    Line(&'static str),
    /// A command answered with nothing (`noreply`).
    Silent,
}

const ALL: u64 = !1;

fn num(t: &[u8]) -> Option<u32> {
    std::str::from_utf8(t).ok()?.parse().ok()
}

/// `<id,id,...>`, `all` (or `hash` where `hash` is allowed) as a bit set.
fn class_list(t: &[u8], hash: bool) -> Option<u64> {
    if t == b"all" || (hash && t == b"hash") {
        return Some(ALL);
    }
    let mut set = 0u64;
    for p in t.split(|&c| c == b',') {
        match num(p) {
            Some(i) if (1..=MAX_ID as u32).contains(&i) => set |= 1 << i,
            _ => return None,
        }
    }
    Some(set)
}

/// `lru_crawler <args>`: memcached's sub-commands. The store's own crawler
/// always runs (see store/expiry.rs), so `crawl`, `enable`, `disable`,
/// `sleep` and `tocrawl` are accepted and change nothing.
pub fn lru_crawler(args: &[u8]) -> AdminCmd {
    let mut it = tokens(args);
    let (sub, arg, more) = (it.next(), it.next(), it.next().is_some());
    if more {
        return AdminCmd::Line("ERROR");
    }
    match (sub, arg) {
        (Some(b"metadump"), Some(a)) => match class_list(a, true) {
            Some(classes) => AdminCmd::MetaDump { classes },
            None => AdminCmd::Line("BADCLASS invalid class id"),
        },
        (Some(b"crawl"), Some(a)) => match class_list(a, false) {
            Some(_) => AdminCmd::Line("OK"),
            None => AdminCmd::Line("BADCLASS invalid class id"),
        },
        (Some(b"enable" | b"disable"), None) => AdminCmd::Line("OK"),
        (Some(b"sleep" | b"tocrawl"), Some(a)) if num(a).is_some() => AdminCmd::Line("OK"),
        (Some(b"sleep" | b"tocrawl"), Some(_)) => {
            AdminCmd::Line("CLIENT_ERROR bad command line format")
        }
        _ => AdminCmd::Line("ERROR"),
    }
}

/// `slabs <args>`. Segments hold every size, so there are no per-class
/// pages to move: `reassign` between valid classes answers memcached's
/// `NOSPARE`, and `automove` is accepted.
pub fn slabs(args: &[u8]) -> AdminCmd {
    let mut it = tokens(args);
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(b"automove"), Some(b"0" | b"1" | b"2"), None, None) => AdminCmd::Line("OK"),
        (Some(b"reassign"), Some(src), Some(dst), None) => {
            let src: Option<i64> = std::str::from_utf8(src).ok().and_then(|s| s.parse().ok());
            let dst: Option<i64> = std::str::from_utf8(dst).ok().and_then(|s| s.parse().ok());
            // Source 0 is memcached's global page pool.
            match (src, dst) {
                (Some(s), Some(d)) if (0..=MAX_ID).contains(&s) && (1..=MAX_ID).contains(&d) => {
                    if s == d {
                        AdminCmd::Line("SAME src and dst class are identical")
                    } else {
                        AdminCmd::Line("NOSPARE source class has no spare pages")
                    }
                }
                _ => AdminCmd::Line("BADCLASS invalid src or dst class id"),
            }
        }
        _ => AdminCmd::Line("ERROR"),
    }
}

/// `lru <args>`: memcached's tuning of its segmented LRU (`tune <hot %>
/// <warm %> <hot age factor> <warm age factor>`, `mode flat|segmented`,
/// `temp_ttl <seconds>`). Segments have no hot, warm or cold queues, so a
/// valid command changes nothing; the answers, the token counts and the
/// number parsing are memcached 1.6's (proto_text.c `process_lru_command`,
/// util.c `safe_strtoul`/`safe_strtol`/`safe_strtod`), and `noreply` as
/// the last token silences every answer, errors included, as there.
pub fn lru(args: &[u8]) -> AdminCmd {
    let t: Vec<&[u8]> = tokens(args).collect();
    if t.last() == Some(&&b"noreply"[..]) {
        return AdminCmd::Silent;
    }
    // safe_strtoul: an unsigned long kept to its low 32 bits.
    let pct = |i: usize| parse_u64(t[i]).map(|v| v as u32);
    let factor = |i: usize| parse_f64(t[i]);
    // memcached's token count has the command word and an empty last one.
    let ntokens = t.len() + 2;
    match t.first().copied() {
        Some(b"tune") if ntokens >= 7 => match (pct(1), pct(2), factor(3), factor(4)) {
            (Some(hot), Some(warm), Some(hot_factor), Some(warm_factor)) => {
                if hot.wrapping_add(warm) > 80 {
                    AdminCmd::Line("ERROR hot and warm pcts must not exceed 80")
                } else if warm_factor <= 0.0 || hot_factor <= 0.0 {
                    AdminCmd::Line("ERROR hot/warm age factors must be greater than 0")
                } else {
                    AdminCmd::Line("OK")
                }
            }
            _ => AdminCmd::Line("ERROR"),
        },
        Some(b"mode") if ntokens >= 4 => match t[1] {
            b"flat" | b"segmented" => AdminCmd::Line("OK"),
            _ => AdminCmd::Line("ERROR"),
        },
        // safe_strtol: any 64-bit long.
        Some(b"temp_ttl") if ntokens >= 4 => match parse_i32(t[1]) {
            Some(_) => AdminCmd::Line("OK"),
            None => AdminCmd::Line("ERROR"),
        },
        _ => AdminCmd::Line("ERROR"),
    }
}

/// `stats cachedump <id> <limit>` (`args` after `cachedump`).
pub fn cachedump(args: &[u8]) -> AdminCmd {
    let mut it = tokens(args);
    match (it.next().map(num), it.next().map(num)) {
        (Some(Some(class)), Some(Some(limit))) if (1..=MAX_CLASS_ID).contains(&class) => {
            AdminCmd::CacheDump { class, limit }
        }
        (Some(Some(_)), Some(Some(_))) => AdminCmd::Line("CLIENT_ERROR Illegal slab id"),
        _ => AdminCmd::Line("CLIENT_ERROR bad command line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_memcached_answers() {
        assert_eq!(
            lru_crawler(b" metadump all"),
            AdminCmd::MetaDump { classes: ALL }
        );
        assert_eq!(
            lru_crawler(b" metadump hash"),
            AdminCmd::MetaDump { classes: ALL }
        );
        assert_eq!(
            lru_crawler(b" metadump 1,4"),
            AdminCmd::MetaDump {
                classes: (1 << 1) | (1 << 4)
            }
        );
        assert_eq!(lru_crawler(b" metadump k nope"), AdminCmd::Line("ERROR"));
        assert_eq!(
            lru_crawler(b" metadump nope"),
            AdminCmd::Line("BADCLASS invalid class id")
        );
        assert_eq!(
            lru_crawler(b" metadump nope"),
            AdminCmd::Line("BADCLASS invalid class id")
        );
        assert_eq!(lru_crawler(b" metadump"), AdminCmd::Line("ERROR"));
        assert_eq!(lru_crawler(b""), AdminCmd::Line("ERROR"));
        assert_eq!(lru_crawler(b" crawl all"), AdminCmd::Line("OK"));
        assert_eq!(lru_crawler(b" crawl 1,4"), AdminCmd::Line("OK"));
        assert_eq!(lru(b" mode flat"), AdminCmd::Line("OK"));
        assert_eq!(lru(b" mode segmented extra"), AdminCmd::Line("OK"));
        assert_eq!(lru(b" mode bogus"), AdminCmd::Line("ERROR"));
        assert_eq!(lru(b" mode"), AdminCmd::Line("ERROR"));
        assert_eq!(lru(b" mode bogus noreply"), AdminCmd::Silent);
        assert_eq!(lru(b" tune 20 20 0.1 2"), AdminCmd::Line("OK"));
        assert_eq!(
            lru(b" tune 50 40 0.1 2"),
            AdminCmd::Line("ERROR hot and warm pcts must not exceed 80")
        );
        assert_eq!(
            lru(b" tune 20 20 0 2"),
            AdminCmd::Line("ERROR hot/warm age factors must be greater than 0")
        );
        assert_eq!(lru(b" tune 20 20 0.1"), AdminCmd::Line("ERROR"));
        assert_eq!(lru(b" tune x 20 0.1 2"), AdminCmd::Line("ERROR"));
        // C's number parsing, as memcached's safe_strto* (the breaker's
        // forms): a minus on an unsigned, hex and nan(...) floats, ERANGE
        // both ways, whitespace inside a token.
        for ok in [
            &b" tune -0 20 0.1 2"[..],
            b" tune -18446744073709551615 20 0.1 2",
            b" tune 20 20 0x10 2",
            b" tune 20 20 0x1p3 nan(123)",
            b" tune 20 20 INF 2",
            b" temp_ttl \t5",
            b" temp_ttl 5\r",
        ] {
            assert_eq!(
                lru(ok),
                AdminCmd::Line("OK"),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
        for bad in [
            &b" tune 20 20 1e400 2"[..],
            b" tune 20 20 1e-310 2",
            b" tune 20 20 1e-400 2",
        ] {
            assert_eq!(
                lru(bad),
                AdminCmd::Line("ERROR"),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            lru(b" tune 20 20 -0 2"),
            AdminCmd::Line("ERROR hot/warm age factors must be greater than 0")
        );
        assert_eq!(lru(b" temp_ttl -1"), AdminCmd::Line("OK"));
        assert_eq!(lru(b" temp_ttl x"), AdminCmd::Line("ERROR"));
        assert_eq!(lru(b""), AdminCmd::Line("ERROR"));
        assert_eq!(slabs(b" automove 1"), AdminCmd::Line("OK"));
        assert_eq!(slabs(b" automove 9"), AdminCmd::Line("ERROR"));
        assert_eq!(
            slabs(b" reassign 1 2"),
            AdminCmd::Line("NOSPARE source class has no spare pages")
        );
        assert_eq!(
            slabs(b" reassign 0 4"),
            AdminCmd::Line("NOSPARE source class has no spare pages")
        );
        assert_eq!(
            slabs(b" reassign -1 4"),
            AdminCmd::Line("BADCLASS invalid src or dst class id")
        );
        assert_eq!(slabs(b" bogus"), AdminCmd::Line("ERROR"));
        assert_eq!(
            cachedump(b" 4 0"),
            AdminCmd::CacheDump { class: 4, limit: 0 }
        );
        assert_eq!(
            cachedump(b" 99 0"),
            AdminCmd::Line("CLIENT_ERROR Illegal slab id")
        );
        assert_eq!(
            cachedump(b""),
            AdminCmd::Line("CLIENT_ERROR bad command line")
        );
    }
}
