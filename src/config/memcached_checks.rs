//! memcached's refusals of values for options that have no effect here.
//!
//! corecache accepts every option memcached 1.6 does, and starts with a
//! warning for those it has no machinery for (`extended.rs`'s
//! `NO_EFFECT`, `-f`, `-n`, `-R`, `-N`). A value memcached refuses is still a
//! mistake in the command line or unit file that carries it, and one that
//! would stop memcached from starting if the user went back to it, so it is
//! refused here too, with memcached's message (memcached.c 1.6.18,
//! Debian's and the tests' oracle, `main`'s option switch): a drop-in accepts what memcached accepts and refuses
//! what it refuses. The numbers are read as memcached reads them: `atoi`
//! and `atof` take the longest numeric prefix ("12abc" is 12, "abc" is 0),
//! `safe_strtoul` and `safe_strtol` take only a whole number.

/// C's `isspace` in the "C" locale.
fn c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// C's `strtol`/`strtoul` core in base 10: leading blanks, a sign, digits.
/// Returns (negative, magnitude, overflowed, bytes used; 0 = no digits).
fn c_strto(v: &str) -> (bool, u64, bool, usize) {
    let t = v.trim_start_matches(c_space);
    let skipped = v.len() - t.len();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return (false, 0, false, 0);
    }
    let (mut n, mut over) = (0u64, false);
    for d in body.bytes().take(digits) {
        match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
        {
            Some(m) => n = m,
            None => over = true,
        }
    }
    (neg, n, over, skipped + (t.len() - body.len()) + digits)
}

/// C's `strtol` (64-bit long): saturates on overflow, which it reports.
fn strtol_c(v: &str) -> (i64, bool, usize) {
    let (neg, n, over, used) = c_strto(v);
    let max = if neg { 1u64 << 63 } else { i64::MAX as u64 };
    if over || n > max {
        (if neg { i64::MIN } else { i64::MAX }, true, used)
    } else if neg {
        ((n as i64).wrapping_neg(), false, used)
    } else {
        (n as i64, false, used)
    }
}

/// glibc's `atoi`: `(int) strtol(v, NULL, 10)`, so a value past 32 bits
/// wraps as memcached sees it ("99999999999" is 1215752191).
fn atoi(v: &str) -> i64 {
    i64::from(strtol_c(v).0 as i32)
}

/// Whether `strtol`'s end leaves what memcached's `safe_strto*` accept:
/// digits, then the end of the string or a blank.
fn ends_well(v: &str, used: usize) -> bool {
    used > 0 && v[used..].chars().next().is_none_or(c_space)
}

/// memcached's `safe_strtoul` (util.c): `strtoul` then the end check; a
/// negative number is refused only when it reads as past `LONG_MAX`;
/// the result is cut to 32 bits.
fn safe_strtoul(v: &str) -> Option<u32> {
    let (neg, n, over, used) = c_strto(v);
    if over || !ends_well(v, used) {
        return None;
    }
    let l = if neg { n.wrapping_neg() } else { n };
    if (l as i64) < 0 && v.contains('-') {
        return None;
    }
    Some(l as u32)
}

/// memcached's `safe_strtol` (util.c): `strtol` then the end check, cut
/// to 32 bits.
fn safe_strtol(v: &str) -> Option<i32> {
    let (l, over, used) = strtol_c(v);
    (!over && ends_well(v, used)).then_some(l as i32)
}

/// C's `atof` (`strtod`): leading blanks, a sign, then `inf`, `nan`, a
/// hexadecimal (`0x1p-1`) or a decimal number, the longest prefix that is
/// one; 0 if none.
fn atof(v: &str) -> f64 {
    let t = v.trim_start_matches(c_space);
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = body.to_ascii_lowercase();
    let mag = if lower.starts_with("inf") {
        f64::INFINITY
    } else if lower.starts_with("nan") {
        f64::NAN
    } else if lower.starts_with("0x")
        && body[2..].starts_with(|c: char| c.is_ascii_hexdigit() || c == '.')
    {
        hex_float(&body[2..])
    } else {
        (1..=body.len())
            .rev()
            .filter(|&n| body.is_char_boundary(n))
            .find_map(|n| body[..n].parse::<f64>().ok().filter(|f| f.is_finite()))
            .unwrap_or(0.0)
    };
    if neg {
        -mag
    } else {
        mag
    }
}

/// The digits after `0x` of a C hexadecimal float: hex digits, an
/// optional fraction, an optional binary exponent `p[+-]N`.
fn hex_float(s: &str) -> f64 {
    let mut m = 0f64;
    let mut scale = 0i32;
    let mut chars = s.chars().peekable();
    let mut fraction = false;
    while let Some(&c) = chars.peek() {
        if let Some(d) = c.to_digit(16) {
            m = m * 16.0 + f64::from(d);
            if fraction {
                scale -= 4;
            }
        } else if c == '.' && !fraction {
            fraction = true;
        } else {
            break;
        }
        chars.next();
    }
    let rest: String = chars.collect();
    if let Some(exp) = rest.strip_prefix(['p', 'P']) {
        let (e, _, used) = strtol_c(exp);
        if used > 0 {
            scale = scale.saturating_add(e.clamp(-10_000, 10_000) as i32);
        }
    }
    m * 2f64.powi(scale)
}

/// memcached's check of `-o name[=value]` for an option that has no effect
/// here; `value` is None when there was no `=`. Err holds memcached's
/// message.
pub fn check_suboption(name: &str, value: Option<&str>) -> Result<(), String> {
    let need = |what: &str| value.ok_or_else(|| format!("Missing {what}"));
    let refuse = |bad: bool, msg: &str| if bad { Err(msg.to_string()) } else { Ok(()) };
    match name {
        "hashpower" => {
            let n = atoi(need("numeric argument for hashpower")?);
            if n < 12 {
                return Err(format!("Initial hashtable multiplier of {n} is too low"));
            }
            refuse(
                n > 32,
                &format!(
                    "Initial hashtable multiplier of {n} is too high\n\
                     Choose a value based on \"STAT hash_power_level\" from a running instance"
                ),
            )
        }
        "slab_automove" => {
            let n = value.map_or(1, atoi);
            refuse(
                !(0..=2).contains(&n),
                "slab_automove must be between 0 and 2",
            )
        }
        "slab_automove_ratio" => {
            let r = atof(need("slab_automove_ratio argument")?);
            refuse(
                r <= 0.0 || r > 1.0,
                "slab_automove_ratio must be > 0 and < 1",
            )
        }
        "slab_automove_window" => {
            let n = atoi(need("slab_automove_window argument")?);
            refuse(n < 3, "slab_automove_window must be > 2")
        }
        "tail_repair_time" => {
            let n = atoi(need("numeric argument for tail_repair_time")?);
            refuse(
                n < 10,
                "Cannot set tail_repair_time to less than 10 seconds",
            )
        }
        "hash_algorithm" => {
            let v = need("hash_algorithm argument")?;
            refuse(
                !matches!(v, "jenkins" | "murmur3" | "xxh3"),
                "Unknown hash_algorithm option (jenkins, murmur3, xxh3)",
            )
        }
        "lru_crawler_sleep" => {
            let n = atoi(need("lru_crawler_sleep value")?);
            refuse(
                !(0..=1_000_000).contains(&n),
                "LRU crawler sleep must be between 0 and 1 second",
            )
        }
        "lru_crawler_tocrawl" => refuse(
            safe_strtoul(need("lru_crawler_tocrawl value")?).is_none(),
            "lru_crawler_tocrawl takes a numeric 32bit value",
        ),
        "hot_lru_pct" | "warm_lru_pct" => {
            let n = atoi(need(&format!("{name} argument"))?);
            refuse(
                !(1..80).contains(&n),
                &format!("{name} must be > 1 and < 80"),
            )
        }
        "hot_max_factor" | "warm_max_factor" => {
            let f = atof(need(&format!("{name} argument"))?);
            refuse(f <= 0.0, &format!("{name} must be > 0"))
        }
        "temporary_ttl" => need("temporary_ttl argument").map(|_| ()),
        "watcher_logbuf_size" | "worker_logbuf_size" | "read_buf_mem_limit" => refuse(
            safe_strtoul(need(&format!("{name} argument"))?).is_none(),
            &format!("could not parse argument to {name}"),
        ),
        // 1.6.18 takes bytes and checks them against -I and the slab page
        // size after the options; later releases take kilobytes.
        "slab_chunk_max" => refuse(
            safe_strtol(need("slab_chunk_max argument")?).is_none(),
            "could not parse argument to slab_chunk_max",
        ),
        "ssl_ciphers" => need("ssl_ciphers argument").map(|_| ()),
        "ssl_wbuf_size" => refuse(
            safe_strtoul(need("ssl_wbuf_size argument")?).is_none(),
            "could not parse argument to ssl_wbuf_size",
        ),
        _ => Ok(()),
    }
}

/// memcached's check of a top-level flag that has no effect here (`-f`,
/// `-n`, `-R`, `-N`); Err holds memcached's message.
pub fn check_flag(flag: &str, value: &str) -> Result<(), String> {
    let (bad, msg) = match flag {
        "-f" => (atof(value) <= 1.0, "Factor must be greater than 1"),
        // 1.6.18 refuses only 0 for these two.
        "-n" => (atoi(value) == 0, "Chunk size must be greater than 0"),
        "-R" => (
            atoi(value) == 0,
            "Number of requests per event must be greater than 0",
        ),
        "-N" => (
            atoi(value) <= 0,
            "Maximum number of NAPI IDs must be greater than 0",
        ),
        _ => (false, ""),
    };
    if bad {
        Err(msg.to_string())
    } else {
        Ok(())
    }
}

/// The last value given for `-o name` in `opts`, if any (None inside:
/// given without `=`).
fn last<'a>(opts: &'a [String], name: &str) -> Option<Option<&'a str>> {
    opts.iter()
        .rev()
        .flat_map(|s| s.rsplit(','))
        .find_map(|o| match o.split_once('=') {
            Some((k, v)) if k == name => Some(Some(v)),
            None if o == name => Some(None),
            _ => None,
        })
}

/// memcached's checks after all the options are read (memcached.c 1.6.18
/// `main`, thread.c `memcached_thread_init`), of the ones that have no
/// effect here: `opts` are the `-o` arguments, `threads` the `-t` given
/// (memcached's default is 4), `item_max` `-I` in bytes, `napi` `-N`.
/// Err holds memcached's message.
pub fn check_combined(
    opts: &[String],
    threads: Option<usize>,
    item_max: usize,
    napi: Option<&str>,
) -> Result<(), String> {
    let threads = threads.unwrap_or(4);
    if let Some(n) = napi.map(atoi).filter(|&n| n > threads as i64) {
        return Err(format!(
            "Number of napi_ids({n}) cannot be greater than number of threads({threads})"
        ));
    }
    // The slab page is 1 MiB; above a 1 MiB -I an unset slab_chunk_max is
    // half of it, as it is by default.
    if let Some(Some(v)) = last(opts, "slab_chunk_max") {
        let chunk = i64::from(safe_strtol(v).unwrap_or(0));
        let item = item_max as i64;
        if chunk <= 0 {
            // memcached divides by it (SIGFPE) or goes on with nonsense.
            return Err(format!(
                "slab_chunk_max (bytes: {chunk}) must be greater than 0"
            ));
        }
        if chunk > item {
            return Err(format!(
                "slab_chunk_max (bytes: {chunk}) cannot be larger than -I (item_size_max {item})"
            ));
        }
        if item % chunk != 0 {
            return Err(format!(
                "-I (item_size_max: {item}) must be evenly divisible by slab_chunk_max (bytes: {chunk})"
            ));
        }
        if (1 << 20) % chunk != 0 {
            return Err(format!(
                "slab_chunk_max (bytes: {chunk}) must divide evenly into 1048576 (slab_page_size)"
            ));
        }
    }
    if let Some(Some(v)) = last(opts, "worker_logbuf_size") {
        if safe_strtoul(v) == Some(0) {
            return Err("slab size 0 is out of valid range".into());
        }
    }
    let pct = |name, default| last(opts, name).flatten().map_or(default, atoi);
    if pct("hot_lru_pct", 20) + pct("warm_lru_pct", 40) > 80 {
        return Err("hot_lru_pct + warm_lru_pct cannot be more than 80% combined".into());
    }
    if let Some(Some(v)) = last(opts, "hashpower") {
        let hashpower = atoi(v);
        let lock_power = match threads {
            0..=2 => 10,
            3 => 11,
            4 => 12,
            5..=10 => 13,
            11..=20 => 14,
            _ => 15,
        };
        if lock_power >= hashpower {
            return Err(format!(
                "Hash table power size ({hashpower}) cannot be equal to or less than item lock \
                 table ({lock_power})\nItem lock table grows with `-t N` (worker threadcount)\n\
                 Hash table grows with `-o hashpower=N`"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_c_reads_them() {
        assert_eq!(atoi("12abc"), 12);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi("  -7"), -7);
        // (int) of strtol's LONG_MAX, and of a 64-bit value: as glibc.
        assert_eq!(atoi("99999999999999999999999"), -1);
        assert_eq!(atoi("99999999999"), 1_215_752_191);
        assert_eq!(atoi("4294967308"), 12);
        assert_eq!(atof("1.5x"), 1.5);
        assert_eq!(atof("x"), 0.0);
        assert_eq!(atof("1e"), 1.0);
        assert_eq!(atof("0x10"), 16.0);
        assert_eq!(atof("0x1p-1"), 0.5);
        assert_eq!(atof("-inf"), f64::NEG_INFINITY);
        assert!(atof("nan").is_nan());
        assert_eq!(safe_strtoul("4096"), Some(4096));
        assert_eq!(safe_strtoul(" 5"), Some(5));
        assert_eq!(safe_strtoul("5\tx"), Some(5));
        assert_eq!(safe_strtoul("-0"), Some(0));
        assert_eq!(safe_strtoul("4294967296"), Some(0));
        assert_eq!(safe_strtoul("4k"), None);
        assert_eq!(safe_strtoul("-1"), None);
        assert_eq!(safe_strtoul(""), None);
        assert_eq!(safe_strtol("2147483648"), Some(i32::MIN));
        assert_eq!(safe_strtol("99999999999999999999"), None);
    }

    #[test]
    fn memcached_refusals() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("hashpower", Some("11"), Some("multiplier of 11 is too low")),
            (
                "hashpower",
                Some("99"),
                Some("multiplier of 99 is too high"),
            ),
            ("hashpower", Some("16"), None),
            (
                "hashpower",
                None,
                Some("Missing numeric argument for hashpower"),
            ),
            ("hashpower", Some(""), Some("multiplier of 0 is too low")),
            ("tail_repair_time", Some("1"), Some("less than 10 seconds")),
            ("tail_repair_time", Some("10"), None),
            ("slab_automove", None, None),
            ("slab_automove", Some("3"), Some("between 0 and 2")),
            ("slab_automove_ratio", Some("1.5"), Some("> 0 and < 1")),
            ("slab_automove_window", Some("2"), Some("must be > 2")),
            ("slab_automove_window", Some("3000"), None),
            (
                "hash_algorithm",
                Some("md5"),
                Some("Unknown hash_algorithm"),
            ),
            ("hash_algorithm", Some("murmur3"), None),
            (
                "hot_lru_pct",
                Some("80"),
                Some("hot_lru_pct must be > 1 and < 80"),
            ),
            ("warm_lru_pct", Some("40"), None),
            ("lru_crawler_tocrawl", Some("x"), Some("numeric 32bit")),
            ("slab_chunk_max", Some("2k"), Some("could not parse")),
            ("slab_chunk_max", Some("2048"), None),
            ("worker_logbuf_size", Some("8k"), Some("could not parse")),
            ("lru_crawler", None, None),
        ];
        for &(name, value, want) in cases {
            match (check_suboption(name, value), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{name}={value:?}: {e}"),
                (got, _) => panic!("{name}={value:?}: {got:?}, wanted {want:?}"),
            }
        }
        assert!(check_flag("-R", "0").is_err() && check_flag("-R", "20").is_ok());
        assert!(check_flag("-f", "1").is_err() && check_flag("-f", "1.25").is_ok());
        assert!(check_flag("-n", "0").is_err() && check_flag("-n", "48").is_ok());
        assert!(check_flag("-n", "-5").is_ok() && check_flag("-R", "4294967296").is_err());
        assert!(check_flag("-f", "inf").is_ok() && check_flag("-f", "0x10").is_ok());
        let t = |o: &[&str], threads, item, napi| {
            let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
            check_combined(&o, threads, item, napi)
        };
        assert!(t(&["hot_lru_pct=41"], None, 1 << 20, None).is_err());
        assert!(t(&["hot_lru_pct=50,warm_lru_pct=30"], None, 1 << 20, None).is_ok());
        assert!(t(&["hashpower=12"], None, 1 << 20, None).is_err());
        assert!(t(&["hashpower=13"], Some(16), 1 << 20, None).is_err());
        assert!(t(&["hashpower=13"], Some(4), 1 << 20, None).is_ok());
        assert!(t(&[], Some(4), 1 << 20, Some("5")).is_err());
        assert!(t(&["slab_chunk_max=2097152"], None, 1 << 20, None).is_err());
        assert!(t(&["slab_chunk_max=3000"], None, 1 << 20, None).is_err());
        assert!(t(&["slab_chunk_max=16384"], None, 1 << 20, None).is_ok());
        assert!(t(&["slab_chunk_max=0"], None, 1 << 20, None).is_err());
        assert!(t(&["worker_logbuf_size=0"], None, 1 << 20, None).is_err());
    }
}
