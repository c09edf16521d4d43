//! systemd's service protocol (sd_notify(3)), for `Type=notify` units:
//! `READY=1` once every worker serves, `STATUS=` lines for `systemctl
//! status`, `STOPPING=1` when a stop begins, and `WATCHDOG=1` pings while
//! every worker's loop is turning, when the unit sets `WatchdogSec=`.
//!
//! Everything is a no-op without `NOTIFY_SOCKET` (not started by
//! systemd), and a failed send is ignored: the service manager going away
//! must not stop the cache. The pings come from their own thread, never
//! from a worker, and judge liveness by what the workers publish (their
//! loop-turn counters, as `/readyz` does), so a worker stuck in a loop
//! that never returns to io_uring stops the pings and systemd restarts
//! the service.

use super::figures::{gather, Figures};
use super::health::Heartbeats;
use crate::engine::Shared;
use sd_notify::NotifyState;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether a service manager asked for notifications (`NOTIFY_SOCKET`
/// is set): then `-d` must not fork, since systemd follows the process it
/// started.
pub fn managed() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Sends `STATUS=<line>`.
pub fn status(line: &str) {
    let _ = sd_notify::notify(&[NotifyState::Status(line)]);
}

/// Sends `READY=1` with a status line. Call only once every worker serves.
pub fn ready(line: &str) {
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(line)]);
}

/// Sends `STOPPING=1` with a status line, as a stop begins.
pub fn stopping(line: &str) {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status(line)]);
}

/// The status line while serving: where, how many workers, and the load.
pub fn serving_line(shared: &Shared, f: &Figures) -> String {
    let s = &shared.settings;
    let at = match &s.unix_socket {
        Some(p) => p.display().to_string(),
        None => format!("{} port {}", s.interfaces, s.port),
    };
    format!(
        "serving on {at} with {} workers: {} connections, {} items, {} MiB of {} MiB",
        f.workers.len(),
        f.totals.curr_connections,
        f.totals.curr_items,
        f.totals.bytes >> 20,
        s.memory >> 20,
    )
}

/// Whether a watchdog ping is deserved: every worker serves and none has
/// stalled. Once a stop has begun the pings go on (the stop is bounded by
/// the unit's `TimeoutStopSec`, and workers end one by one meanwhile).
pub fn alive(h: &Heartbeats, f: &Figures, now: Instant) -> Result<(), Vec<String>> {
    if !f.accepting {
        return Ok(());
    }
    h.check(f, now)
}

/// How often the watchdog thread looks at the workers: often enough to
/// ping at half the timeout (sd_watchdog_enabled(3)'s advice), and at
/// least once a second so `STATUS=` stays fresh.
fn tick(timeout: Option<Duration>) -> Duration {
    let max = Duration::from_secs(1);
    timeout.map_or(max, |t| (t / 4).min(max).max(Duration::from_millis(10)))
}

/// Starts the thread that pings the watchdog (when `WATCHDOG_USEC` is
/// set for this process) and refreshes `STATUS=` every few seconds, until
/// the process exits. Does nothing when not started by systemd.
///
/// # Errors
/// The thread could not be spawned.
pub fn spawn(shared: Arc<Shared>) -> std::io::Result<()> {
    if !managed() {
        return Ok(());
    }
    let timeout = sd_notify::watchdog_enabled();
    std::thread::Builder::new()
        .name("systemd".into())
        .spawn(move || run(&shared, timeout))?;
    Ok(())
}

fn run(shared: &Shared, timeout: Option<Duration>) {
    let beats = Heartbeats::default();
    let every = tick(timeout);
    let mut last_ping: Option<Instant> = None;
    let mut last_status = Instant::now();
    let mut last_reason = String::new();
    loop {
        std::thread::sleep(every);
        let now = Instant::now();
        let f = gather(shared);
        match alive(&beats, &f, now) {
            Ok(()) => {
                let due = timeout.is_some_and(|t| last_ping.is_none_or(|p| now - p >= t / 2));
                if due {
                    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                    last_ping = Some(now);
                }
                last_reason.clear();
            }
            Err(why) => {
                // One status line (and one log line) per new reason; no
                // ping, so systemd acts once `WatchdogSec` passes.
                let reason = why.join("; ");
                if reason != last_reason {
                    tracing::error!("watchdog: not pinging systemd: {reason}");
                    status(&format!("unhealthy: {reason}"));
                    last_reason = reason;
                }
                continue;
            }
        }
        if !shared.stop.load(Relaxed) && now - last_status >= Duration::from_secs(5) {
            status(&serving_line(shared, &f));
            last_status = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::cpu::CpuTime;
    use crate::admin::figures::WorkerFigures;
    use crate::engine::counters::Counters;

    fn figs(turns: &[u64], serving: bool, accepting: bool) -> Figures {
        Figures {
            totals: Counters::default(),
            workers: turns
                .iter()
                .enumerate()
                .map(|(id, &t)| WorkerFigures {
                    id,
                    counters: Counters {
                        loop_turns: t,
                        ..Default::default()
                    },
                    cpu: None,
                    serving,
                })
                .collect(),
            latency: None,
            uptime: 0,
            time: 0,
            rusage: CpuTime::default(),
            max_connections: 1,
            version: "x",
            policy: "merge".into(),
            accepting,
            admin_conns: Default::default(),
            warm: None,
        }
    }

    #[test]
    fn no_ping_for_a_stalled_or_idle_worker_until_stopping() {
        let h = Heartbeats::default();
        let t = Instant::now();
        assert!(alive(&h, &figs(&[3, 4], true, true), t).is_ok());
        let later = t + super::super::health::STALL + Duration::from_secs(1);
        assert!(alive(&h, &figs(&[9, 4], true, true), later).is_err());
        assert!(alive(&h, &figs(&[9, 4], false, true), later).is_err());
        // Stopping: workers end one by one, the stop timeout rules.
        assert!(alive(&h, &figs(&[9, 4], false, false), later).is_ok());
    }

    #[test]
    fn ticks_fit_the_timeout() {
        assert_eq!(tick(None), Duration::from_secs(1));
        assert_eq!(tick(Some(Duration::from_secs(30))), Duration::from_secs(1));
        assert_eq!(
            tick(Some(Duration::from_millis(400))),
            Duration::from_millis(100)
        );
    }
}
