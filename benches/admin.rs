//! What the latency histograms cost a worker per request: a pipelined
//! batch of 16 requests noted at parse (one clock read for the batch) and
//! recorded at send (one clock read), as the engine does it; against that,
//! a server spends about 1.7-1.9 µs of CPU per request at pipeline 16
//! (docs/PERFORMANCE.md).
//! Run: cargo bench --bench admin

use corecache::admin::histogram::{Family, Latency, Pending};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;

fn bench(c: &mut Criterion) {
    let h = Latency::default();
    let mut g = c.benchmark_group("latency_histogram");
    g.throughput(Throughput::Elements(16));
    g.bench_function("pipeline16_parse_and_send", |b| {
        let mut p = Pending::default();
        b.iter(|| {
            let now = Instant::now();
            for i in 0..16u32 {
                let f = if i % 10 == 0 {
                    Family::Set
                } else {
                    Family::Get
                };
                p.parsed(black_box(f), now);
            }
            p.sent(&h, Instant::now());
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("pipeline1_parse_and_send", |b| {
        let mut p = Pending::default();
        b.iter(|| {
            let now = Instant::now();
            p.parsed(black_box(Family::Get), now);
            p.sent(&h, Instant::now());
        })
    });
    g.bench_function("record", |b| {
        let mut ns = 0u64;
        b.iter(|| {
            ns = ns.wrapping_add(977) & 0xff_ffff;
            h.record(black_box(Family::Get), ns);
        })
    });
    g.bench_function("clock_read", |b| b.iter(Instant::now));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
