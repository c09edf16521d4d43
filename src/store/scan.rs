//! Browsing a shard's items in bounded steps (the dashboard's key
//! browser): a cursor over segment memory, so one step reads at most a
//! given number of records and a worker never stalls for long.
//!
//! A step reads records in segment order from the cursor, keeps the live,
//! unexpired, unhidden ones (see `prefix`) that match a filter, and
//! returns them with the cursor to continue from. Like memcached's
//! `lru_crawler metadump`, the view is best effort: an item that merge
//! eviction moves during a scan may be returned twice, or missed if it
//! moves behind the cursor; items stored after the scan began may or may
//! not appear.

use super::item::{DELETED, FETCHED};
use super::{index, Found, Store};

/// Where a scan stands: segment id in the high 32 bits, byte offset in the
/// low 32. 0 starts a scan; [`SCAN_DONE`] means it is over.
pub type ScanCursor = u64;

/// The cursor of a finished scan.
pub const SCAN_DONE: ScanCursor = u64::MAX;

/// What a scan keeps, besides being live.
#[derive(Clone, Debug, Default)]
pub struct ScanFilter {
    /// Keys starting with these bytes (empty: every key).
    pub prefix: Vec<u8>,
    /// A glob on the whole key: `*` any run of bytes, `?` one byte
    /// (`None`: every key).
    pub pattern: Option<Vec<u8>>,
    /// Which TTLs.
    pub ttl: TtlFilter,
}

/// A filter on an item's remaining lifetime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TtlFilter {
    /// Any.
    #[default]
    Any,
    /// Items that never expire.
    NoTtl,
    /// Items that expire within this many seconds.
    ExpiresWithin(u32),
    /// Items with more than this many seconds left (never-expiring ones
    /// included).
    Above(u32),
}

/// One item as a scan reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanItem {
    /// The key.
    pub key: Vec<u8>,
    /// Value length, bytes.
    pub value_len: u32,
    /// The client's flags.
    pub flags: u32,
    /// Seconds left to live; -1 = never expires.
    pub ttl: i64,
    /// Last access (or store) time, Unix seconds.
    pub atime_unix: i64,
    /// Approximate store time, Unix seconds: dated by the record's segment
    /// (see [`Store::stored_unix`]).
    pub stored_unix: i64,
    /// The item's CAS.
    pub cas: u64,
    /// Whether it was read since stored (memcached's `fetch=`).
    pub fetched: bool,
}

/// What one scan step found.
#[derive(Clone, Debug, Default)]
pub struct ScanStep {
    /// Matching items, in segment order.
    pub items: Vec<ScanItem>,
    /// Where to continue, [`SCAN_DONE`] when the shard has been read.
    pub next: ScanCursor,
    /// Records read (live or not), and segments passed over.
    pub read: usize,
}

/// Whether `key` matches the glob `pat` (`*` and `?`), iteratively with
/// one backtrack point: linear in practice, never exponential.
pub fn glob_match(pat: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while k < key.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == key[k]) {
            p += 1;
            k += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some(p);
            mark = k;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            k = mark;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

impl ScanFilter {
    fn keeps(&self, key: &[u8], ttl: i64) -> bool {
        key.starts_with(&self.prefix)
            && self.pattern.as_deref().is_none_or(|p| glob_match(p, key))
            && match self.ttl {
                TtlFilter::Any => true,
                TtlFilter::NoTtl => ttl < 0,
                TtlFilter::ExpiresWithin(s) => ttl >= 0 && ttl <= s as i64,
                TtlFilter::Above(s) => ttl < 0 || ttl > s as i64,
            }
    }
}

impl Store {
    /// One scan step from `cursor`: reads at most `max_records` records
    /// (a segment passed over counts as one) and stops early once
    /// `max_items` items matched. Read only: counts
    /// no access and reclaims nothing.
    pub fn scan(
        &self,
        cursor: ScanCursor,
        filter: &ScanFilter,
        max_records: usize,
        max_items: usize,
    ) -> ScanStep {
        let mut step = ScanStep::default();
        if cursor == SCAN_DONE {
            step.next = SCAN_DONE;
            return step;
        }
        let now = self.clock.now();
        let n = self.segs.count() as u32;
        let (mut seg, mut off) = ((cursor >> 32) as u32, cursor as u32);
        if seg < n {
            off = self.record_at_or_after(seg, off);
        }
        while seg < n {
            if step.read >= max_records || step.items.len() >= max_items {
                step.next = ((seg as u64) << 32) | off as u64;
                return step;
            }
            let h = self.segs.header(seg);
            let end = h.write_off;
            if h.seq == 0 || h.live_items == 0 || off >= end {
                // A segment passed over counts as a record: a step over
                // thousands of empty segments stays as short as any.
                step.read += 1;
                (seg, off) = (seg + 1, 0);
                continue;
            }
            let it = self.item_at(seg, off);
            let size = it.size() as u32;
            step.read += 1;
            let e = it.expire();
            if it.iflags() & DELETED == 0 && (e == 0 || e > now) {
                let ttl = if e == 0 { -1 } else { (e - now) as i64 };
                let key = it.key();
                if filter.keeps(key, ttl)
                    && !self.hidden(seg, off, it)
                    && self.slot_at(self.hash(key), seg, off).is_some()
                {
                    step.items.push(ScanItem {
                        key: key.to_vec(),
                        value_len: it.vlen() as u32,
                        flags: it.flags(),
                        ttl,
                        atime_unix: self.clock.to_unix(now) - it.idle_secs(now) as i64,
                        stored_unix: self.record_stored_unix(seg, off + size),
                        cas: if self.cfg.cas {
                            self.record_cas(seg, off, it)
                        } else {
                            0
                        },
                        fetched: it.iflags() & FETCHED != 0,
                    });
                }
            }
            off += size;
        }
        step.next = SCAN_DONE;
        step
    }
}

impl Store {
    /// The offset of `seg`'s first record at `off` or after it (its
    /// `write_off` if none), found by walking its records from the start.
    /// A cursor comes from a client (the admin port's key browser): its
    /// offset may be forged, or its segment reused since, and a record
    /// read from anywhere but a record's start would take value bytes for
    /// a header (found by a breaker: no crash, as the index check dropped
    /// what it read, but reads past `write_off`).
    fn record_at_or_after(&self, seg: u32, off: u32) -> u32 {
        let end = self.segs.header(seg).write_off;
        let mut at = 0;
        while at < off && at < end {
            at += self.item_at(seg, at).size() as u32;
        }
        at
    }

    /// Approximately when the item was stored, Unix seconds. Records carry
    /// no time of their own; a segment is written append-only, so the
    /// record's place between its segment's creation and last write dates
    /// it ([`SegHeader::stored_at`](super::segment::SegHeader::stored_at)):
    /// never before the segment was taken, exact for the segment's last
    /// record. A record merge eviction (compaction, or the hand keeping
    /// it) or a `touch` to a later TTL moved is dated by the move, as its
    /// new segment knows nothing of the old one.
    pub fn stored_unix(&self, f: &Found) -> i64 {
        let s = self.index.get(f.slot);
        let off = index::slot_off(s);
        self.record_stored_unix(index::slot_seg(s), off + f.item.size() as u32)
    }

    fn record_stored_unix(&self, seg: u32, end: u32) -> i64 {
        self.clock.to_unix(self.segs.header(seg).stored_at(end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::*;

    fn store() -> Store {
        crate::store::test_store(16 << 20, 1_700_000_000)
    }

    fn set(s: &mut Store, k: &str, exp: i64) {
        s.set(&SetArgs::new(SetMode::Set, k.as_bytes(), b"value", 7, exp));
    }

    fn all(s: &Store, f: &ScanFilter, per_step: usize) -> Vec<String> {
        let (mut cur, mut out, mut steps) = (0, Vec::new(), 0);
        while cur != SCAN_DONE {
            let st = s.scan(cur, f, per_step, usize::MAX);
            assert!(st.read <= per_step);
            out.extend(
                st.items
                    .iter()
                    .map(|i| String::from_utf8(i.key.clone()).unwrap()),
            );
            cur = st.next;
            steps += 1;
            assert!(steps < 1_000_000);
        }
        out.sort();
        out
    }

    /// A cursor naming any offset, a record's start or not, resumes at
    /// the first record from there: values that look like headers (0xfe
    /// bytes: a 254-byte key, every flag) are never read as records.
    #[test]
    fn a_cursor_inside_a_record_resumes_at_the_next_one() {
        let mut s = store();
        let v = [0xfeu8; 300];
        for i in 0..20 {
            s.set(&SetArgs::new(
                SetMode::Set,
                format!("k{i:02}").as_bytes(),
                &v,
                0,
                0,
            ));
        }
        let first = s.scan(0, &ScanFilter::default(), usize::MAX, 1);
        let seg = (first.next >> 32) as u32;
        let starts: Vec<u32> = {
            let end = s.segs.header(seg).write_off;
            let mut at = 0;
            let mut v = Vec::new();
            while at < end {
                v.push(at);
                at += s.item_at(seg, at).size() as u32;
            }
            v
        };
        assert_eq!(starts.len(), 20);
        for off in 0..starts[19] + 400 {
            let st = s.scan(
                (seg as u64) << 32 | off as u64,
                &ScanFilter::default(),
                1,
                1,
            );
            let want = starts.iter().position(|&a| a >= off);
            match want {
                Some(i) => {
                    let key = format!("k{i:02}");
                    assert_eq!(st.items.len(), 1, "offset {off}");
                    assert_eq!(st.items[0].key, key.as_bytes(), "offset {off}");
                    assert_eq!(st.items[0].value_len, 300);
                }
                None => assert!(st.items.is_empty(), "offset {off}"),
            }
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"product:123*", b"product:1234:x"));
        assert!(!glob_match(b"product:123*", b"product:124"));
        assert!(glob_match(b"*:?:*", b"user:1:name"));
        assert!(!glob_match(b"*:?:*", b"user:12:name"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(&[b'*'; 200], b"short"));
        assert!(!glob_match(b"a*a*a*a*b", &[b'a'; 250]));
    }

    #[test]
    fn bounded_steps_find_exactly_the_live_matches() {
        let mut s = store();
        for i in 0..3000 {
            set(&mut s, &format!("user:{i}"), 0);
            set(
                &mut s,
                &format!("item:{i}"),
                if i % 2 == 0 { 100 } else { 0 },
            );
        }
        set(&mut s, "user:0", 0); // replaced: its old version is dead
        s.delete(b"user:1", 0);
        set(&mut s, "gone", 1);
        s.clock_mut().advance(2);
        let f = ScanFilter {
            prefix: b"user:".to_vec(),
            ..Default::default()
        };
        let got = all(&s, &f, 100);
        assert_eq!(got.len(), 2999);
        assert!(!got.contains(&"user:1".to_string()));
        let f = ScanFilter {
            pattern: Some(b"item:1?".to_vec()),
            ..Default::default()
        };
        assert_eq!(all(&s, &f, 7).len(), 10);
        let within = ScanFilter {
            prefix: b"item:".to_vec(),
            ttl: TtlFilter::ExpiresWithin(200),
            ..Default::default()
        };
        assert_eq!(all(&s, &within, 50).len(), 1500);
        let none = ScanFilter {
            ttl: TtlFilter::NoTtl,
            ..Default::default()
        };
        assert_eq!(all(&s, &none, 1000).len(), 2999 + 1500);
        assert!(all(&s, &ScanFilter::default(), 1000)
            .iter()
            .all(|k| k != "gone"));
        s.flush_prefix(b"user:2");
        let f = ScanFilter {
            prefix: b"user:2".to_vec(),
            ..Default::default()
        };
        assert!(all(&s, &f, 100).is_empty());
    }

    #[test]
    fn reports_the_item_as_stored() {
        let mut s = store();
        let cas = match s.set(&SetArgs::new(SetMode::Set, b"k", b"abc", 9, 60)) {
            SetOutcome::Stored { cas } => cas,
            o => panic!("{o:?}"),
        };
        // Every segment passed over counts: 1000 covers this store.
        let st = s.scan(0, &ScanFilter::default(), 1000, 10);
        assert_eq!(st.next, SCAN_DONE);
        assert_eq!(
            st.items,
            vec![ScanItem {
                key: b"k".to_vec(),
                value_len: 3,
                flags: 9,
                ttl: 60,
                atime_unix: 1_700_000_000,
                stored_unix: 1_700_000_000,
                cas,
                fetched: false,
            }]
        );
    }

    fn stored(s: &mut Store, k: &str) -> i64 {
        let f = s.find(k.as_bytes()).unwrap();
        s.stored_unix(&f)
    }

    #[test]
    fn store_time_comes_from_the_segment() {
        const T0: i64 = 1_700_000_000;
        let mut s = store();
        set(&mut s, "early", 0);
        set(&mut s, "ttl", 600);
        s.clock_mut().advance(100);
        for i in 0..50 {
            set(&mut s, &format!("mid:{i}"), 0);
        }
        s.clock_mut().advance(100);
        set(&mut s, "late", 0);
        // A segment's last record is dated exactly; the others lie between
        // its creation and that, in write order.
        assert_eq!(stored(&mut s, "late"), T0 + 200);
        let mut dates = vec![stored(&mut s, "early")];
        dates.extend((0..50).map(|i| stored(&mut s, &format!("mid:{i}"))));
        assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
        assert!(
            dates.iter().all(|&t| (T0..T0 + 200).contains(&t)),
            "{dates:?}"
        );
        // Interpolated by position: 51 records of the same size over 200 s.
        assert!(dates[0] < T0 + 10 && dates[50] > T0 + 190, "{dates:?}");
        // The scan reports the same dates.
        let st = s.scan(0, &ScanFilter::default(), 100_000, usize::MAX);
        for i in &st.items {
            let k = String::from_utf8(i.key.clone()).unwrap();
            assert_eq!(i.stored_unix, stored(&mut s, &k), "{k}");
        }
        // A touch that changes the expiry in place keeps the date; one that
        // moves the record (to no TTL: not writable in place) dates the move.
        s.clock_mut().advance(50);
        let before = stored(&mut s, "ttl");
        assert!(s.touch(b"ttl", 300).is_some());
        assert_eq!(stored(&mut s, "ttl"), before);
        assert!(s.touch(b"ttl", 0).is_some());
        assert_eq!(stored(&mut s, "ttl"), T0 + 250);
        // Replacing a key dates the new version.
        set(&mut s, "early", 0);
        assert_eq!(stored(&mut s, "early"), T0 + 250);
    }

    #[test]
    fn empty_segments_count_towards_a_step() {
        let s = store();
        let (mut cur, mut steps) = (0, 0);
        while cur != SCAN_DONE {
            let st = s.scan(cur, &ScanFilter::default(), 4, 10);
            assert!(st.items.is_empty() && st.read <= 4);
            cur = st.next;
            steps += 1;
        }
        // 16 MiB of 1 MiB segments: several bounded steps, not one long one.
        assert!(steps >= 3, "{steps}");
    }
}
