//! Foreign readers racing the owner's pulls and compactions: never a miss
//! of a linked key, never a wrong value.
use super::*;
use crate::store::grace::Readers;
use crate::store::ops::{SetArgs, SetMode};
use crate::store::{test_store, Store};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Release};

fn set(st: &mut Store, key: &[u8], value: &[u8]) {
    let r = st.set(&SetArgs::new(SetMode::Set, key, value, 0, 0));
    assert!(
        matches!(r, crate::store::ops::SetOutcome::Stored { .. }),
        "{r:?}"
    );
}

/// Keys of `prefix` whose home lies in the first `groups` groups.
fn keys_in(st: &Store, prefix: &str, groups: u32, n: usize, from: &mut u64) -> Vec<String> {
    let mut out = vec![];
    while out.len() < n {
        let k = format!("{prefix}:{from}");
        *from += 1;
        if st.index.home(st.hash(k.as_bytes())) < groups * index::GROUP {
            out.push(k);
        }
    }
    out
}

#[test]
fn readers_racing_pulls_and_compaction_never_miss() {
    let mut st = test_store(64 << 20, 1_700_000_000);
    let r = Arc::new(Readers::new(2));
    st.share_with(r.clone(), 0);
    const GROUPS: u32 = 16;
    let mut from = 0u64;
    let stable = keys_in(&st, "stable", GROUPS, 8_000, &mut from);
    for k in &stable {
        set(&mut st, k.as_bytes(), k.as_bytes());
    }
    let len0 = st.index.primary_buckets();
    let view = st.view();
    let hashes: Vec<u64> = stable.iter().map(|k| st.hash(k.as_bytes())).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (r, stop, stable) = (r.clone(), stop.clone(), stable.clone());
        std::thread::spawn(move || {
            let (mut hits, mut busy, mut over, mut i) = (0u64, 0u64, 0u64, 0usize);
            while !stop.load(Acquire) {
                let key = &stable[i];
                let section = r.enter(1);
                let res = view.read(&section, hashes[i], key.as_bytes(), 1 << 15, |_, v, _| {
                    assert_eq!(v, key.as_bytes(), "{key}");
                    true
                });
                drop(section);
                match res {
                    Read::Hit(_) => hits += 1,
                    Read::Fallback(Fallback::Busy) => busy += 1,
                    Read::Fallback(Fallback::Overflow) => over += 1,
                    other => panic!("{key}: {other:?}"),
                }
                i = (i + 1) % stable.len();
            }
            (hits, busy, over)
        })
    };
    let (mut compactions, mut most, mut pulled_home) = (0, 0, 0usize);
    let mut prev: Vec<String> = vec![];
    for round in 0..200u32 {
        let churn = keys_in(&st, &format!("churn{round}"), GROUPS, 4_000, &mut from);
        for k in &churn {
            let before = st.index.bytes();
            set(&mut st, k.as_bytes(), b"x");
            if st.index.bytes() < before {
                compactions += 1;
            }
        }
        most = most.max(st.index.overflow_buckets());
        for k in &prev {
            st.delete(k.as_bytes(), 0);
        }
        prev = churn;
        pulled_home = stable
            .iter()
            .filter(|k| {
                let h = st.hash(k.as_bytes());
                let r = st.index.find(h, |_| true);
                r.is_some_and(|r| r.bucket < st.index.primary_buckets() as u32)
            })
            .count();
    }
    stop.store(true, Release);
    let (hits, busy, over) = reader.join().unwrap();
    assert_eq!(st.stats.evictions, 0);
    assert_eq!(st.index.primary_buckets(), len0, "no growth wanted");
    for k in &stable {
        assert!(st.get(k.as_bytes()).is_some(), "{k} lost");
    }
    eprintln!(
        "compactions {compactions}, most {most}, stable at home {pulled_home}, hits {hits} busy {busy} overflow {over}"
    );
    assert!(compactions > 10, "{compactions} compactions");
}
