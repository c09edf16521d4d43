//! Lazy `flush_all`: what a lookup, the sweep, eviction, compaction, a
//! pinned send and a snapshot see between the flush and the end of its
//! sweep.

use crate::store::*;

fn store(memory: usize) -> Store {
    crate::store::test_store(memory, 1_700_000_000)
}

fn set(s: &mut Store, k: &str, v: &[u8], exp: i64) {
    let o = s.set(&SetArgs::new(SetMode::Set, k.as_bytes(), v, 0, exp));
    assert!(matches!(o, SetOutcome::Stored { .. }), "set {k}: {o:?}");
}

fn value(s: &mut Store, k: &str) -> Option<Vec<u8>> {
    s.get(k.as_bytes()).map(|f| f.item.value().to_vec())
}

fn sweep_all(s: &mut Store) {
    while s.sweep_pending() {
        s.sweep_step(1000);
    }
}

#[test]
fn hides_what_was_stored_before_and_counts_the_lookup() {
    let mut s = store(16 << 20);
    for i in 0..1000 {
        set(
            &mut s,
            &format!("k{i}"),
            b"old",
            if i % 2 == 0 { 0 } else { 3600 },
        );
    }
    s.flush(0);
    // Same second, same open segments: written after, so kept.
    set(&mut s, "k1", b"new", 0);
    set(&mut s, "fresh", b"new", 0);
    assert_eq!(value(&mut s, "k0"), None);
    assert_eq!(value(&mut s, "k1").as_deref(), Some(&b"new"[..]));
    assert_eq!(value(&mut s, "fresh").as_deref(), Some(&b"new"[..]));
    // Every command's lookup counts, as memcached's do_item_get: the set
    // of k1 met its flushed item, and the get of k0.
    assert_eq!(s.stats.get_flushed, 2);
    assert_eq!(value(&mut s, "k0"), None);
    assert_eq!(s.stats.get_flushed, 2, "then it is gone");
    // add, replace and incr see a flushed key as missing.
    let add = s.set(&SetArgs::new(SetMode::Add, b"k2", b"added", 0, 0));
    assert!(matches!(add, SetOutcome::Stored { .. }), "{add:?}");
    let rep = s.set(&SetArgs::new(SetMode::Replace, b"k3", b"r", 0, 0));
    assert_eq!(rep, SetOutcome::NotStored);
    assert!(s.sweep_pending());
    sweep_all(&mut s);
    assert_eq!(s.curr_items(), 3, "k1, fresh and k2 are left");
    for i in 4..1000 {
        assert_eq!(value(&mut s, &format!("k{i}")), None, "k{i}");
    }
    assert_eq!(
        s.stats.get_flushed, 4,
        "add and replace met theirs; the sweep unlinked the rest"
    );
    assert_eq!(s.stats.reclaimed, 1000 - 4, "and counted them reclaimed");
}

#[test]
fn the_sweep_frees_the_segments_and_the_bytes() {
    let mut s = store(32 << 20);
    let v = vec![b'x'; 1000];
    for i in 0..20_000 {
        set(&mut s, &format!("k{i}"), &v, 0);
    }
    let used = s.segments_in_use();
    assert!(used > 15, "{used}");
    s.flush(0);
    assert_eq!(s.curr_items(), 20_000, "the call itself visits nothing");
    // A step reads a bounded number of records.
    assert!(s.sweep_step(1000) <= 1000 + 1100);
    sweep_all(&mut s);
    assert_eq!(s.curr_items(), 0);
    assert_eq!(s.bytes(), 0);
    assert!(
        s.segments_in_use() <= 3,
        "{} of {used}",
        s.segments_in_use()
    );
}

#[test]
fn eviction_reclaims_flushed_items_before_evicting_newer_ones() {
    for policy in [
        Eviction::Merge,
        Eviction::Fifo,
        Eviction::Random,
        Eviction::Util,
    ] {
        let cfg = StoreConfig {
            memory: 16 << 20,
            huge_pages: false,
            eviction: policy,
            ..StoreConfig::default()
        };
        let mut s = Store::new(cfg, Clock::manual(1_700_000_000)).unwrap();
        let v = vec![b'o'; 900];
        let mut n = 0;
        // Fill until the store evicts: it is full.
        while s.stats.evictions == 0 {
            set(&mut s, &format!("old{n}"), &v, 0);
            n += 1;
        }
        let evicted = s.stats.evictions;
        s.flush(0);
        // No sweep runs: only writes needing room reclaim.
        let v = vec![b'n'; 900];
        for i in 0..n / 2 {
            set(&mut s, &format!("new{i}"), &v, 0);
        }
        assert_eq!(
            s.stats.evictions, evicted,
            "{policy:?}: nothing new was evicted"
        );
        for i in 0..n / 2 {
            assert_eq!(
                value(&mut s, &format!("new{i}")).as_deref(),
                Some(&v[..]),
                "{policy:?}"
            );
        }
        for i in 0..n {
            assert_eq!(value(&mut s, &format!("old{i}")), None, "{policy:?} old{i}");
        }
    }
}

#[test]
fn compaction_after_a_flush_never_brings_an_item_back() {
    let mut s = store(8 << 20);
    // Replaced items leave dead bytes, so merge eviction compacts.
    for round in 0..3 {
        for i in 0..4000 {
            set(
                &mut s,
                &format!("k{i}"),
                format!("r{round}-{i:0>600}").as_bytes(),
                0,
            );
        }
    }
    s.flush(0);
    for i in 0..20_000 {
        set(
            &mut s,
            &format!("n{}", i % 5000),
            format!("{i:0>700}").as_bytes(),
            0,
        );
        if i % 997 == 0 {
            for j in (0..4000).step_by(37) {
                assert_eq!(
                    value(&mut s, &format!("k{j}")),
                    None,
                    "k{j} after {i} writes"
                );
            }
        }
    }
    sweep_all(&mut s);
    for j in 0..4000 {
        assert_eq!(value(&mut s, &format!("k{j}")), None, "k{j}");
    }
}

#[test]
fn a_delayed_flush_hides_at_its_time() {
    // memcached: oldest_live = realtime(N) - 1, applied once it is not in
    // the future, so `flush_all 10` acts 9 seconds on, 1 at once.
    let mut s = store(16 << 20);
    set(&mut s, "a", b"1", 0);
    s.flush(10);
    assert_eq!(value(&mut s, "a").as_deref(), Some(&b"1"[..]));
    s.clock_mut().advance(8);
    s.tick();
    set(&mut s, "b", b"2", 0);
    assert_eq!(value(&mut s, "a").as_deref(), Some(&b"1"[..]));
    s.clock_mut().advance(1);
    s.tick();
    assert_eq!(value(&mut s, "a"), None);
    assert_eq!(value(&mut s, "b"), None);
    // What is stored in the second the flush acts is hidden too (its
    // time is not after oldest_live), and from the next second on kept.
    set(&mut s, "c", b"3", 0);
    assert_eq!(value(&mut s, "c"), None, "stored in the flush's second");
    s.clock_mut().advance(1);
    s.tick();
    assert_eq!(value(&mut s, "c"), None, "still hidden a second on");
    set(&mut s, "c", b"3", 0);
    assert_eq!(value(&mut s, "c").as_deref(), Some(&b"3"[..]));
    s.flush(1);
    assert_eq!(value(&mut s, "c"), None, "flush_all 1 acts at once");
    // The sweep may be over within the second (an idle worker sweeps at
    // once): what is stored after it is still hidden.
    sweep_all(&mut s);
    assert!(!s.sweep_pending());
    set(&mut s, "d", b"4", 0);
    assert_eq!(value(&mut s, "d"), None, "and for the rest of its second");
    s.clock_mut().advance(1);
    s.tick();
    assert_eq!(value(&mut s, "d"), None);
    set(&mut s, "c", b"3", 0);
    assert_eq!(value(&mut s, "c").as_deref(), Some(&b"3"[..]));
    // An absolute time before the process started: memcached never flushes.
    s.flush(1_000_000_000);
    s.clock_mut().advance(100);
    s.tick();
    assert_eq!(value(&mut s, "c").as_deref(), Some(&b"3"[..]));
}

#[test]
fn a_pinned_value_keeps_its_bytes_through_the_sweep() {
    let mut s = store(16 << 20);
    let v = vec![b'p'; 100_000];
    set(&mut s, "big", &v, 0);
    for i in 0..50 {
        set(&mut s, &format!("k{i}"), &v, 0);
    }
    let f = s.get(b"big").unwrap();
    let (ptr, len) = (f.item.value().as_ptr(), f.item.value().len());
    let pin = s.pin(f.item.value());
    s.flush(0);
    sweep_all(&mut s);
    let v2 = vec![b'q'; 100_000];
    for i in 0..300 {
        set(&mut s, &format!("n{i}"), &v2, 0);
    }
    // SAFETY: the segment is pinned, so these bytes are not reused.
    let still = unsafe { std::slice::from_raw_parts(ptr, len) };
    assert!(still.iter().all(|&b| b == b'p'));
    s.unpin(pin);
    assert_eq!(value(&mut s, "big"), None);
}

#[test]
fn a_snapshot_taken_during_the_sweep_leaves_flushed_items_out() {
    let mut s = store(16 << 20);
    for i in 0..500 {
        set(&mut s, &format!("old{i}"), b"v", 0);
    }
    s.flush(0);
    set(&mut s, "new", b"v", 0);
    let mut file = Vec::new();
    s.save(&mut file).unwrap();
    let mut b = store(16 << 20);
    let got = b
        .restore(&mut file.as_slice(), 1_700_000_000, |_| true)
        .unwrap();
    assert_eq!(got.items, 1);
    assert_eq!(value(&mut b, "new").as_deref(), Some(&b"v"[..]));
    assert_eq!(value(&mut b, "old7"), None);
}

#[test]
fn a_sweep_stopped_inside_a_segment_that_is_then_reused_resumes_safely() {
    // A prefix row's sweep stops a few records into a segment; churn then
    // evicts and retakes every segment (new records at other offsets)
    // before it resumes. The cursor must not read from its old offset.
    let mut s = store(4 << 20);
    for i in 0..3000 {
        set(
            &mut s,
            &format!("p:{i}"),
            format!("{i:0>300}").as_bytes(),
            0,
        );
    }
    s.flush_prefix(b"p:");
    s.sweep_prefixes(7);
    assert!(s.sweep_pending());
    for i in 0..20_000 {
        set(&mut s, &format!("n{i}"), format!("{i:0>217}").as_bytes(), 0);
    }
    sweep_all(&mut s);
    let mut kept = 0;
    for i in 0..20_000 {
        if let Some(v) = value(&mut s, &format!("n{i}")) {
            assert_eq!(v, format!("{i:0>217}").into_bytes());
            kept += 1;
        }
    }
    assert!(kept > 5000, "{kept}");
    for i in 0..3000 {
        assert_eq!(value(&mut s, &format!("p:{i}")), None);
    }
}
