//! What one key browser step costs the worker that runs it: a scan step of
//! `STEP_RECORDS` (16) records over a 100,000-key shard, matching
//! everything or a prefix nothing has. Run: cargo bench --bench scan

use corecache::admin::api::STEP_RECORDS;
use corecache::store::scan::{ScanFilter, SCAN_DONE};
use corecache::store::*;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let cfg = StoreConfig {
        memory: 64 << 20,
        ..StoreConfig::default()
    };
    let mut s = Store::new(cfg, Clock::manual(1_700_000_000)).unwrap();
    for i in 0..100_000u32 {
        let k = format!("key:{i:011}");
        s.set(&SetArgs::new(
            SetMode::Set,
            k.as_bytes(),
            &[b'v'; 100],
            0,
            0,
        ));
    }
    for (name, filter) in [
        ("scan_step_all", ScanFilter::default()),
        (
            "scan_step_no_match",
            ScanFilter {
                prefix: b"nothing:".to_vec(),
                ..Default::default()
            },
        ),
    ] {
        let mut cur = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                let st = s.scan(cur, &filter, STEP_RECORDS, usize::MAX);
                cur = if st.next == SCAN_DONE { 0 } else { st.next };
                black_box(st.items.len())
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
