//! memcached's operations on top of the store's primitives, with its exact
//! semantics (see memcached's `do_store_item` and `do_add_delta`).

use super::classes;
use super::item::{ItemMeta, FETCHED, ITEM_STATE, KEY_BINARY, STALE, WIN_SENT};
use super::{Found, Store, WriteError};

/// Which storage command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetMode {
    /// Store whatever was there.
    Set,
    /// Store only if the key is missing.
    Add,
    /// Store only if the key is present.
    Replace,
    /// Add the value after the present one's.
    Append,
    /// Add the value before the present one's.
    Prepend,
}

/// A storage command's arguments.
#[derive(Clone, Copy, Debug)]
pub struct SetArgs<'a> {
    /// The key (at most 250 bytes).
    pub key: &'a [u8],
    /// The data block.
    pub value: &'a [u8],
    /// The client's opaque flags.
    pub flags: u32,
    /// The client's exptime (0 never, negative expired, ≤ 30 days relative).
    pub exptime: i64,
    /// The client's CAS unique, 0 for none: what it means depends on
    /// the mode (`is_cas_store`).
    pub cas: u64,
    /// Which command.
    pub mode: SetMode,
    /// Meta `I` with `C`: a CAS lower than the item's stores the value as
    /// stale instead of failing.
    pub invalidate: bool,
    /// Meta `E`: the CAS the new item gets.
    pub new_cas: Option<u64>,
    /// Meta `N` on append/prepend: create the item if missing, with this exptime.
    pub vivify: Option<i64>,
    /// Meta `mg N`: the new item is the placeholder whose win token this
    /// request hands out, so it is linked already marked (WIN_SENT): no
    /// reader, a foreign one included, may see it unmarked in between.
    pub win_sent: bool,
    /// Meta `b`: the key came base64 (`item::KEY_BINARY`).
    pub key_binary: bool,
}

impl<'a> SetArgs<'a> {
    /// A plain command: no CAS, no meta flags.
    pub fn new(mode: SetMode, key: &'a [u8], value: &'a [u8], flags: u32, exptime: i64) -> Self {
        SetArgs {
            key,
            value,
            flags,
            exptime,
            cas: 0,
            mode,
            invalidate: false,
            new_cas: None,
            vivify: None,
            win_sent: false,
            key_binary: false,
        }
    }

    /// Whether this is a CAS store, memcached's NREAD_CAS: a unique with
    /// set or replace (do_store_item; meta's ms upgrades those two modes
    /// only). Such a store answers NOT_FOUND when the key is missing and
    /// EXISTS unless the unique matches, and is what `cas_hits`,
    /// `cas_badval` and `cas_misses` count. Add ignores a unique; append
    /// and prepend compare it only with an item that exists.
    pub fn is_cas_store(&self) -> bool {
        self.cas != 0 && matches!(self.mode, SetMode::Set | SetMode::Replace)
    }
}

/// What a storage command did (memcached's `STORED`, `NOT_STORED`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// Stored; the new item's CAS.
    Stored {
        /// The stored item's CAS.
        cas: u64,
    },
    /// The mode's condition failed (add of a present key, replace or
    /// append of a missing one).
    NotStored,
    /// The CAS given no longer matches.
    Exists,
    /// A CAS was given for a missing key.
    NotFound,
    /// Larger than the item size limit (`-I`).
    TooLarge,
    /// No memory could be freed for it (`-M`, or everything pinned).
    NoMemory,
}

/// What a delete did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Removed (or, for meta `I`, marked stale).
    Deleted,
    /// No such key.
    NotFound,
    /// The CAS given no longer matches.
    Exists,
}

/// What incr or decr did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeltaOutcome {
    /// The new value and the new item's CAS.
    Value {
        /// The counter after the change.
        value: u64,
        /// The new item's CAS.
        cas: u64,
    },
    /// No such key.
    NotFound,
    /// The value is not a decimal number memcached would accept.
    NonNumeric,
    /// The CAS given no longer matches.
    Exists,
    /// No memory for the new value.
    NoMemory,
}

/// memcached's `safe_strtoull` on an item's value: optional leading white
/// space, an optional sign, digits, then the end or more white space; a
/// negative number or an overflow is not numeric.
pub fn parse_counter(v: &[u8]) -> Option<u64> {
    let mut i = 0;
    while i < v.len() && is_c_space(v[i]) {
        i += 1;
    }
    let neg = match v.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut n: u64 = 0;
    while i < v.len() && v[i].is_ascii_digit() {
        n = n.checked_mul(10)?.checked_add((v[i] - b'0') as u64)?;
        i += 1;
    }
    if i == start {
        return None;
    }
    // The stored data is followed by "\r\n" in memcached, so the end of the
    // value counts as white space.
    if i < v.len() && !is_c_space(v[i]) {
        return None;
    }
    if neg {
        if n == 0 {
            return Some(0);
        }
        // strtoull negates; memcached refuses what then looks negative.
        let r = n.wrapping_neg();
        return if (r as i64) < 0 { None } else { Some(r) };
    }
    Some(n)
}

fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

impl Store {
    /// A read that counts as an access ([`Store::find_read`]).
    pub fn get(&mut self, key: &[u8]) -> Option<Found> {
        let f = self.find_read(key)?;
        self.bump(&f);
        self.classes.at(classes::of_item(&f.item).0).get_hits += 1;
        Some(f)
    }

    /// set, add, replace, append, prepend and cas.
    pub fn set(&mut self, a: &SetArgs) -> SetOutcome {
        let expire = self.clock.expire_at(a.exptime);
        let mut meta = ItemMeta {
            expire,
            flags: a.flags,
            cas: a.new_cas,
            iflags: if a.win_sent { WIN_SENT } else { 0 }
                | if a.key_binary { KEY_BINARY } else { 0 },
        };
        if !self.admits(a.key.len(), a.value.len(), &meta) {
            // memcached drops the old value when a set is refused for size.
            if a.mode == SetMode::Set {
                if let Some(old) = self.find(a.key) {
                    self.remove(&old);
                }
            }
            return SetOutcome::TooLarge;
        }
        let size = classes::memcached_size(a.key.len(), a.value.len(), a.flags);
        self.classes.at(classes::class_of(size)).cmd_set += 1;
        let cas_store = a.is_cas_store();
        let old = self.find(a.key);
        let Some(old) = old else {
            if cas_store {
                return SetOutcome::NotFound;
            }
            return match (a.mode, a.vivify) {
                (SetMode::Set | SetMode::Add, _) => self.store_new(a.key, a.value, &[], meta),
                (SetMode::Append | SetMode::Prepend, Some(exptime)) => {
                    meta.expire = self.clock.expire_at(exptime);
                    self.store_new(a.key, a.value, &[], meta)
                }
                _ => SetOutcome::NotStored,
            };
        };
        if a.mode == SetMode::Add {
            self.bump(&old);
            return SetOutcome::NotStored;
        }
        let old_cas = self.client_cas(&old);
        let mut stale_store = false;
        if a.cas != 0 && a.cas != old_cas {
            if a.invalidate && a.cas < old_cas && cas_store {
                stale_store = true;
            } else {
                if cas_store {
                    self.classes.at(classes::of_item(&old.item).0).cas_badval += 1;
                }
                return SetOutcome::Exists;
            }
        }
        if cas_store {
            self.classes.at(classes::of_item(&old.item).0).cas_hits += 1;
        }
        if matches!(a.mode, SetMode::Set | SetMode::Replace) {
            if stale_store {
                meta.expire = old.item.expire();
                meta.iflags |= STALE | (old.item.iflags() & WIN_SENT);
            }
            return self.store_new(a.key, a.value, &[], meta);
        }
        // Append or prepend.
        let meta = ItemMeta {
            expire: old.item.expire(),
            flags: old.item.flags(),
            cas: a.new_cas,
            iflags: 0,
        };
        if !self.admits(a.key.len(), old.item.vlen() + a.value.len(), &meta) {
            return SetOutcome::NotStored;
        }
        let oldv = self.take_scratch(&[old.item.value()]);
        let r = if a.mode == SetMode::Append {
            self.write(a.key, &oldv, a.value, meta)
        } else {
            self.write(a.key, a.value, &oldv, meta)
        };
        self.give_scratch(oldv);
        match r {
            Ok(f) => {
                self.stats.total_items += 1;
                SetOutcome::Stored {
                    cas: self.client_cas(&f),
                }
            }
            Err(WriteError::NoMemory) => SetOutcome::NotStored,
            Err(WriteError::TooLarge) => SetOutcome::NotStored,
        }
    }

    fn store_new(&mut self, key: &[u8], v1: &[u8], v2: &[u8], meta: ItemMeta) -> SetOutcome {
        // An item stored already expired is written all the same, as
        // memcached links it: it has a CAS, counts in total_items and
        // curr_items, and the next lookup finds it expired (get_expired)
        // unless the crawler reclaimed it first.
        match self.write(key, v1, v2, meta) {
            Ok(f) => {
                self.stats.total_items += 1;
                SetOutcome::Stored {
                    cas: self.client_cas(&f),
                }
            }
            Err(WriteError::TooLarge) => SetOutcome::TooLarge,
            Err(WriteError::NoMemory) => {
                if let Some(old) = self.find(key) {
                    self.remove(&old);
                }
                SetOutcome::NoMemory
            }
        }
    }

    /// delete, with an optional CAS (binary protocol, meta `C`).
    pub fn delete(&mut self, key: &[u8], cas: u64) -> DeleteOutcome {
        match self.find(key) {
            None => DeleteOutcome::NotFound,
            Some(f) => {
                if cas != 0 && cas != self.client_cas(&f) {
                    return DeleteOutcome::Exists;
                }
                self.classes.at(classes::of_item(&f.item).0).delete_hits += 1;
                self.remove(&f);
                DeleteOutcome::Deleted
            }
        }
    }

    /// Meta `md ... I`: marks an item stale instead of deleting it, drops
    /// its win token, gives it a new CAS, and optionally a new TTL, as
    /// memcached's process_mdelete_command ("mark the stale bit, bump CAS,
    /// and update exptime"): a writer still holding the old CAS then lands
    /// as stale (`ms ... I`), and the next `mg` wins the recache. A CAS
    /// here is where the record sits, so a new CAS is a new record.
    pub fn invalidate(&mut self, key: &[u8], cas: u64, exptime: Option<i64>) -> DeleteOutcome {
        let Some(f) = self.find(key) else {
            return DeleteOutcome::NotFound;
        };
        if cas != 0 && cas != self.client_cas(&f) {
            return DeleteOutcome::Exists;
        }
        let it = f.item;
        let meta = ItemMeta {
            expire: exptime.map_or(it.expire(), |e| self.clock.expire_at(e)),
            flags: it.flags(),
            cas: None,
            iflags: (it.iflags() & (FETCHED | KEY_BINARY)) | STALE,
        };
        self.rewrite(&f, meta);
        DeleteOutcome::Deleted
    }

    /// touch / gat: a new exptime for an existing item. The item keeps its CAS.
    pub fn touch(&mut self, key: &[u8], exptime: i64) -> Option<Found> {
        let f = self.find(key)?;
        self.touch_found(&f, exptime)
    }

    /// Sets a found item's exptime; returns the item as it now stands (a
    /// past exptime included: the caller's reply may still read it), or
    /// None if memory ran out moving it.
    pub fn touch_found(&mut self, f: &Found, exptime: i64) -> Option<Found> {
        let expire = self.clock.expire_at(exptime);
        self.classes.at(classes::of_item(&f.item).0).touch_hits += 1;
        // A past exptime (EXPIRED) is kept like any other, as memcached's
        // item_touch: the item stays linked and the next lookup finds it
        // expired (get_expired).
        let it = f.item;
        let seg = super::index::slot_seg(self.index.get(f.slot));
        let seg_expire = self.segs.header(seg).expire_at;
        // In place if the record has room for an expiry and its segment will
        // not be freed before the new time.
        if it.expire() != 0 && expire != 0 && expire <= seg_expire {
            {
                // Other workers' foreign reads discard what overlaps this.
                let _w = self.index.shared().write_begin();
                it.set_expire_in_place(expire);
            }
            // An earlier expiry than the segment knew: the crawler looks.
            self.segs.header_mut(seg).note_expire(expire);
            return Some(*f);
        }
        let meta = ItemMeta {
            expire,
            flags: it.flags(),
            cas: Some(self.cas_of(f)),
            iflags: it.iflags() & ITEM_STATE,
        };
        self.rewrite(f, meta)
    }

    /// Writes a found item again, with `meta`, in place of the old record
    /// (its access time kept); None, and the item gone, if memory ran out.
    fn rewrite(&mut self, f: &Found, meta: ItemMeta) -> Option<Found> {
        let it = f.item;
        let atime = it.atime();
        let v = self.take_scratch(&[it.key(), it.value()]);
        let klen = it.klen();
        let r = self.write(&v[..klen], &v[klen..], &[], meta);
        // The key from the copy: the merges the write ran (to make room,
        // or assisting) may have freed and reused the old record's segment.
        let r = match r {
            Ok(nf) => {
                nf.item.set_atime(atime);
                Some(nf)
            }
            Err(_) => {
                if let Some(old) = self.find(&v[..klen]) {
                    self.remove(&old);
                }
                None
            }
        };
        self.give_scratch(v);
        r
    }

    /// incr / decr. `cas` 0 = no check.
    pub fn delta(&mut self, key: &[u8], incr: bool, delta: u64, cas: u64) -> DeltaOutcome {
        let Some(f) = self.find(key) else {
            return DeltaOutcome::NotFound;
        };
        if cas != 0 && cas != self.client_cas(&f) {
            return DeltaOutcome::Exists;
        }
        let Some(cur) = parse_counter(f.item.value()).filter(|_| f.item.vlen() > 0) else {
            return DeltaOutcome::NonNumeric;
        };
        let c = self.classes.at(classes::of_item(&f.item).0);
        if incr {
            c.incr_hits += 1;
        } else {
            c.decr_hits += 1;
        }
        let value = if incr {
            cur.wrapping_add(delta)
        } else {
            cur.saturating_sub(delta)
        };
        let mut buf = itoa::Buffer::new();
        let digits = buf.format(value).as_bytes();
        // memcached rewrites in place when the number still fits, padding
        // with spaces, so the value keeps its length; we write a new record
        // (new CAS) with the same bytes memcached would hold.
        let old_len = f.item.vlen();
        let mut v = self.take_scratch(&[digits]);
        if digits.len() < old_len {
            v.resize(old_len, b' ');
        }
        // Item flags as memcached leaves them: rewritten in place, the item
        // keeps them (fetched, stale, win sent); outgrown, it is a new item
        // with none (`mg h` then answers h0).
        let in_place = digits.len() <= old_len;
        let meta = ItemMeta {
            expire: f.item.expire(),
            flags: f.item.flags(),
            cas: None,
            iflags: if in_place {
                f.item.iflags() & ITEM_STATE
            } else {
                0
            },
        };
        let r = self.write(key, &v, &[], meta);
        self.give_scratch(v);
        match r {
            Ok(nf) => {
                // memcached's do_add_delta replaces the item (a link) only
                // when the number outgrows it; else it rewrites in place.
                if !in_place {
                    self.stats.total_items += 1;
                }
                self.bump_access(&nf);
                DeltaOutcome::Value {
                    value,
                    cas: self.client_cas(&nf),
                }
            }
            Err(_) => DeltaOutcome::NoMemory,
        }
    }

    /// Seconds an item has left (-1 = never), as meta `t` reports it.
    pub fn ttl_left(&self, f: &Found) -> i64 {
        match f.item.expire() {
            0 => -1,
            e => e.saturating_sub(self.clock.now()) as i64,
        }
    }
}
