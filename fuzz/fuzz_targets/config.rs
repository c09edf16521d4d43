//! The `-o` list and memcached's checks of flags that have no effect
//! (config/extended.rs, config/memcached_checks.rs) on arbitrary text:
//! never a panic, and a list that parses gives the same answer again (the
//! C number readers are total functions of their input).
#![no_main]
use corecache::config::memcached_checks::{check_combined, check_flag};
use corecache::config::parse_extended;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\0');
    let opts: Vec<String> = parts.next().unwrap_or("").split('\n').map(str::to_string).collect();
    let flag = parts.next().unwrap_or("");
    let rest = parts.next().unwrap_or("");
    let first = parse_extended(&opts).is_ok();
    assert_eq!(parse_extended(&opts).is_ok(), first);
    for f in ["-f", "-n", "-R", "-N"] {
        let _ = check_flag(f, flag);
    }
    let threads = rest.bytes().next().map(usize::from);
    let item = rest.len().saturating_mul(1024).max(1024);
    let _ = check_combined(&opts, threads, item, Some(flag));
});
