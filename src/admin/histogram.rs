//! Request latency histograms, one per worker, merged on scrape.
//!
//! A worker records into its own [`Latency`] only; the admin thread reads
//! every worker's and adds them up. Each cell is an `AtomicU64` written by
//! its one worker with a Relaxed load and store (no read-modify-write, so
//! no locked instruction and no cache line shared between writers): on
//! x86-64 and aarch64 that is a plain load and store. A scrape may see one
//! request's bucket count before its sum; the exposition therefore derives
//! `_count` from the buckets, so `_count` always equals the `+Inf` bucket.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

pub use super::family::{Family, FAMILIES};

/// Finite bucket bounds: 2^k microseconds for k = 0..=20, so 1 µs up to
/// 1.048576 s. Powers of two make the bucket a leading-zero count.
pub const FINITE_BUCKETS: usize = 21;

/// Finite buckets plus the `+Inf` one.
pub const BUCKETS: usize = FINITE_BUCKETS + 1;

/// The upper bound of finite bucket `i`, in seconds.
pub fn upper_bound_seconds(i: usize) -> f64 {
    (1u64 << i) as f64 * 1e-6
}

/// The bucket a duration of `nanos` nanoseconds falls in: the first whose
/// bound is at or above it (Prometheus' `le`), else `+Inf`.
#[inline]
pub fn bucket_of(nanos: u64) -> usize {
    // Rounded up, so 1.5 µs counts above the 1 µs bound, not in it.
    let micros = nanos.div_ceil(1000);
    if micros <= 1 {
        return 0;
    }
    let i = (u64::BITS - (micros - 1).leading_zeros()) as usize;
    i.min(FINITE_BUCKETS)
}

/// One worker's histograms: a bucket count array and a sum per family.
/// Aligned to keep two workers' histograms off one cache line pair.
#[repr(align(128))]
#[derive(Debug)]
pub struct Latency {
    counts: [[AtomicU64; BUCKETS]; FAMILIES],
    /// Sum of recorded durations per family, in nanoseconds.
    sums_ns: [AtomicU64; FAMILIES],
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            counts: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            sums_ns: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Latency {
    /// Records one request of `family` that took `nanos` nanoseconds.
    /// Only the owning worker may call this (single writer).
    #[inline]
    pub fn record(&self, family: Family, nanos: u64) {
        self.record_n(family, nanos, 1);
    }

    /// Records `n` requests of `family` that each took `nanos` nanoseconds:
    /// a batch of pipelined requests parsed together and answered by one
    /// send costs one call. Only the owning worker may call this.
    #[inline]
    pub fn record_n(&self, family: Family, nanos: u64, n: u64) {
        let f = family as usize;
        let cell = &self.counts[f][bucket_of(nanos)];
        // Single writer: load + store is exact and needs no locked add.
        cell.store(cell.load(Relaxed).wrapping_add(n), Relaxed);
        let sum = &self.sums_ns[f];
        sum.store(
            sum.load(Relaxed).wrapping_add(nanos.saturating_mul(n)),
            Relaxed,
        );
    }

    /// A copy of the current figures.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counts: std::array::from_fn(|f| {
                std::array::from_fn(|b| self.counts[f][b].load(Relaxed))
            }),
            sums_ns: std::array::from_fn(|f| self.sums_ns[f].load(Relaxed)),
        }
    }
}

/// One connection's requests parsed but not yet answered: a count per
/// family and the parse time of the earliest. A worker keeps one per
/// connection, notes each request as it dispatches it, and records them
/// all when it hands the connection's replies to the kernel. Every request
/// is recorded with the time since the earliest parse among them, so a
/// recorded duration is never below the true one (at pipeline depth the
/// batch shares one parse time anyway) and the clock is read once per
/// batch and once per send, not per request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pending {
    since: Option<Instant>,
    n: [u32; FAMILIES],
}

impl Pending {
    /// A request of `family` was parsed at `now`: pass one `Instant` for a
    /// whole received batch.
    #[inline]
    pub fn parsed(&mut self, family: Family, now: Instant) {
        if self.since.is_none() {
            self.since = Some(now);
        }
        let n = &mut self.n[family as usize];
        *n = n.saturating_add(1);
    }

    /// Whether any request waits to be recorded.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.since.is_none()
    }

    /// The replies to every request noted so far were handed to the
    /// kernel at `now`: records them into `h` and starts over.
    #[inline]
    pub fn sent(&mut self, h: &Latency, now: Instant) {
        let Some(t) = self.since.take() else { return };
        let ns = now.saturating_duration_since(t).as_nanos() as u64;
        for (f, n) in self.n.iter_mut().enumerate() {
            if *n > 0 {
                h.record_n(Family::ALL[f], ns, u64::from(*n));
                *n = 0;
            }
        }
    }
}

/// Figures read from one or more workers' histograms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Per family, per bucket (not cumulative) request counts.
    pub counts: [[u64; BUCKETS]; FAMILIES],
    /// Per family, the sum of durations in nanoseconds.
    pub sums_ns: [u64; FAMILIES],
}

impl Snapshot {
    /// Adds another worker's figures.
    pub fn add(&mut self, o: &Snapshot) {
        for f in 0..FAMILIES {
            for b in 0..BUCKETS {
                self.counts[f][b] += o.counts[f][b];
            }
            self.sums_ns[f] += o.sums_ns[f];
        }
    }

    /// Requests recorded for a family.
    pub fn count(&self, f: Family) -> u64 {
        self.counts[f as usize].iter().sum()
    }

    /// Cumulative `(le seconds, count)` pairs of the finite buckets, the
    /// form the exposition wants (`+Inf` is the total count).
    pub fn cumulative(&self, f: Family) -> Vec<(f64, u64)> {
        let mut acc = 0;
        (0..FINITE_BUCKETS)
            .map(|b| {
                acc += self.counts[f as usize][b];
                (upper_bound_seconds(b), acc)
            })
            .collect()
    }

    /// Per-bucket (not cumulative) `(le seconds, count)` pairs, `+Inf`
    /// last as `f64::INFINITY`: what prometheus-client's encoder takes.
    pub fn buckets(&self, f: Family) -> Vec<(f64, u64)> {
        (0..BUCKETS)
            .map(|b| {
                let le = if b < FINITE_BUCKETS {
                    upper_bound_seconds(b)
                } else {
                    f64::INFINITY
                };
                (le, self.counts[f as usize][b])
            })
            .collect()
    }

    /// Sum of durations of a family, in seconds.
    pub fn sum_seconds(&self, f: Family) -> f64 {
        self.sums_ns[f as usize] as f64 * 1e-9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_le_bounds() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(1000), 0);
        assert_eq!(bucket_of(1001), 1);
        assert_eq!(bucket_of(2000), 1);
        assert_eq!(bucket_of(2001), 2);
        assert_eq!(bucket_of(4000), 2);
        assert_eq!(bucket_of(4001), 3);
        assert_eq!(bucket_of(1_048_576_000), 20);
        assert_eq!(bucket_of(1_048_576_001), FINITE_BUCKETS);
        assert_eq!(bucket_of(u64::MAX), FINITE_BUCKETS);
        // Every duration lands in the first bucket whose bound holds it.
        for ns in [
            1u64,
            999,
            1500,
            3000,
            70_000,
            999_999,
            5_000_000,
            900_000_000,
        ] {
            let b = bucket_of(ns);
            assert!(ns as f64 * 1e-9 <= upper_bound_seconds(b) + 1e-12, "{ns}");
            if b > 0 {
                assert!(ns as f64 * 1e-9 > upper_bound_seconds(b - 1), "{ns}");
            }
        }
    }

    #[test]
    fn bounds_span_a_microsecond_to_a_second() {
        assert_eq!(upper_bound_seconds(0), 1e-6);
        let top = upper_bound_seconds(FINITE_BUCKETS - 1);
        assert!((1.0..1.1).contains(&top), "{top}");
    }

    #[test]
    fn records_merge_across_workers() {
        let a = Latency::default();
        let b = Latency::default();
        a.record(Family::Get, 1500);
        a.record_n(Family::Get, 3000, 4);
        b.record(Family::Set, 2_000_000_000);
        let mut s = a.snapshot();
        s.add(&b.snapshot());
        assert_eq!(s.count(Family::Get), 5);
        assert_eq!(s.count(Family::Set), 1);
        assert_eq!(s.count(Family::Delete), 0);
        assert_eq!(s.sums_ns[Family::Get as usize], 1500 + 4 * 3000);
        let c = s.cumulative(Family::Get);
        assert_eq!(c[0].1, 0);
        assert_eq!(c[1].1, 1);
        assert_eq!(c[2].1, 5);
        assert_eq!(c[FINITE_BUCKETS - 1].1, 5);
        // Beyond the top bound only +Inf holds it.
        assert_eq!(s.cumulative(Family::Set)[FINITE_BUCKETS - 1].1, 0);
        assert!((s.sum_seconds(Family::Set) - 2.0).abs() < 1e-9);
        let b = s.buckets(Family::Set);
        assert_eq!(b.len(), BUCKETS);
        assert_eq!(b[FINITE_BUCKETS], (f64::INFINITY, 1));
        assert_eq!(s.buckets(Family::Get)[2], (4e-6, 4));
    }

    #[test]
    fn pending_records_a_batch_at_send() {
        let h = Latency::default();
        let mut p = Pending::default();
        let t0 = Instant::now();
        p.sent(&h, t0); // nothing noted: nothing recorded
        assert_eq!(h.snapshot(), Snapshot::default());
        p.parsed(Family::Get, t0);
        p.parsed(Family::Get, t0 + std::time::Duration::from_micros(1));
        p.parsed(Family::Set, t0);
        assert!(!p.is_empty());
        p.sent(&h, t0 + std::time::Duration::from_micros(3));
        assert!(p.is_empty());
        let s = h.snapshot();
        assert_eq!(s.count(Family::Get), 2);
        assert_eq!(s.count(Family::Set), 1);
        // Both gets at the earliest parse's 3 µs: the le 4 µs bucket.
        assert_eq!(s.counts[Family::Get as usize][2], 2);
        assert_eq!(s.sums_ns[Family::Get as usize], 6000);
        // A later batch starts from its own parse time.
        p.parsed(Family::Delete, t0 + std::time::Duration::from_secs(1));
        p.sent(&h, t0 + std::time::Duration::from_secs(1));
        assert_eq!(h.snapshot().counts[Family::Delete as usize][0], 1);
    }

    #[test]
    fn one_latency_per_cache_line_pair() {
        assert_eq!(std::mem::align_of::<Latency>(), 128);
        assert_eq!(std::mem::size_of::<Latency>() % 128, 0);
    }
}
