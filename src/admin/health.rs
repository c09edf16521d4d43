//! `/healthz` and `/readyz`.
//!
//! Healthy: the process answers (the admin thread runs). Ready: not
//! stopping, every worker serving, and no worker's loop stalled. A live
//! worker turns its loop at least every 100 ms even when idle (its
//! io_uring wait has that timeout), so a loop-turn count unchanged over
//! [`STALL`] between two checks means a stuck worker. A count still at 0
//! means the engine does not count turns, and is not taken as a stall.

use super::figures::Figures;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a worker's loop may go without a turn before it is not ready.
pub const STALL: Duration = Duration::from_secs(5);

/// What the last readiness check saw of each worker's loop.
#[derive(Debug, Default)]
pub struct Heartbeats(Mutex<Vec<(u64, Instant)>>);

impl Heartbeats {
    /// Whether the server is ready, and if not, why (one reason a line).
    pub fn check(&self, f: &Figures, now: Instant) -> Result<(), Vec<String>> {
        let mut why = Vec::new();
        if !f.accepting {
            why.push("stopping".to_string());
        }
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.resize(f.workers.len(), (0, now));
        for (w, last) in f.workers.iter().zip(seen.iter_mut()) {
            if !w.serving {
                why.push(format!("worker {} not serving", w.id));
            }
            let turns = w.counters.loop_turns;
            if turns != last.0 {
                *last = (turns, now);
            } else if turns > 0 && now.duration_since(last.1) > STALL {
                why.push(format!(
                    "worker {} loop stalled for {} s",
                    w.id,
                    now.duration_since(last.1).as_secs()
                ));
            }
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::cpu::CpuTime;
    use crate::admin::figures::WorkerFigures;
    use crate::engine::counters::Counters;

    fn figs(serving: &[bool], turns: &[u64], accepting: bool) -> Figures {
        Figures {
            totals: Counters::default(),
            workers: serving
                .iter()
                .zip(turns)
                .enumerate()
                .map(|(id, (&s, &t))| WorkerFigures {
                    id,
                    counters: Counters {
                        loop_turns: t,
                        ..Default::default()
                    },
                    cpu: None,
                    serving: s,
                })
                .collect(),
            latency: None,
            uptime: 0,
            time: 0,
            rusage: CpuTime::default(),
            max_connections: 1024,
            version: "x",
            policy: "merge".into(),
            accepting,
            admin_conns: Default::default(),
            warm: None,
        }
    }

    #[test]
    fn ready_only_when_every_worker_serves_and_not_stopping() {
        let h = Heartbeats::default();
        let t = Instant::now();
        assert!(h.check(&figs(&[true, true], &[0, 0], true), t).is_ok());
        let e = h
            .check(&figs(&[true, false], &[0, 0], true), t)
            .unwrap_err();
        assert_eq!(e, vec!["worker 1 not serving"]);
        let e = h
            .check(&figs(&[true, true], &[0, 0], false), t)
            .unwrap_err();
        assert_eq!(e, vec!["stopping"]);
    }

    #[test]
    fn a_loop_that_stops_turning_is_a_stall() {
        let h = Heartbeats::default();
        let t = Instant::now();
        assert!(h.check(&figs(&[true, true], &[5, 7], true), t).is_ok());
        let later = t + STALL + Duration::from_secs(1);
        // Worker 0 turned meanwhile, worker 1 did not.
        let e = h
            .check(&figs(&[true, true], &[50, 7], true), later)
            .unwrap_err();
        assert_eq!(e, vec!["worker 1 loop stalled for 6 s"]);
        // Turning again makes it ready again.
        assert!(h.check(&figs(&[true, true], &[50, 8], true), later).is_ok());
        // Not counted (0) is not a stall.
        let h = Heartbeats::default();
        assert!(h.check(&figs(&[true], &[0], true), t).is_ok());
        assert!(h.check(&figs(&[true], &[0], true), later).is_ok());
    }
}
