//! memcached's semantics, once for all three protocols: what each
//! operation does to the store and how `stats` counts it. The renderers
//! (`text.rs`, `meta.rs`, `binary.rs`) call these and only write replies.
//!
//! Counting follows memcached 1.6's `proto_text.c`/`proto_bin.c`: a get
//! counts `cmd_get` and a hit or a miss; a get-and-touch or touch counts
//! `cmd_touch` and a touch hit or miss; a store counts `cmd_set`, and a
//! CAS store a `cas_hits`, `cas_badval` or `cas_misses`; incr/decr count a
//! hit or a miss, and an auto-created counter neither.

use super::shard::Shard;
use crate::protocol::{Refusal, SetMode as Mode, StoreCmd};
use crate::store::classes;
use crate::store::notes::{self, Note};
use crate::store::{DeleteOutcome, DeltaOutcome, Found, SetArgs, SetMode, SetOutcome};

/// The store's mode for a protocol's.
pub fn store_mode(m: Mode) -> SetMode {
    match m {
        Mode::Set => SetMode::Set,
        Mode::Add => SetMode::Add,
        Mode::Replace => SetMode::Replace,
        Mode::Append => SetMode::Append,
        Mode::Prepend => SetMode::Prepend,
    }
}

/// Whether a refused store (too large, or out of memory) removes the
/// key's old value, so that a reader never sees the value the client
/// meant to replace. memcached: a text `set` does ("Avoid stale data
/// persisting in cache because we failed alloc", `process_update_command`),
/// a binary SET/SETQ does (`process_bin_update`), and an `ms` does in every
/// mode (`process_mset_command`); `add`, `replace`, `append`, `prepend` and
/// `cas` in text and binary leave it.
pub fn refusal_drops_old(cmd: StoreCmd, mode: Mode) -> bool {
    match cmd {
        StoreCmd::Meta => true,
        StoreCmd::Cas => false,
        StoreCmd::Plain | StoreCmd::Binary => mode == Mode::Set,
    }
}

/// An incr/decr's fallback when the key is missing (binary INCREMENT with
/// an exptime other than 0xffffffff, meta `ma` with `N`): store `initial`
/// as the counter, with `exptime`.
#[derive(Clone, Copy, Debug)]
pub struct AutoCreate {
    /// The counter's first value.
    pub initial: u64,
    /// Its exptime: relative seconds up to 30 days, absolute Unix time
    /// beyond, 0 = never.
    pub exptime: i64,
}

impl Shard {
    /// Looks up one key for a get (`touch` None) or a get-and-touch
    /// (`touch` = the new exptime, as `AutoCreate::exptime`), counted.
    /// A touched item is also bumped, as a read.
    pub fn fetch(&mut self, key: &[u8], touch: Option<i64>) -> Option<Found> {
        let found = match touch {
            None => self.store.get(key),
            Some(e) => {
                let f = self.store.find_read(key).and_then(|f| self.retouch(&f, e));
                if let Some(f) = &f {
                    self.store.bump(f);
                }
                f
            }
        };
        self.count_fetch(found.is_some(), touch.is_some());
        found
    }

    /// A new exptime for a found item (touch, gat, `mg T`). An exptime
    /// already past (negative, or an absolute time before now) still
    /// answers as a hit, as memcached's `item_touch` does: the item stays
    /// linked with that exptime, this reply reads it (gat returns the value
    /// once) and the next lookup finds it expired. None only if moving the
    /// item ran out of memory.
    pub fn retouch(&mut self, f: &Found, exptime: i64) -> Option<Found> {
        self.store.touch_found(f, exptime)
    }

    /// The unique a store request carries, as memcached reads it off the
    /// new item (`ITEM_get_cas`): with CAS off (`-C`) every item's is 0,
    /// so a store's unique is 0 whatever was sent. Text `cas` and meta
    /// set/replace with `C` then fail as a unique of 0 does (EXISTS or
    /// NOT_FOUND); append, prepend and binary stores store plainly.
    pub fn store_unique(&self, given: u64) -> u64 {
        if self.store.cas_enabled() {
            given
        } else {
            0
        }
    }

    /// Whether a key holds a live item, for a CAS unique of 0 in text and
    /// meta: memcached hands out no 0, so such a unique matches nothing
    /// (NOT_FOUND / NF when missing, EXISTS / EX when present). Binary's 0
    /// means "no check" and never comes here.
    pub fn cas_zero_present(&mut self, key: &[u8]) -> bool {
        self.store.find(key).is_some()
    }

    /// A store with a CAS unique of 0 (see `cas_zero_present`), counted
    /// as a CAS that missed or mismatched.
    pub fn store_cas_zero(&mut self, key: &[u8]) -> SetOutcome {
        self.c.cmd_set += 1;
        let r = if self.cas_zero_present(key) {
            SetOutcome::Exists
        } else {
            SetOutcome::NotFound
        };
        self.count_set(&r, true);
        r
    }

    /// Counts a read that was (`touch`) or was not also a touch.
    pub fn count_fetch(&mut self, hit: bool, touch: bool) {
        let c = &mut self.c;
        match (touch, hit) {
            (false, true) => c.get_hits += 1,
            (false, false) => c.get_misses += 1,
            (true, true) => c.touch_hits += 1,
            (true, false) => c.touch_misses += 1,
        }
        if touch {
            c.cmd_touch += 1;
        } else {
            c.cmd_get += 1;
        }
    }

    /// `touch`: sets a key's exptime, counted. None if missing.
    pub fn touch(&mut self, key: &[u8], exptime: i64) -> Option<Found> {
        let f = self.store.find(key).and_then(|f| self.retouch(&f, exptime));
        self.count_fetch(f.is_some(), true);
        f
    }

    /// A storage command, counted. `cmd` says which command asked (for
    /// the refusal rule and CAS counting: a `cas` or a store carrying a
    /// CAS unique counts as a CAS).
    pub fn store_item(&mut self, a: &SetArgs, cmd: StoreCmd, mode: Mode) -> SetOutcome {
        self.c.cmd_set += 1;
        let r = self.store.set(a);
        if self.store.notes.wants(notes::MUTATIONS) {
            self.note_store(a, cmd, mode, &r);
        }
        let refused = matches!(r, SetOutcome::TooLarge | SetOutcome::NoMemory);
        // memcached's proto_bin counts neither refusal.
        if !(refused && cmd == StoreCmd::Binary) {
            self.count_set(&r, a.is_cas_store());
        }
        if refused && refusal_drops_old(cmd, mode) {
            self.drop_key(a.key);
        }
        r
    }

    /// A storage command whose data block was refused and never read
    /// (over the item size limit, or no memory to hold it while it
    /// arrived): counts `store_too_large` or `store_no_memory` (not for
    /// binary, as memcached's proto_bin), logs it and applies the refusal
    /// rule, as memcached's process_update_command does when its item
    /// allocation fails. A refusal during the read (memcached's chunked
    /// items) changes nothing: memcached's conn_nread counts and logs
    /// nothing and leaves the old value.
    pub fn refuse_block(&mut self, key: &[u8], cmd: StoreCmd, mode: Mode, refusal: Refusal) {
        let outcome = match refusal {
            Refusal::TooLarge => SetOutcome::TooLarge,
            Refusal::NoMemory => SetOutcome::NoMemory,
            Refusal::NoMemoryReading => return,
        };
        if self.store.notes.wants(notes::MUTATIONS) {
            let a = SetArgs::new(store_mode(mode), key, b"", 0, 0);
            self.note_store(&a, cmd, mode, &outcome);
        }
        if cmd != StoreCmd::Binary {
            match outcome {
                SetOutcome::TooLarge => self.c.store_too_large += 1,
                _ => self.c.store_no_memory += 1,
            }
        }
        if refusal_drops_old(cmd, mode) {
            self.drop_key(key);
        }
    }

    /// memcached's `item_store` log entry (do_store_item's LOGGER_LOG):
    /// the stored item's ttl, class and size when stored (an append's
    /// whole value), else those the new item would have had.
    fn note_store(&mut self, a: &SetArgs, cmd: StoreCmd, mode: Mode, r: &SetOutcome) {
        let status = match r {
            SetOutcome::Stored { .. } => "stored",
            SetOutcome::NotStored => "not_stored",
            SetOutcome::Exists => "exists",
            SetOutcome::NotFound => "not_found",
            SetOutcome::TooLarge => "too_large",
            SetOutcome::NoMemory => "no_memory",
        };
        let cmd = match mode {
            _ if cmd == StoreCmd::Cas || a.is_cas_store() => "cas",
            Mode::Set => "set",
            Mode::Add => "add",
            Mode::Replace => "replace",
            Mode::Append => "append",
            Mode::Prepend => "prepend",
        };
        let stored = matches!(r, SetOutcome::Stored { .. });
        let (size, expire, clsid) = match self.store.peek(a.key).filter(|_| stored) {
            Some(p) => p,
            None => {
                let m = classes::memcached_size(a.key.len(), a.value.len(), a.flags);
                (
                    a.value.len(),
                    self.store.clock().expire_at(a.exptime),
                    classes::class_of(m),
                )
            }
        };
        let now = self.store.clock().now();
        self.store.notes.notes.push(Note::Store {
            key: a.key.into(),
            status,
            cmd,
            ttl: if expire == 0 {
                0
            } else {
                expire.wrapping_sub(now)
            },
            clsid,
            size,
        });
    }

    fn drop_key(&mut self, key: &[u8]) {
        if let Some(f) = self.store.find(key) {
            self.store.remove(&f);
        }
    }

    /// Counts a storage outcome the way memcached's stats do.
    pub fn count_set(&mut self, r: &SetOutcome, with_cas: bool) {
        match r {
            SetOutcome::Stored { .. } if with_cas => self.c.cas_hits += 1,
            SetOutcome::Exists if with_cas => self.c.cas_badval += 1,
            SetOutcome::NotFound => self.c.cas_misses += 1,
            SetOutcome::TooLarge => self.c.store_too_large += 1,
            SetOutcome::NoMemory => self.c.store_no_memory += 1,
            _ => {}
        }
    }

    /// Counts a delete's outcome (an `EXISTS` counts nothing).
    pub fn count_delete(&mut self, r: DeleteOutcome) {
        match r {
            DeleteOutcome::Deleted => self.c.delete_hits += 1,
            DeleteOutcome::NotFound => self.c.delete_misses += 1,
            DeleteOutcome::Exists => {}
        }
    }

    /// `delete`, with a CAS unique to match (0 = none), counted.
    pub fn delete(&mut self, key: &[u8], cas: u64) -> DeleteOutcome {
        let r = self.store.delete(key, cas);
        self.count_delete(r);
        r
    }

    /// incr (`incr` true) or decr by `delta`, with a CAS unique to match
    /// (0 = none); when the key is missing and `create` is given, stores
    /// its initial value instead. Counted.
    pub fn arith(
        &mut self,
        key: &[u8],
        incr: bool,
        delta: u64,
        cas: u64,
        create: Option<AutoCreate>,
    ) -> DeltaOutcome {
        let r = self.store.delta(key, incr, delta, cas);
        match (r, create) {
            (DeltaOutcome::NotFound, Some(cr)) => {
                let mut b = itoa::Buffer::new();
                let a = SetArgs::new(
                    SetMode::Add,
                    key,
                    b.format(cr.initial).as_bytes(),
                    0,
                    cr.exptime,
                );
                match self.store.set(&a) {
                    SetOutcome::Stored { cas } => DeltaOutcome::Value {
                        value: cr.initial,
                        cas,
                    },
                    SetOutcome::NoMemory | SetOutcome::TooLarge => DeltaOutcome::NoMemory,
                    // Created by no one else on this shard: unreachable
                    // in practice, but a miss is the honest answer.
                    _ => DeltaOutcome::NotFound,
                }
            }
            (DeltaOutcome::Value { .. }, _) => {
                if incr {
                    self.c.incr_hits += 1;
                } else {
                    self.c.decr_hits += 1;
                }
                r
            }
            (DeltaOutcome::NotFound, None) => {
                if incr {
                    self.c.incr_misses += 1;
                } else {
                    self.c.decr_misses += 1;
                }
                r
            }
            _ => r,
        }
    }

    /// `flush_all [delay]`: everything stored up to now (or up to `delay`
    /// seconds from now, as an exptime) becomes invisible. Counted.
    pub fn flush(&mut self, delay: i64) {
        self.c.cmd_flush += 1;
        self.store.flush(delay);
        // Before the reply: other workers stop reading this store directly.
        self.store.refresh_gate();
    }

    /// `flush_prefix <prefix>`: every item stored so far under the prefix
    /// becomes invisible (`Store::flush_prefix`). Counted.
    pub fn flush_prefix(&mut self, prefix: &[u8]) {
        self.c.cmd_flush_prefix += 1;
        self.store.flush_prefix(prefix);
        self.store.refresh_gate();
    }

    /// `cache_memlimit <mb>`: this shard's share of the new limit. False
    /// if the store cannot take it.
    pub fn set_memlimit(&mut self, mb: u32) -> bool {
        let share = (mb as usize) * (1 << 20) / self.shards.max(1);
        self.store.set_memory_limit(share)
    }
}
