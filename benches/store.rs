//! Store micro-benchmarks: get hit, get miss, set, a batch of 16 gets with
//! and without prefetching, and a 90/10 get/set mix with 15-byte keys and
//! 100-byte values; sets of new keys into a full store, a quarter of
//! them read a little later (every set evicts, read items are moved).
//! Run: cargo bench --bench store

use corecache::store::*;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const KEYS: u32 = 100_000;
/// A working set that stays in cache: the store's own cost per operation.
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

fn filled(keys: u32, memory: usize) -> Store {
    let cfg = StoreConfig {
        memory,
        ..StoreConfig::default()
    };
    let mut s = Store::new(cfg, Clock::manual(1_700_000_000)).unwrap();
    for i in 0..keys {
        s.set(&SetArgs::new(SetMode::Set, &key(i), &[b'v'; 100], 0, 0));
    }
    s
}

fn bench(c: &mut Criterion) {
    let mut hot = filled(HOT_KEYS, 4 << 20);
    let mut i = 0u32;
    c.bench_function("get_hit_hot_1k", |b| {
        b.iter(|| {
            i = (i + 7919) % HOT_KEYS;
            black_box(hot.get(&key(i)).map(|f| f.item.vlen()))
        })
    });
    let mut s = filled(KEYS, 64 << 20);
    c.bench_function("get_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(s.get(&key(i)).map(|f| f.item.vlen()))
        })
    });
    c.bench_function("get_miss", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(s.get(&key(i + KEYS)).is_some())
        })
    });
    c.bench_function("set", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(s.set(&SetArgs::new(SetMode::Set, &key(i), &[b'w'; 100], 0, 0)))
        })
    });
    // A pipelined read's worth of gets, looked up one by one, then with
    // the two prefetch stages the engine runs first (store::prefetch).
    let batch = |i: &mut u32| -> [[u8; 15]; 16] {
        std::array::from_fn(|_| {
            *i = (*i + 7919) % KEYS;
            key(*i)
        })
    };
    c.bench_function("get_hit_batch16", |b| {
        b.iter(|| {
            for k in &batch(&mut i) {
                black_box(s.get(k).map(|f| f.item.vlen()));
            }
        })
    });
    c.bench_function("get_hit_batch16_prefetched", |b| {
        b.iter(|| {
            let keys = batch(&mut i);
            let hashes: [u64; 16] = std::array::from_fn(|j| s.prefetch_bucket(&keys[j]));
            hashes.iter().for_each(|&h| s.prefetch_items(h));
            for k in &keys {
                black_box(s.get(k).map(|f| f.item.vlen()));
            }
        })
    });
    let mut n = 0u32;
    c.bench_function("mixed_90_get_10_set", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            n += 1;
            if n.is_multiple_of(10) {
                black_box(s.set(&SetArgs::new(SetMode::Set, &key(i), &[b'x'; 100], 0, 0)));
            } else {
                black_box(s.get(&key(i)).map(|f| f.item.vlen()));
            }
        })
    });
    // Sets into a full 16 MiB store from a key space 20 times what fits,
    // values of 50-800 B, and for every fourth a get of the key set 5000
    // sets before: each write evicts in turn (merge eviction), read items
    // are kept (moved), small ones leave ghosts.
    let mut full = filled(0, 16 << 20);
    let values = vec![b'e'; 800];
    let mut k = 0u32;
    const SPACE: u32 = 4_000_000;
    let back = SPACE - 7919 * 5000 % SPACE;
    c.bench_function("set_evicting", |b| {
        b.iter(|| {
            k = (k + 7919) % SPACE;
            let len = 50 + (k % 751) as usize;
            black_box(full.set(&SetArgs::new(SetMode::Set, &key(k), &values[..len], 0, 0)));
            if k.is_multiple_of(4) {
                black_box(full.get(&key((k + back) % SPACE)).is_some());
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
