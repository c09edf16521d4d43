//! The read path's cost of pending `flush_prefix` rows: a get hit on a hot
//! 1,000-key working set with no row, with rows whose prefixes do not
//! match the keys, and with rows that match them but predate the items
//! (so each read also compares the CAS). Run: cargo bench --bench prefix

use corecache::store::*;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const HOT_KEYS: u32 = 1_000;

fn key(i: u32) -> [u8; 15] {
    let mut k = *b"key:00000000000";
    let mut n = i;
    for b in k[4..].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

/// A store with `rows` pending invalidations made before its items were
/// stored: with `matching`, one row of "key:" (a prefix of every key, so
/// each read also compares the CAS), otherwise rows of "other:N:".
fn store(rows: usize, matching: bool) -> Store {
    let cfg = StoreConfig {
        memory: 4 << 20,
        ..StoreConfig::default()
    };
    let mut s = Store::new(cfg, Clock::manual(1_700_000_000)).unwrap();
    if matching {
        s.flush_prefix(b"key:");
    }
    for r in 0..rows {
        s.flush_prefix(format!("other:{r}:").as_bytes());
    }
    for i in 0..HOT_KEYS {
        s.set(&SetArgs::new(SetMode::Set, &key(i), &[b'v'; 100], 0, 0));
    }
    s
}

fn bench(c: &mut Criterion) {
    let mut i = 0u32;
    for (name, rows, matching) in [
        ("get_hit_no_prefix_rows", 0, false),
        ("get_hit_1_row_other_prefix", 1, false),
        ("get_hit_64_rows_other_prefixes", 64, false),
        ("get_hit_1_row_matching_older", 0, true),
        ("get_hit_64_rows_one_matching", 63, true),
    ] {
        let mut s = store(rows, matching);
        assert_eq!(s.prefixes_pending(), rows + matching as usize);
        c.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 7919) % HOT_KEYS;
                black_box(s.get(&key(i)).map(|f| f.item.vlen()))
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
