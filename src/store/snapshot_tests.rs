use super::*;
use crate::store::*;

const T0: i64 = 1_700_000_000;

fn store_at(memory: usize, unix: i64) -> Store {
    crate::store::test_store(memory, unix)
}

fn set(s: &mut Store, k: &str, v: &[u8], flags: u32, exp: i64) {
    let out = s.set(&SetArgs::new(SetMode::Set, k.as_bytes(), v, flags, exp));
    assert!(matches!(out, SetOutcome::Stored { .. }), "{k}");
}

/// (value, flags, CAS, TTL left) of `k`, if served.
fn item(s: &mut Store, k: &str) -> Option<(Vec<u8>, u32, u64, i64)> {
    let f = s.get(k.as_bytes())?;
    Some((
        f.item.value().to_vec(),
        f.item.flags(),
        s.cas_of(&f),
        s.ttl_left(&f),
    ))
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key:{i}")).collect()
}

fn filled() -> Store {
    let mut s = store_at(16 << 20, T0);
    for (i, k) in keys(20_000).iter().enumerate() {
        // Some values of 32 KiB or more: records with the long header.
        let len = if i % 500 == 1 {
            32_768 + i
        } else {
            20 + i % 300
        };
        let v = vec![b'a' + (i % 26) as u8; len];
        set(
            &mut s,
            k,
            &v,
            i as u32,
            if i % 3 == 0 { 0 } else { 100 + i as i64 % 50 },
        );
    }
    // Replaced, deleted and a prefix flush: none of these may come back.
    for k in keys(20_000).iter().step_by(7) {
        set(&mut s, k, b"newer", 1, 0);
    }
    for k in keys(20_000).iter().skip(3).step_by(11) {
        s.delete(k.as_bytes(), 0);
    }
    s
}

#[test]
fn every_item_comes_back_with_its_value_flags_cas_and_ttl() {
    let mut a = filled();
    a.clock_mut().advance(10);
    let mut file = Vec::new();
    let saved = a.save(&mut file).unwrap();
    assert_eq!(saved.items as usize, a.curr_items());
    // Restarted 5 s later on the wall clock.
    let mut b = store_at(16 << 20, T0 + 3);
    let got = b
        .restore(&mut file.as_slice(), a.clock().unix_now() + 5, |_| true)
        .unwrap();
    assert_eq!(got.items, saved.items);
    assert_eq!(b.curr_items(), a.curr_items());
    assert_eq!(b.bytes(), a.bytes());
    for k in keys(20_000) {
        let (x, y) = (item(&mut a, &k), item(&mut b, &k));
        match (x, y) {
            (None, None) => {}
            (Some((v, f, c, t)), Some((v2, f2, c2, t2))) => {
                assert_eq!((v, f, c), (v2, f2, c2), "{k}");
                if t < 0 {
                    assert_eq!(t2, t, "{k}");
                } else {
                    assert_eq!(t2, t - 5, "{k} TTL");
                }
            }
            (x, y) => panic!("{k}: before {:?}, after {:?}", x.is_some(), y.is_some()),
        }
    }
}

#[test]
fn new_cas_values_never_repeat_restored_ones() {
    let mut a = filled();
    let mut file = Vec::new();
    a.save(&mut file).unwrap();
    let mut old = std::collections::HashSet::new();
    for k in keys(20_000) {
        if let Some((_, _, c, _)) = item(&mut a, &k) {
            old.insert(c);
        }
    }
    let mut b = store_at(16 << 20, T0);
    b.restore(&mut file.as_slice(), a.clock().unix_now(), |_| true)
        .unwrap();
    for i in 0..5000 {
        let k = format!("fresh:{i}");
        set(&mut b, &k, b"v", 0, 0);
        let (_, _, c, _) = item(&mut b, &k).unwrap();
        assert!(!old.contains(&c), "CAS {c} reused");
    }
    // A CAS taken before the stop still matches once after it.
    let k = "key:1";
    let (_, _, c, _) = item(&mut b, k).unwrap();
    let mut args = SetArgs::new(SetMode::Set, k.as_bytes(), b"x", 0, 0);
    args.cas = c;
    assert!(matches!(b.set(&args), SetOutcome::Stored { .. }));
    assert!(matches!(b.set(&args), SetOutcome::Exists));
}

#[test]
fn items_that_expired_while_down_are_gone() {
    let mut a = store_at(16 << 20, T0);
    set(&mut a, "short", b"v", 0, 30);
    set(&mut a, "long", b"v", 0, 3000);
    set(&mut a, "never", b"v", 0, 0);
    let mut file = Vec::new();
    a.save(&mut file).unwrap();
    let mut b = store_at(16 << 20, T0);
    let got = b.restore(&mut file.as_slice(), T0 + 60, |_| true).unwrap();
    assert_eq!((got.items, got.expired), (2, 1));
    assert!(item(&mut b, "short").is_none());
    assert!(item(&mut b, "long").is_some());
    assert!(item(&mut b, "never").is_some());
}

#[test]
fn a_damaged_or_foreign_file_starts_cold() {
    let a = filled();
    let mut file = Vec::new();
    a.save(&mut file).unwrap();
    // A byte of some value flipped, a file cut short, another segment size.
    let mut flipped = file.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x40;
    let cut = &file[..file.len() - 100];
    for (what, bytes, mem) in [
        ("flipped", flipped.as_slice(), 16 << 20),
        ("cut", cut, 16 << 20),
    ] {
        let mut b = store_at(mem, T0);
        let e = b.restore(&mut &bytes[..], T0, |_| true);
        assert!(e.is_err(), "{what}");
        assert_eq!(b.curr_items(), 0, "{what}");
        assert_eq!(b.bytes(), 0, "{what}");
        set(&mut b, "after", b"v", 0, 0);
        assert!(item(&mut b, "after").is_some());
    }
    let mut other = store_at(16 << 20, T0);
    let mut wrong = file.clone();
    wrong[8..16].copy_from_slice(&(2u64 << 20).to_le_bytes());
    let sum = checksum(&wrong[..SUM_AT]);
    wrong[SUM_AT..HEADER_LEN].copy_from_slice(&sum.to_le_bytes());
    assert!(matches!(
        other.restore(&mut wrong.as_slice(), T0, |_| true),
        Err(RestoreError::Incompatible(_))
    ));
    assert!(other
        .restore(&mut &b"not a file at all, just words"[..], T0, |_| true)
        .is_err());
}

#[test]
fn keys_another_shard_owns_are_left_out() {
    let a = filled();
    let mut file = Vec::new();
    a.save(&mut file).unwrap();
    let mut b = store_at(16 << 20, T0);
    let got = b
        .restore(&mut file.as_slice(), T0, |k| k.ends_with(b"5"))
        .unwrap();
    assert!(got.dropped > 0 && got.items > 0);
    assert!(item(&mut b, "key:15").is_some());
    assert!(item(&mut b, "key:16").is_none());
    assert_eq!(b.curr_items() as u64, got.items);
}

#[test]
fn a_smaller_store_evicts_to_make_room_and_serves_what_it_kept() {
    let a = filled();
    let mut file = Vec::new();
    a.save(&mut file).unwrap();
    let mut b = store_at(4 << 20, T0);
    let got = b.restore(&mut file.as_slice(), T0, |_| true).unwrap();
    assert!(got.items > 0, "{got:?}");
    assert!(b.curr_items() < a.curr_items() && b.curr_items() > 0);
    // What it serves is what was stored (values are per-key patterns).
    let mut a = a;
    for k in keys(20_000) {
        if let Some(y) = item(&mut b, &k) {
            assert_eq!(
                item(&mut a, &k).map(|x| (x.0, x.1, x.2)),
                Some((y.0, y.1, y.2))
            );
        }
    }
}

#[test]
fn damaged_numbers_outside_the_data_are_caught_too() {
    let a = filled();
    let mut file = Vec::new();
    a.save(&mut file).unwrap();
    // The store time at stop (header byte 43: >= 2^31, which once
    // panicked in Clock::resume), a header field, the first entry's
    // incarnation number and its expiry.
    for at in [43, 20, HEADER_LEN + 2, HEADER_LEN + 25] {
        let mut bad = file.clone();
        bad[at] ^= 0x80;
        let mut b = store_at(16 << 20, T0);
        match b.restore(&mut bad.as_slice(), T0, |_| true) {
            Err(RestoreError::Damaged(_)) => {}
            other => panic!("byte {at}: {other:?}"),
        }
        assert_eq!(b.curr_items(), 0);
    }
}

/// Damage a linear sum cannot see (the old Fletcher-style sum passed
/// both, and the restored store served a value never stored): +d, -2d, +d
/// in three words in a row, and bit 63 of two words an even distance
/// apart, at a few places in the first segment's data.
#[test]
fn damage_that_cancels_in_a_sum_is_caught() {
    let a = filled();
    let mut file = Vec::new();
    a.save(&mut file).unwrap();
    let data = HEADER_LEN + ENTRY_LEN;
    for word in [0, 7, 100, 1000] {
        let at = data + 8 * word;
        let word_at = |f: &[u8], i: usize| u64::from_le_bytes(f[i..i + 8].try_into().unwrap());
        let mut sum3 = file.clone();
        for (i, d) in [(0, 1u64), (8, 2u64.wrapping_neg()), (16, 1)] {
            let v = word_at(&sum3, at + i).wrapping_add(d);
            sum3[at + i..at + i + 8].copy_from_slice(&v.to_le_bytes());
        }
        let mut bit63 = file.clone();
        bit63[at + 7] ^= 0x80;
        bit63[at + 16 + 7] ^= 0x80;
        for (what, bad) in [("+d -2d +d", sum3), ("bit 63 twice", bit63)] {
            let mut b = store_at(16 << 20, T0);
            match b.restore(&mut bad.as_slice(), T0, |_| true) {
                Err(RestoreError::Damaged(_)) => {}
                other => panic!("{what} at word {word}: {other:?}"),
            }
            assert_eq!(b.curr_items(), 0, "{what} at word {word}");
        }
    }
}

#[test]
fn store_times_come_back() {
    let mut a = store_at(16 << 20, T0);
    let keys = ["first", "second", "third"];
    for k in keys {
        set(&mut a, k, b"v", 0, 0);
        a.clock_mut().advance(100);
    }
    let dated = |s: &mut Store| -> Vec<i64> {
        keys.iter()
            .map(|k| {
                let f = s.find(k.as_bytes()).unwrap();
                s.stored_unix(&f)
            })
            .collect()
    };
    let before = dated(&mut a);
    assert!(before[0] < before[1] && before[1] < before[2], "{before:?}");
    assert_eq!(before[2], T0 + 200);
    let mut file = Vec::new();
    a.save(&mut file).unwrap();
    let mut b = store_at(16 << 20, T0);
    b.restore(&mut file.as_slice(), a.clock().unix_now() + 5, |_| true)
        .unwrap();
    assert_eq!(dated(&mut b), before);
}

/// The run a file names is the one it was saved with, and a damaged or
/// foreign header names none (`process::warm` keeps files of two stops
/// from being restored together by it).
#[test]
fn a_file_names_the_run_it_was_saved_with() {
    let mut a = store_at(16 << 20, T0);
    set(&mut a, "k", b"v", 0, 0);
    let mut file = Vec::new();
    a.save_run(&mut file, 0xfeed_beef).unwrap();
    assert_eq!(file_run(&file[..HEADER_LEN]), Some(0xfeed_beef));
    let mut bad = file.clone();
    bad[81] ^= 1;
    assert_eq!(file_run(&bad[..HEADER_LEN]), None, "checksum");
    assert_eq!(file_run(&file[..HEADER_LEN - 1]), None, "short");
    let mut older = file.clone();
    older[7] = b'4';
    assert_eq!(file_run(&older[..HEADER_LEN]), None, "format");
}
