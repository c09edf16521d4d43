//! `cache_memlimit` moving under a load of large values and appends (a
//! breaker's stress, reproduced in the store): a short merge reserve, put
//! to use for a record larger than its end, took it past the end, and
//! `Segments::room` then wrapped to 4 GiB, so the records after it ran
//! over the segments beyond. Values read back changed between reads,
//! tails were zeroed where those segments' pages were given back, and a
//! TTL chain could loop.

use super::short_tests::store;
use super::test_rng::TestRng;
use super::{Eviction, SetArgs, SetMode, SetOutcome, Store, StoreConfig};
use std::collections::HashMap;

/// `n` bytes that only key `key` at version `ver` has, none of them zero.
fn value(key: u32, ver: u32, n: usize) -> Vec<u8> {
    let mut x = (key as u64) << 32 | ver as u64 | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8 | 1
        })
        .collect()
}

/// Sizes as the breaker's: half under 200 bytes, a few up to 500 KB.
fn size(rng: &mut TestRng) -> usize {
    let r = rng.next() as usize;
    match rng.next() % 100 {
        0..50 => 1 + r % 200,
        50..80 => 200 + r % 4_800,
        80..95 => 5_000 + r % 95_000,
        _ => 100_000 + r % 400_000,
    }
}

/// The first key whose stored value is not the model's, if any.
fn first_wrong(s: &mut Store, model: &HashMap<u32, Vec<u8>>) -> Option<u32> {
    model.iter().find_map(|(k, want)| {
        let f = s.find_read(format!("key:{k}").as_bytes())?;
        (f.item.value() != &want[..]).then_some(*k)
    })
}

/// Every value read is the one last stored under its key, and no segment
/// is written past its end, while the limit moves between 8 and 64 MiB
/// every 2,000 operations. Failed before the fix at operation 90,072.
#[test]
fn large_values_stay_exact_while_cache_memlimit_moves() {
    let mut s = store(StoreConfig {
        memory: 64 << 20,
        huge_pages: false,
        eviction: Eviction::Merge,
        ..StoreConfig::default()
    });
    let mut rng = TestRng(7);
    let mut model: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut ver = 0u32;
    for op in 0..150_000u32 {
        if op % 2000 == 0 {
            let mib = [8usize, 16, 64, 32, 10][(rng.next() % 5) as usize];
            assert!(s.set_memory_limit(mib << 20));
            assert_eq!(
                first_wrong(&mut s, &model),
                None,
                "op {op}, limit {mib} MiB"
            );
        }
        for id in 0..s.segs.count() as u32 {
            let h = s.segs.header(id);
            assert!(
                h.seq == 0 || h.write_off <= h.end,
                "op {op}: segment {id} past its end"
            );
        }
        let k = (rng.next() % 900) as u32;
        let key = format!("key:{k}");
        match rng.next() % 100 {
            0..35 => {
                ver += 1;
                let v = value(k, ver, size(&mut rng));
                if let SetOutcome::Stored { .. } =
                    s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), &v, 0, 0))
                {
                    model.insert(k, v);
                } else {
                    model.remove(&k);
                }
            }
            35..45 => {
                s.delete(key.as_bytes(), 0);
                model.remove(&k);
            }
            45..55 => {
                ver += 1;
                let tail = value(k, ver, 1 + rng.next() as usize % 3000);
                match s.set(&SetArgs::new(SetMode::Append, key.as_bytes(), &tail, 0, 0)) {
                    SetOutcome::Stored { .. } => {
                        let v = model.get_mut(&k).expect("appended to a key never stored");
                        v.extend_from_slice(&tail);
                    }
                    SetOutcome::NotStored => {
                        model.remove(&k);
                    }
                    _ => {}
                }
            }
            _ => match (s.get(key.as_bytes()), model.get(&k)) {
                (Some(f), Some(want)) => assert!(f.item.value() == &want[..], "op {op}: key {k}"),
                (Some(_), None) => panic!("op {op}: key {k} found, never stored or deleted"),
                (None, _) => {
                    model.remove(&k);
                }
            },
        }
    }
    assert_eq!(first_wrong(&mut s, &model), None);
}
