//! Foreign reads against a store in the same thread: what the fast path
//! finds must be exactly what the owner's own lookup finds, or a fallback.
use super::*;
use crate::store::grace::Readers;
use crate::store::ops::{SetArgs, SetMode};
use crate::store::{test_store, Store};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Release};

fn shared_store() -> (Store, Arc<Readers>) {
    let mut st = test_store(8 << 20, 1_700_000_000);
    let r = Arc::new(Readers::new(2));
    st.share_with(r.clone(), 0);
    (st, r)
}

fn read(st: &Store, r: &Readers, key: &[u8]) -> (Read, Vec<u8>) {
    let mut got = Vec::new();
    let section = r.enter(1);
    let res = st
        .view()
        .read(&section, st.hash(key), key, 1 << 15, |k, v, _| {
            assert_eq!(k, key);
            got.extend_from_slice(v);
            true
        });
    (res, got)
}

fn set(st: &mut Store, key: &[u8], value: &[u8], flags: u32, exptime: i64) {
    let r = st.set(&SetArgs::new(SetMode::Set, key, value, flags, exptime));
    assert!(
        matches!(r, crate::store::ops::SetOutcome::Stored { .. }),
        "{r:?}"
    );
}

#[test]
fn reads_what_the_owner_stored_with_its_flags_and_cas() {
    let (mut st, r) = shared_store();
    for i in 0..20_000u32 {
        let k = format!("key:{i}");
        set(&mut st, k.as_bytes(), format!("value-{i}").as_bytes(), i, 0);
    }
    // The index grew by splits meanwhile, some items went to overflow
    // buckets, and every key is still read directly, none left to the
    // owner (overflow buckets are in the shared mapping).
    assert!(st.index.overflow_buckets() > 0, "no overflow bucket made");
    for i in 0..20_000u32 {
        let k = format!("key:{i}");
        let (res, v) = read(&st, &r, k.as_bytes());
        let Read::Hit(h) = res else {
            panic!("{k}: {res:?}")
        };
        assert_eq!(v, format!("value-{i}").as_bytes());
        assert_eq!(h.flags, i);
        let f = st.find(k.as_bytes()).unwrap();
        assert_eq!(h.cas, st.cas_of(&f), "{k}");
    }
    for i in 0..2_000u32 {
        let k = format!("none:{i}");
        assert!(matches!(read(&st, &r, k.as_bytes()).0, Read::Miss), "{k}");
    }
}

#[test]
fn overflow_chains_emptied_and_reused_read_exactly() {
    // Deleting empties overflow buckets (unlinked, kept for reuse) and
    // later sets reuse them, possibly in other groups' chains: after each
    // round a foreign read sees exactly the owner's keys.
    let (mut st, r) = shared_store();
    for round in 0..6u32 {
        for i in 0..12_000u32 {
            let k = format!("k{}:{i}", round % 2);
            set(
                &mut st,
                k.as_bytes(),
                format!("{round}-{i}").as_bytes(),
                round,
                0,
            );
        }
        for i in (0..12_000u32).filter(|i| (i + round) % 3 != 0) {
            let k = format!("k{}:{i}", round % 2);
            st.delete(k.as_bytes(), 0);
        }
        for i in 0..12_000u32 {
            for side in 0..2u32 {
                let k = format!("k{side}:{i}");
                let (res, v) = read(&st, &r, k.as_bytes());
                let owner = st.find(k.as_bytes()).map(|f| f.item.value().to_vec());
                match (owner.is_some(), res) {
                    (true, Read::Hit(_)) => assert_eq!(owner.unwrap(), v, "{k}"),
                    (false, Read::Miss) => {}
                    (owner, res) => panic!("{k}: owner has it {owner}, read {res:?}"),
                }
            }
        }
    }
}

#[test]
fn replaced_deleted_and_expired_items_are_not_returned() {
    let (mut st, r) = shared_store();
    set(&mut st, b"a", b"one", 0, 0);
    set(&mut st, b"a", b"two", 0, 0);
    assert_eq!(read(&st, &r, b"a").1, b"two");
    st.delete(b"a", 0);
    assert!(matches!(read(&st, &r, b"a").0, Read::Miss));
    set(&mut st, b"t", b"x", 0, 10);
    assert!(matches!(read(&st, &r, b"t").0, Read::Hit(_)));
    st.clock_mut().advance(11);
    // Expiry is judged by the owner's clock as it publishes it.
    assert!(matches!(read(&st, &r, b"t").0, Read::Hit(_)));
    st.tick();
    // Expired: the owner's own lookup reclaims it and counts it.
    assert!(matches!(
        read(&st, &r, b"t").0,
        Read::Fallback(Fallback::Expired)
    ));
    let before = st.stats.get_expired;
    assert!(st.get(b"t").is_none());
    assert_eq!(st.stats.get_expired, before + 1);
    assert!(matches!(read(&st, &r, b"t").0, Read::Miss));
}

#[test]
fn a_flush_or_a_large_value_falls_back() {
    let (mut st, r) = shared_store();
    set(&mut st, b"big", &vec![b'x'; 40_000], 0, 0);
    assert!(matches!(
        read(&st, &r, b"big").0,
        Read::Fallback(Fallback::Large)
    ));
    set(&mut st, b"k", b"v", 0, 0);
    st.flush(0);
    st.refresh_gate();
    assert!(matches!(
        read(&st, &r, b"k").0,
        Read::Fallback(Fallback::Closed)
    ));
}

#[test]
fn an_unshared_store_is_closed() {
    let mut st = test_store(8 << 20, 1_700_000_000);
    set(&mut st, b"k", b"v", 0, 0);
    let r = Readers::new(2);
    assert!(matches!(
        read(&st, &r, b"k").0,
        Read::Fallback(Fallback::Closed)
    ));
}

#[test]
fn an_access_reported_back_bumps_the_owners_item() {
    let (mut st, r) = shared_store();
    set(&mut st, b"k", b"v", 0, 0);
    let Read::Hit(h) = read(&st, &r, b"k").0 else {
        panic!("miss")
    };
    assert!(h.tell_owner, "a never-read item is reported");
    st.accessed(h.hash, h.seg, h.off);
    let Read::Hit(h2) = read(&st, &r, b"k").0 else {
        panic!("miss")
    };
    assert!(!h2.tell_owner, "fetched, frequency 1, accessed this second");
}

#[test]
fn a_vivified_placeholder_is_linked_already_marked() {
    // mg N: the item a foreign reader may find at once must already say
    // its win token is out (Z), or the reader serves it as a plain hit.
    let (mut st, r) = shared_store();
    let mut a = SetArgs::new(SetMode::Add, b"v", b"", 0, 30);
    a.win_sent = true;
    set_args(&mut st, &a);
    let Read::Hit(h) = read(&st, &r, b"v").0 else {
        panic!("miss")
    };
    assert_ne!(h.iflags & crate::store::item::WIN_SENT, 0);
}

fn set_args(st: &mut Store, a: &SetArgs) {
    let r = st.set(a);
    assert!(
        matches!(r, crate::store::ops::SetOutcome::Stored { .. }),
        "{r:?}"
    );
}

#[test]
fn a_reader_racing_chain_changes_never_misses_a_linked_key() {
    // The owner churns keys so overflow buckets fill, empty (unlinked),
    // get reused in other chains, and the index splits, while another
    // thread reads keys that stay linked all along: each read is their
    // value or a give-way to the owner, never a miss (a reader inside a
    // bucket reused for another chain would walk the wrong chain).
    let mut st = test_store(64 << 20, 1_700_000_000);
    let r = Arc::new(Readers::new(2));
    st.share_with(r.clone(), 0);
    const STABLE: u32 = 60_000;
    for i in 0..STABLE {
        set(
            &mut st,
            format!("stable:{i}").as_bytes(),
            format!("v{i}").as_bytes(),
            i,
            0,
        );
    }
    let view = st.view();
    let hashes: Vec<u64> = (0..STABLE)
        .map(|i| st.hash(format!("stable:{i}").as_bytes()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (r, stop) = (r.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut hits, mut gave_way, mut i) = (0u64, 0u64, 0u32);
            while !stop.load(Acquire) {
                let key = format!("stable:{i}");
                let want = format!("v{i}");
                let section = r.enter(1);
                let res = view.read(
                    &section,
                    hashes[i as usize],
                    key.as_bytes(),
                    1 << 15,
                    |_, v, _| {
                        assert_eq!(v, want.as_bytes(), "{key}");
                        true
                    },
                );
                drop(section);
                match res {
                    Read::Hit(_) => hits += 1,
                    Read::Fallback(Fallback::Busy | Fallback::Overflow) => gave_way += 1,
                    other => panic!("{key}: {other:?}"),
                }
                i = (i + 1) % STABLE;
            }
            (hits, gave_way)
        })
    };
    let mut most = 0;
    for round in 0..100u32 {
        most = most.max(st.index.overflow_buckets());
        for i in 0..8_000u32 {
            set(&mut st, format!("churn:{round}:{i}").as_bytes(), b"x", 0, 0);
        }
        if round > 0 {
            for i in 0..8_000u32 {
                st.delete(format!("churn:{}:{i}", round - 1).as_bytes(), 0);
            }
        }
    }
    stop.store(true, Release);
    let (hits, gave_way) = reader.join().unwrap();
    assert_eq!(
        st.stats.evictions, 0,
        "the test needs every stable key linked"
    );
    // 60,000 keys fill the index sized for this store to its load, so
    // some of them sit in overflow buckets.
    assert!(
        most > 100,
        "only {most} overflow buckets: chains not exercised"
    );
    assert!(hits > 10_000, "{hits} hits, {gave_way} gave way");
}
