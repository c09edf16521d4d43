//! How long expiry holds a worker (issue 23): a store of 1 GiB holding
//! 2.2 M items without TTL and `N` (default 140 k) 100-byte items that
//! expire together, timed freeing them with one whole pass
//! (`Store::expire(16)`, what the worker did once a second) and in
//! `EXPIRY_STEP` steps (what it does now, a step a loop turn).
//!
//! ```text
//! cargo run --release --example expiry_stall [N]
//! ```

use corecache::store::*;
use std::time::{Duration, Instant};

fn key(i: u32) -> String {
    format!("key:{i:011}")
}

fn filled(n: u32) -> Store {
    let cfg = StoreConfig {
        memory: 1 << 30,
        ..StoreConfig::default()
    };
    let mut s = Store::new(cfg, Clock::manual(1_700_000_000)).unwrap();
    let v = [b'v'; 100];
    // Items that stay, so the index is large and mostly cold.
    for i in 0..2_000_000u32 {
        s.set(&SetArgs::new(
            SetMode::Set,
            key(i + 10_000_000).as_bytes(),
            &v,
            0,
            0,
        ));
    }
    for i in 0..n {
        s.set(&SetArgs::new(SetMode::Set, key(i).as_bytes(), &v, 0, 2));
    }
    for i in 0..200_000u32 {
        s.set(&SetArgs::new(
            SetMode::Set,
            key(i + 20_000_000).as_bytes(),
            &v,
            0,
            0,
        ));
    }
    s.clock_mut().advance(5);
    s.tick();
    s
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: items that expire"))
        .unwrap_or(140_000);
    let mut s = filled(n);
    let t = Instant::now();
    let freed = s.expire(16);
    println!(
        "whole pass: freed {freed} segments, the worker held {:?}",
        t.elapsed()
    );
    let mut s = filled(n);
    s.expiry_begin(16);
    let (mut steps, mut longest, mut total) = (0u32, Duration::ZERO, Duration::ZERO);
    let mut durations = Vec::new();
    while s.expiry_pending() {
        let t = Instant::now();
        s.expiry_step(EXPIRY_STEP);
        let d = t.elapsed();
        longest = longest.max(d);
        durations.push(d);
        total += d;
        steps += 1;
    }
    println!(
        "in steps of {EXPIRY_STEP} records: freed {} segments in {steps} steps, {total:?} in all, longest step {longest:?}",
        s.stats.expired_segments
    );
    durations.sort();
    let at = |q: f64| durations[((durations.len() - 1) as f64 * q) as usize];
    println!(
        "step durations: median {:?}, p99 {:?}, p99.9 {:?} (one host interrupt can make the longest)",
        at(0.5),
        at(0.99),
        at(0.999)
    );
}
