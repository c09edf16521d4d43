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

/// C's `atoi`: leading blanks, a sign, then digits up to the first other
/// byte; 0 if none. Saturates where C's would be undefined.
fn atoi(v: &str) -> i64 {
    let t = v.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if neg {
        -n
    } else {
        n
    }
}

/// C's `atof`, for the decimal forms memcached's users write: the longest
/// prefix that parses as a number; 0 if none.
fn atof(v: &str) -> f64 {
    let t = v.trim_start();
    (1..=t.len())
        .rev()
        .filter(|&n| t.is_char_boundary(n))
        .find_map(|n| t[..n].parse::<f64>().ok().filter(|f| f.is_finite()))
        .unwrap_or(0.0)
}

/// memcached's `safe_strtoul`: a whole unsigned 32-bit decimal (trailing
/// blanks allowed).
fn strtoul_ok(v: &str) -> bool {
    v.trim_end().parse::<u32>().is_ok()
}

/// memcached's `safe_strtol`: a whole signed 32-bit decimal.
fn strtol(v: &str) -> Option<i64> {
    v.trim_end().parse::<i32>().ok().map(i64::from)
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
            !strtoul_ok(need("lru_crawler_tocrawl value")?),
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
            !strtoul_ok(need(&format!("{name} argument"))?),
            &format!("could not parse argument to {name}"),
        ),
        // 1.6.18 takes bytes and checks them against -I and the slab page
        // size after the options; later releases take kilobytes.
        "slab_chunk_max" => refuse(
            strtol(need("slab_chunk_max argument")?).is_none(),
            "could not parse argument to slab_chunk_max",
        ),
        "ssl_ciphers" => need("ssl_ciphers argument").map(|_| ()),
        "ssl_wbuf_size" => refuse(
            !strtoul_ok(need("ssl_wbuf_size argument")?),
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
        "-n" => (atoi(value) <= 0, "Chunk size must be greater than 0"),
        "-R" => (
            atoi(value) <= 0,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_c_reads_them() {
        assert_eq!(atoi("12abc"), 12);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi("  -7"), -7);
        assert_eq!(atoi("99999999999999999999999"), i64::MAX);
        assert_eq!(atof("1.5x"), 1.5);
        assert_eq!(atof("x"), 0.0);
        assert_eq!(atof("1e"), 1.0);
        assert!(strtoul_ok("4096") && !strtoul_ok("4k") && !strtoul_ok("-1"));
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
    }
}
