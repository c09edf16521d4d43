//! CPU time of one thread of this process, read from procfs, so per-worker
//! CPU needs nothing from the workers but their thread id.

/// User and system CPU seconds a thread has used.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTime {
    pub user: f64,
    pub system: f64,
}

/// Reads `/proc/self/task/<tid>/stat`. `None` if the thread is gone or
/// the file does not parse.
pub fn thread_cpu(tid: i32) -> Option<CpuTime> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    parse_stat(&text, ticks_per_second())
}

/// Parses utime and stime (fields 14 and 15 of proc(5) `stat`, in clock
/// ticks). The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
pub fn parse_stat(text: &str, hz: f64) -> Option<CpuTime> {
    let rest = &text[text.rfind(')')? + 1..];
    // After ")": field 3 (state) is the first; utime is field 14.
    let mut f = rest.split_whitespace().skip(11);
    let user: u64 = f.next()?.parse().ok()?;
    let system: u64 = f.next()?.parse().ok()?;
    Some(CpuTime {
        user: user as f64 / hz,
        system: system as f64 / hz,
    })
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_name_with_spaces_and_parens() {
        let s = "4242 (worker (0) x) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 1 0";
        let c = parse_stat(s, 100.0).unwrap();
        assert_eq!(c.user, 2.5);
        assert_eq!(c.system, 0.75);
        assert!(parse_stat("garbage", 100.0).is_none());
    }

    #[test]
    fn own_thread_has_a_reading() {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu(tid).is_some());
        assert!(thread_cpu(i32::MAX).is_none());
    }
}
