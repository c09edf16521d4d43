//! `Index::tidy` under the store's own write path: index and budget exact
//! under churn, a warm restart, a burst of deletes larger than the queue.
use super::*;
use crate::store::ops::{SetArgs, SetMode};
use crate::store::test_rng::TestRng;

fn check_store(s: &Store, what: &str) {
    let (segs, hasher) = (&s.segs, &s.hasher);
    let hash_of = |v| budget::hash_at(segs, hasher, v);
    index::tidy_tests::check_with(&s.index, hash_of, |_| true, what);
    let (mut want, short) = s.segments_wanted(s.limit);
    // A short segment holding more than the budget now leaves is paid
    // for as a whole one (`rebudget`).
    if short > 0
        && s.live_short()
            .is_some_and(|id| s.segs.header(id).end as usize > short)
    {
        want -= 1;
    }
    let want = want.min(s.segs.count()).max(3);
    assert_eq!(
        s.seg_limit,
        want,
        "{what}: seg_limit stale (wanted {:?}, short {:?}, count {}, partial {})",
        s.segments_wanted(s.limit),
        s.live_short()
            .map(|id| (s.segs.header(id).end, s.segs.header(id).write_off)),
        s.segs.count(),
        s.partial
    );
    assert!(
        s.segs.usable() >= s.seg_limit.min(s.segs.count()),
        "{what}: usable {} < limit {}",
        s.segs.usable(),
        s.seg_limit
    );
}

#[test]
fn store_churn_keeps_index_and_budget_exact() {
    for (mem, keys, vlen) in [(8usize << 20, 200_000u64, 60usize), (16 << 20, 400_000, 20)] {
        let mut s = test_store(mem, 1_700_000_000);
        let mut rng = TestRng(0x1234_5678);
        let mut shrank = 0;
        for i in 0..300_000u64 {
            let k = rng.next() % keys;
            let key = format!("k{k}");
            let before = s.index.bytes();
            match rng.next() % 10 {
                0..=1 => {
                    s.delete(key.as_bytes(), 0);
                }
                2 => {
                    let _ = s.get(key.as_bytes());
                }
                _ => {
                    let v = vec![b'v'; vlen + (k % 50) as usize];
                    let r = s.set(&SetArgs::new(SetMode::Set, key.as_bytes(), &v, k as u32, 0));
                    assert!(matches!(r, SetOutcome::Stored { .. }), "{r:?}");
                }
            }
            if s.index.bytes() < before {
                shrank += 1;
            }
            if i % 50_000 == 0 || (shrank > 0 && i % 9_973 == 0) {
                check_store(&s, &format!("mem {mem} op {i}"));
            }
        }
        check_store(&s, "end");
        assert!(
            shrank > 0,
            "the index never shrank: compaction not exercised"
        );
        eprintln!(
            "mem {mem}: index shrank {shrank} times, evictions {}, items {}, overflow {}",
            s.stats.evictions,
            s.index.items,
            s.index.overflow_buckets()
        );
    }
}

/// A churned store (index compacted) saved and restored: the same items,
/// a sound index, a current budget; then churned again.
#[test]
fn warm_restart_after_tidy() {
    let mut a = test_store(8 << 20, 1_700_000_000);
    let mut rng = TestRng(0x77);
    for _ in 0..300_000u64 {
        let k = rng.next() % 150_000;
        let key = format!("k{k}");
        if rng.next().is_multiple_of(4) {
            a.delete(key.as_bytes(), 0);
        } else {
            let v = vec![b'v'; 40 + (k % 50) as usize];
            a.set(&SetArgs::new(SetMode::Set, key.as_bytes(), &v, k as u32, 0));
        }
    }
    check_store(&a, "before save");
    let mut file = vec![];
    a.save(&mut file).unwrap();
    let mut b = test_store(8 << 20, 1_700_000_000);
    let got = b
        .restore(&mut file.as_slice(), a.clock().unix_now(), |_| true)
        .unwrap();
    check_store(&b, "restored");
    let mut same = 0;
    for k in 0..150_000u64 {
        let key = format!("k{k}");
        let x = a.find(key.as_bytes()).map(|f| f.item.value().to_vec());
        let y = b.find(key.as_bytes()).map(|f| f.item.value().to_vec());
        if x.is_some() && x == y {
            same += 1;
        }
        if y.is_some() {
            assert_eq!(x, y, "{key}");
        }
    }
    eprintln!(
        "restored {got:?}, {same} same of {} (a), {} (b)",
        a.index.items, b.index.items
    );
    for _ in 0..200_000u64 {
        let k = rng.next() % 150_000;
        let key = format!("k{k}");
        if rng.next().is_multiple_of(4) {
            b.delete(key.as_bytes(), 0);
        } else {
            let v = vec![b'v'; 40 + (k % 50) as usize];
            b.set(&SetArgs::new(SetMode::Set, key.as_bytes(), &v, k as u32, 0));
        }
    }
    check_store(&b, "restored, churned");
    assert!(b.set_memory_limit(4 << 20));
    check_store(&b, "limit lowered");
    assert!(b.set_memory_limit(12 << 20));
    for _ in 0..100_000u64 {
        let k = rng.next() % 150_000;
        let v = vec![b'v'; 40 + (k % 50) as usize];
        b.set(&SetArgs::new(
            SetMode::Set,
            format!("k{k}").as_bytes(),
            &v,
            k as u32,
            0,
        ));
        if k.is_multiple_of(3) {
            b.delete(format!("k{}", rng.next() % 150_000).as_bytes(), 0);
        }
    }
    check_store(&b, "limit raised, churned");
}

/// A burst of deletes (more than PULLS_QUEUED between two inserts of new
/// keys) strands items in the chains for good.
#[test]
fn a_delete_burst_strands_no_chained_items() {
    let mut s = test_store(64 << 20, 1_700_000_000);
    let n = 300_000u64;
    for k in 0..n {
        let r = s.set(&SetArgs::new(
            SetMode::Set,
            format!("k{k}").as_bytes(),
            b"0123456789",
            0,
            0,
        ));
        assert!(matches!(r, SetOutcome::Stored { .. }));
    }
    assert_eq!(s.stats.evictions, 0);
    let (st0, ob0) = index::tidy_tests::stranded(&s.index);
    for k in 0..n {
        if k % 10 != 0 {
            s.delete(format!("k{k}").as_bytes(), 0);
        }
    }
    let (st1, ob1) = index::tidy_tests::stranded(&s.index);
    // Writes of new keys go on: each works off pulls.
    for k in n..n + 20_000 {
        s.set(&SetArgs::new(
            SetMode::Set,
            format!("k{k}").as_bytes(),
            b"0123456789",
            0,
            0,
        ));
    }
    let (st2, ob2) = index::tidy_tests::stranded(&s.index);
    check_store(&s, "after");
    eprintln!(
        "items {}: filled stranded {st0} ({ob0} ovf buckets); after deletes {st1} ({ob1}); after 20k new keys {st2} ({ob2})",
        s.index.items
    );
    assert!(
        st2 * 10 < st1,
        "{st2} of {st1} chained items with room at home left in the chains"
    );
}
