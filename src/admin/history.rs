//! The dashboard's history: a ring of samples the admin thread takes every
//! [`INTERVAL`] (the last hour at 5 s), so a page opened now shows trends at
//! once. Each sample holds the rates and ratios of its interval, derived
//! from two readings of what the workers publish (`figures::gather`).

use super::family::Family;
use super::figures::Figures;
use super::histogram::Snapshot;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Duration;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept: one hour at [`INTERVAL`].
pub const SAMPLES: usize = 720;

/// One interval's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Unix time at the interval's end, seconds.
    pub time: u64,
    /// get hits / (hits + misses) in the interval; `None` without gets.
    pub hit_ratio: Option<f64>,
    /// Cumulative hits and misses at the interval's end.
    pub get_hits: u64,
    /// See `get_hits`.
    pub get_misses: u64,
    /// Requests per second (all command families).
    pub ops: f64,
    /// Items at the end.
    pub items: u64,
    /// Bytes of items at the end, and the limit (`-m`), bytes.
    pub bytes: u64,
    /// See `bytes`.
    pub limit: u64,
    /// CPU per worker in the interval, percent of one core.
    pub cpu: Vec<f64>,
    /// Network bytes per second in and out.
    pub net_in: f64,
    /// See `net_in`.
    pub net_out: f64,
    /// Connections open at the end.
    pub conns: u64,
    /// Evictions and expired items reclaimed in the interval.
    pub evictions: u64,
    /// See `evictions`.
    pub expired: u64,
    /// Average and 99th percentile latency of reads (get family) and
    /// writes (set family) in the interval, microseconds.
    pub read_avg_us: Option<f64>,
    /// See `read_avg_us`.
    pub read_p99_us: Option<f64>,
    /// See `read_avg_us`.
    pub write_avg_us: Option<f64>,
    /// See `read_avg_us`.
    pub write_p99_us: Option<f64>,
}

/// The ring, and the reading the next sample is taken against.
#[derive(Default)]
pub struct History {
    ring: VecDeque<Sample>,
    last: Option<(Figures, std::time::Instant)>,
}

/// Upper bound of the bucket holding quantile `q` of what was recorded
/// between two snapshots; microseconds.
fn quantile_us(now: &Snapshot, before: Option<&Snapshot>, f: Family, q: f64) -> Option<f64> {
    let a = now.cumulative(f);
    let b = before.map(|s| s.cumulative(f));
    let total = now.count(f) - before.map_or(0, |s| s.count(f));
    if total == 0 {
        return None;
    }
    let want = (total as f64 * q).ceil() as u64;
    for (i, &(le, c)) in a.iter().enumerate() {
        let c = c - b.as_ref().map_or(0, |b| b[i].1);
        if c >= want {
            return Some(le * 1e6);
        }
    }
    Some(1e6) // in the +Inf bucket: over a second
}

fn avg_us(now: &Snapshot, before: Option<&Snapshot>, f: Family) -> Option<f64> {
    let n = now.count(f) - before.map_or(0, |s| s.count(f));
    let s = now.sum_seconds(f) - before.map_or(0.0, |b| b.sum_seconds(f));
    (n > 0).then(|| s * 1e6 / n as f64)
}

impl History {
    /// Takes a reading; from the second one on, adds a sample.
    pub fn record(&mut self, f: Figures, at: std::time::Instant) {
        if let Some((p, t0)) = &self.last {
            let secs = at.duration_since(*t0).as_secs_f64().max(1e-3);
            let (c, o) = (&f.totals, &p.totals);
            let hits = c.get_hits.saturating_sub(o.get_hits);
            let misses = c.get_misses.saturating_sub(o.get_misses);
            let cpu = f
                .workers
                .iter()
                .map(|w| match (w.cpu, p.workers.get(w.id).and_then(|x| x.cpu)) {
                    (Some(a), Some(b)) => {
                        ((a.user + a.system - b.user - b.system) / secs * 100.0).max(0.0)
                    }
                    _ => 0.0,
                })
                .collect();
            let (lat, plat) = (f.latency.as_ref(), p.latency.as_ref());
            let ops: u64 = lat.map_or(0, |l| {
                [
                    Family::Get,
                    Family::Set,
                    Family::Delete,
                    Family::Arith,
                    Family::Touch,
                    Family::Other,
                ]
                .iter()
                .map(|&fam| l.count(fam) - plat.map_or(0, |x| x.count(fam)))
                .sum()
            });
            let s = Sample {
                time: f.time,
                hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
                get_hits: c.get_hits,
                get_misses: c.get_misses,
                ops: ops as f64 / secs,
                items: c.curr_items,
                bytes: c.bytes,
                limit: c.limit_maxbytes,
                cpu,
                net_in: c.bytes_read.saturating_sub(o.bytes_read) as f64 / secs,
                net_out: c.bytes_written.saturating_sub(o.bytes_written) as f64 / secs,
                conns: c.curr_connections,
                evictions: c.evictions.saturating_sub(o.evictions),
                expired: c.reclaimed.saturating_sub(o.reclaimed),
                read_avg_us: lat.and_then(|l| avg_us(l, plat, Family::Get)),
                read_p99_us: lat.and_then(|l| quantile_us(l, plat, Family::Get, 0.99)),
                write_avg_us: lat.and_then(|l| avg_us(l, plat, Family::Set)),
                write_p99_us: lat.and_then(|l| quantile_us(l, plat, Family::Set, 0.99)),
            };
            if self.ring.len() == SAMPLES {
                self.ring.pop_front();
            }
            self.ring.push_back(s);
        }
        self.last = Some((f, at));
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.ring.iter()
    }

    /// The samples as JSON: one array per figure (what charts take).
    pub fn to_json(&self) -> Value {
        let col = |g: &dyn Fn(&Sample) -> Value| -> Value {
            Value::Array(self.ring.iter().map(g).collect())
        };
        let workers = self.ring.back().map_or(0, |s| s.cpu.len());
        json!({
            "interval_secs": INTERVAL.as_secs(),
            "time": col(&|s| json!(s.time)),
            "hit_ratio": col(&|s| json!(s.hit_ratio)),
            "ops": col(&|s| json!(s.ops)),
            "items": col(&|s| json!(s.items)),
            "bytes": col(&|s| json!(s.bytes)),
            "limit": col(&|s| json!(s.limit)),
            "cpu": (0..workers)
                .map(|w| col(&|s| json!(s.cpu.get(w).copied().unwrap_or(0.0))))
                .collect::<Vec<_>>(),
            "net_in": col(&|s| json!(s.net_in)),
            "net_out": col(&|s| json!(s.net_out)),
            "conns": col(&|s| json!(s.conns)),
            "evictions": col(&|s| json!(s.evictions)),
            "expired": col(&|s| json!(s.expired)),
            "read_avg_us": col(&|s| json!(s.read_avg_us)),
            "read_p99_us": col(&|s| json!(s.read_p99_us)),
            "write_avg_us": col(&|s| json!(s.write_avg_us)),
            "write_p99_us": col(&|s| json!(s.write_p99_us)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::cpu::CpuTime;
    use crate::admin::figures::WorkerFigures;
    use crate::engine::counters::Counters;
    use std::time::Instant;

    fn fig(hits: u64, misses: u64, read: u64, cpu: f64) -> Figures {
        Figures {
            totals: Counters {
                get_hits: hits,
                get_misses: misses,
                bytes_read: read,
                curr_items: 9,
                ..Default::default()
            },
            workers: vec![WorkerFigures {
                id: 0,
                counters: Counters::default(),
                cpu: Some(CpuTime {
                    user: cpu,
                    system: 0.0,
                }),
                serving: true,
            }],
            latency: None,
            uptime: 0,
            time: 1000,
            rusage: CpuTime {
                user: 0.0,
                system: 0.0,
            },
            max_connections: 10,
            version: "x",
            policy: "merge".into(),
            accepting: true,
            admin_conns: Default::default(),
            warm: None,
        }
    }

    #[test]
    fn samples_are_interval_rates_and_the_ring_is_bounded() {
        let mut h = History::default();
        let t = Instant::now();
        h.record(fig(0, 0, 0, 0.0), t);
        assert_eq!(h.samples().count(), 0);
        h.record(fig(30, 10, 5000, 2.5), t + Duration::from_secs(5));
        let s = h.samples().next().unwrap();
        assert_eq!(s.hit_ratio, Some(0.75));
        assert_eq!(s.net_in, 1000.0);
        assert_eq!(s.cpu, vec![50.0]);
        assert_eq!(s.items, 9);
        for i in 0..SAMPLES + 10 {
            h.record(
                fig(30, 10, 5000, 2.5),
                t + Duration::from_secs(10 + i as u64),
            );
        }
        assert_eq!(h.samples().count(), SAMPLES);
        assert_eq!(h.samples().last().unwrap().hit_ratio, None);
        assert_eq!(h.to_json()["time"].as_array().unwrap().len(), SAMPLES);
    }
}
