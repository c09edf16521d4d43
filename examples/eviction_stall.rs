//! How long a write that must evict holds a worker (issue 23): a full
//! store (`-m`, default 64 MiB, 1 MiB segments) under sets of 100-byte
//! values over a key space four times what fits, some keys read, timed
//! one set at a time, per eviction policy. `merge+ahead` models the
//! worker: after every 16 requests (a loop turn's batch) it gives merge
//! steps ahead of need 10 µs, as `engine/worker.rs` does, and those slices
//! are timed too (a request may wait behind one).
//!
//! With `ZIPF=1` the load is the hit-ratio bench's instead
//! (`scripts/bench-memory.py hit`): zipf 0.99 keys over 8,000 a MiB,
//! values of 50-1000 B, 1:4 set:get. Replaced keys leave dead bytes, so
//! merge eviction compacts there, which the uniform load never makes it do.
//!
//! ```text
//! cargo run --release --example eviction_stall [MiB]
//! ZIPF=1 cargo run --release --example eviction_stall [MiB]
//! ```

use corecache::store::*;
use std::time::{Duration, Instant};

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("MiB"))
        .unwrap_or(64);
    for (policy, ahead) in [
        (Eviction::Merge, false),
        (Eviction::Merge, true),
        (Eviction::Fifo, false),
    ] {
        let cfg = StoreConfig {
            memory: mib << 20,
            eviction: policy,
            ..StoreConfig::default()
        };
        let mut s = Store::new(cfg, Clock::manual(1_700_000_000)).unwrap();
        let zipf = std::env::var("ZIPF").is_ok();
        let fits = (mib << 20) / if zipf { 640 } else { 140 };
        let keys = if zipf { mib * 8000 } else { 4 * fits } as u64;
        // The zipf load's cumulative weights (rank k weighs 1 / k^0.99).
        let cdf: Vec<f64> = if zipf {
            (1..=keys)
                .scan(0.0, |t, k| {
                    *t += 1.0 / (k as f64).powf(0.99);
                    Some(*t)
                })
                .collect()
        } else {
            Vec::new()
        };
        let v = [b'v'; 1000];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut durations = Vec::new();
        let mut slices = Vec::new();
        for i in 0..(12 * fits) {
            xorshift(&mut x);
            let (k, len) = if zipf {
                // Four gets to a set, each of its own key, as
                // bench-memory.py's stream.
                let rank = |x: &mut u64| {
                    xorshift(x);
                    let u = (*x >> 11) as f64 / (1u64 << 53) as f64 * cdf[cdf.len() - 1];
                    format!("key:{}", cdf.partition_point(|&c| c < u))
                };
                for _ in 0..4 {
                    s.get(rank(&mut x).as_bytes());
                }
                (rank(&mut x), 50 + (x >> 40) as usize % 951)
            } else {
                let k = format!("key:{:011}", x % keys);
                if x.is_multiple_of(4) {
                    s.get(k.as_bytes());
                }
                (k, 100)
            };
            let t = Instant::now();
            s.set(&SetArgs::new(SetMode::Set, k.as_bytes(), &v[..len], 0, 0));
            if i >= 4 * fits {
                durations.push(t.elapsed());
            }
            // A loop turn's batch: 16 requests.
            if ahead && i % if zipf { 3 } else { 16 } == 0 && s.evict_ahead_pending() {
                let t = Instant::now();
                s.evict_ahead_for(Duration::from_micros(10));
                if i >= 4 * fits {
                    slices.push(t.elapsed());
                }
            }
        }
        slices.sort();
        durations.sort();
        let at = |q: f64| durations[((durations.len() - 1) as f64 * q) as usize];
        let over = |d: Duration| durations.iter().filter(|&&x| x >= d).count();
        let name = format!("{policy:?}{}", if ahead { "+ahead" } else { "" });
        if !slices.is_empty() {
            println!(
                "{name}: {} slices ahead: median {:?}, p99.99 {:?}, max {:?}",
                slices.len(),
                slices[slices.len() / 2],
                slices[((slices.len() - 1) as f64 * 0.9999) as usize],
                slices[slices.len() - 1]
            );
        }
        println!(
            "{name}: {} sets on a full store: median {:?}, p99.9 {:?}, p99.99 {:?}, max {:?}; {} over 100 µs, {} over 1 ms; merges {}, evicted segments {}",
            durations.len(),
            at(0.5),
            at(0.999),
            at(0.9999),
            durations[durations.len() - 1],
            over(Duration::from_micros(100)),
            over(Duration::from_millis(1)),
            s.stats.merges,
            s.stats.evicted_segments
        );
    }
}

/// The next state of a xorshift64 generator.
fn xorshift(x: &mut u64) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
}
