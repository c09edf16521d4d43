//! Foreign reads against a store in the same thread: what the fast path
//! finds must be exactly what the owner's own lookup finds, or a fallback.
use super::*;
use crate::store::grace::Readers;
use crate::store::ops::{SetArgs, SetMode};
use crate::store::{test_store, Store};

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
    // The index grew by splits meanwhile; every key is still found, or
    // (rarely) left to the owner because it may sit in an overflow bucket.
    let mut hits = 0;
    for i in 0..20_000u32 {
        let k = format!("key:{i}");
        let (res, v) = read(&st, &r, k.as_bytes());
        match res {
            Read::Hit(h) => {
                hits += 1;
                assert_eq!(v, format!("value-{i}").as_bytes());
                assert_eq!(h.flags, i);
                let f = st.find(k.as_bytes()).unwrap();
                assert_eq!(h.cas, st.cas_of(&f), "{k}");
            }
            Read::Fallback(Fallback::Overflow) => {}
            other => panic!("{k}: {other:?}"),
        }
    }
    assert!(hits > 16_000, "only {hits} of 20,000 read directly");
    assert!(matches!(
        read(&st, &r, b"key:none").0,
        Read::Miss | Read::Fallback(Fallback::Overflow)
    ));
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
    let Read::Expired { hash, seg, off } = read(&st, &r, b"t").0 else {
        panic!("not expired")
    };
    // Told of it, the owner reclaims it as its own lookup would.
    let before = st.stats.get_expired;
    st.accessed(hash, seg, off);
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
