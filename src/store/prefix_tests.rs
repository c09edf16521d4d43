//! `flush_prefix` semantics: what it hides, what it leaves, and how it
//! meets flush_all, CAS, touch, the sweep and merge eviction.

use crate::store::prefix::MAX_PREFIXES;
use crate::store::*;

fn store(memory: usize) -> Store {
    // The defaults: 1 MiB segments and items, merge eviction.
    crate::store::test_store(memory, 1_700_000_000)
}

fn set(s: &mut Store, k: &str, v: &str, exp: i64) -> u64 {
    match s.set(&SetArgs::new(
        SetMode::Set,
        k.as_bytes(),
        v.as_bytes(),
        0,
        exp,
    )) {
        SetOutcome::Stored { cas } => cas,
        o => panic!("set {k}: {o:?}"),
    }
}

fn value(s: &mut Store, k: &str) -> Option<String> {
    s.get(k.as_bytes())
        .map(|f| String::from_utf8(f.item.value().to_vec()).unwrap())
}

#[test]
fn hides_items_under_the_prefix_and_only_those() {
    let mut s = store(16 << 20);
    set(&mut s, "user:1:a", "1", 0);
    set(&mut s, "user:1:b", "2", 100);
    set(&mut s, "user:10", "3", 0);
    set(&mut s, "user:2:a", "4", 0);
    set(&mut s, "other", "5", 0);
    s.flush_prefix(b"user:1:");
    assert_eq!(value(&mut s, "user:1:a"), None);
    assert_eq!(value(&mut s, "user:1:b"), None);
    assert_eq!(value(&mut s, "user:10").as_deref(), Some("3"));
    assert_eq!(value(&mut s, "user:2:a").as_deref(), Some("4"));
    assert_eq!(value(&mut s, "other").as_deref(), Some("5"));
}

#[test]
fn items_stored_after_are_visible_even_within_the_same_second() {
    let mut s = store(16 << 20);
    set(&mut s, "p:a", "old", 0);
    set(&mut s, "p:ttl", "old", 60);
    s.flush_prefix(b"p:");
    // Same store second, same open segments.
    set(&mut s, "p:a", "new", 0);
    set(&mut s, "p:b", "new", 0);
    assert_eq!(value(&mut s, "p:a").as_deref(), Some("new"));
    assert_eq!(value(&mut s, "p:b").as_deref(), Some("new"));
    assert_eq!(value(&mut s, "p:ttl"), None);
    // add sees a hidden key as missing.
    let add = s.set(&SetArgs::new(SetMode::Add, b"p:ttl", b"added", 0, 0));
    assert!(matches!(add, SetOutcome::Stored { .. }), "{add:?}");
    assert_eq!(value(&mut s, "p:ttl").as_deref(), Some("added"));
}

#[test]
fn nested_prefixes() {
    let mut s = store(16 << 20);
    set(&mut s, "u:1:a", "1", 0);
    s.flush_prefix(b"u:");
    set(&mut s, "u:1:b", "2", 0);
    set(&mut s, "u:2:a", "3", 0);
    s.flush_prefix(b"u:1:");
    assert_eq!(value(&mut s, "u:1:a"), None);
    assert_eq!(value(&mut s, "u:1:b"), None);
    assert_eq!(value(&mut s, "u:2:a").as_deref(), Some("3"));
    // A shorter prefix later covers the longer one's row.
    set(&mut s, "u:1:c", "4", 0);
    s.flush_prefix(b"u:");
    assert_eq!(s.prefixes_pending(), 1);
    assert_eq!(value(&mut s, "u:1:c"), None);
    assert_eq!(value(&mut s, "u:2:a"), None);
    set(&mut s, "u:1:d", "5", 0);
    assert_eq!(value(&mut s, "u:1:d").as_deref(), Some("5"));
}

#[test]
fn flush_all_clears_the_table() {
    let mut s = store(16 << 20);
    set(&mut s, "a:1", "1", 0);
    s.flush_prefix(b"a:");
    s.flush(0);
    assert_eq!(s.prefixes_pending(), 0);
    set(&mut s, "a:1", "2", 0);
    assert_eq!(value(&mut s, "a:1").as_deref(), Some("2"));
    // A delayed flush_all still empties what the prefix left.
    set(&mut s, "b:1", "1", 0);
    s.flush_prefix(b"a:");
    s.flush(4);
    assert_eq!(value(&mut s, "a:1"), None);
    assert_eq!(value(&mut s, "b:1").as_deref(), Some("1"));
    s.clock_mut().advance(3);
    assert_eq!(value(&mut s, "b:1"), None);
}

#[test]
fn cas_of_a_hidden_item_is_not_found() {
    let mut s = store(16 << 20);
    let cas = set(&mut s, "c:1", "1", 0);
    s.flush_prefix(b"c:");
    let mut a = SetArgs::new(SetMode::Set, b"c:1", b"2", 0, 0);
    a.cas = cas;
    assert_eq!(s.set(&a), SetOutcome::NotFound);
    assert_eq!(s.delete(b"c:1", 0), DeleteOutcome::NotFound);
    // A fresh item's CAS works as usual.
    let cas2 = set(&mut s, "c:1", "3", 0);
    a.cas = cas2;
    a.value = b"4";
    assert!(matches!(s.set(&a), SetOutcome::Stored { .. }));
    assert_eq!(value(&mut s, "c:1").as_deref(), Some("4"));
}

#[test]
fn touch_neither_revives_nor_hides() {
    let mut s = store(16 << 20);
    set(&mut s, "t:old", "1", 10);
    // A touch to a much longer TTL moves the record (with its CAS).
    assert!(s.touch(b"t:old", 100_000).is_some());
    s.flush_prefix(b"t:");
    assert!(s.touch(b"t:old", 0).is_none());
    assert_eq!(value(&mut s, "t:old"), None);
    set(&mut s, "t:new", "2", 10);
    assert!(s.touch(b"t:new", 100_000).is_some());
    assert_eq!(value(&mut s, "t:new").as_deref(), Some("2"));
}

#[test]
fn the_sweep_reclaims_and_drops_the_row() {
    let mut s = store(32 << 20);
    for i in 0..20_000 {
        set(&mut s, &format!("gone:{i}"), "xxxxxxxxxx", 0);
        set(&mut s, &format!("kept:{i}"), "yyyyyyyyyy", 0);
    }
    s.flush_prefix(b"gone:");
    set(&mut s, "gone:fresh", "z", 0);
    assert_eq!(s.curr_items(), 40_001);
    s.sweep_prefixes(1000);
    assert_eq!(s.prefixes_pending(), 1, "a small budget leaves the row");
    s.sweep_prefixes(usize::MAX);
    assert_eq!(s.prefixes_pending(), 0);
    assert_eq!(s.curr_items(), 20_001);
    assert_eq!(s.stats.prefix_reclaimed, 20_000);
    assert_eq!(value(&mut s, "gone:7"), None);
    assert_eq!(value(&mut s, "gone:fresh").as_deref(), Some("z"));
    assert_eq!(value(&mut s, "kept:7").as_deref(), Some("yyyyyyyyyy"));
}

#[test]
fn merge_eviction_never_moves_a_hidden_item_back_into_view() {
    // Small store: later writes evict, compact and re-append under the hand.
    let mut s = store(8 << 20);
    let v = "v".repeat(200);
    for i in 0..10_000 {
        set(&mut s, &format!("h:{i}"), &v, 0);
        if i % 3 == 0 {
            let _ = s.get(format!("h:{i}").as_bytes());
        }
    }
    s.flush_prefix(b"h:");
    for round in 0..5 {
        for i in 0..10_000 {
            set(&mut s, &format!("k:{round}:{i}"), &v, 0);
        }
        s.sweep_prefixes(3000);
        for i in 0..10_000 {
            assert_eq!(
                value(&mut s, &format!("h:{i}")),
                None,
                "h:{i} round {round}"
            );
        }
    }
}

#[test]
fn the_table_stays_bounded_and_correct() {
    let mut s = store(16 << 20);
    for i in 0..(MAX_PREFIXES * 2) {
        set(&mut s, &format!("n{i}:x"), "1", 0);
        set(&mut s, &format!("m{i}:x"), "1", 0);
        s.flush_prefix(format!("n{i}:").as_bytes());
        assert!(s.prefixes_pending() <= MAX_PREFIXES);
    }
    for i in 0..(MAX_PREFIXES * 2) {
        assert_eq!(value(&mut s, &format!("n{i}:x")), None);
        assert_eq!(value(&mut s, &format!("m{i}:x")).as_deref(), Some("1"));
    }
}

#[test]
fn an_empty_prefix_hides_everything_stored_before() {
    let mut s = store(16 << 20);
    set(&mut s, "a", "1", 0);
    set(&mut s, "b", "2", 0);
    s.flush_prefix(b"");
    set(&mut s, "c", "3", 0);
    assert_eq!(value(&mut s, "a"), None);
    assert_eq!(value(&mut s, "b"), None);
    assert_eq!(value(&mut s, "c").as_deref(), Some("3"));
}

#[test]
fn append_replace_and_incr_see_a_hidden_item_as_missing() {
    let mut s = store(16 << 20);
    set(&mut s, "r:1", "old", 0);
    set(&mut s, "r:2", "old", 0);
    set(&mut s, "r:n", "41", 0);
    s.flush_prefix(b"r:");
    let app = SetArgs::new(SetMode::Append, b"r:1", b"+new", 0, 0);
    assert_eq!(s.set(&app), SetOutcome::NotStored);
    let rep = SetArgs::new(SetMode::Replace, b"r:2", b"new", 0, 0);
    assert_eq!(s.set(&rep), SetOutcome::NotStored);
    assert_eq!(s.delta(b"r:n", true, 1, 0), DeltaOutcome::NotFound);
    assert_eq!(value(&mut s, "r:1"), None);
    assert_eq!(value(&mut s, "r:2"), None);
}
