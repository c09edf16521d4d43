//! Serving a read of another worker's key from that worker's memory
//! (`-o foreign_reads`, on by default with more than one worker): the
//! dispatch point's third answer besides "here" and "hop". The store side,
//! and why it is sound without locks, is store/foreign.rs.
//!
//! Only plain reads qualify: text `get`/`gets`, one key or each key of a
//! multi-get. A read gives way to the hop when the connection has a write
//! to some owner still unanswered (`Conn::write_fence`: read-your-writes),
//! when `watch fetchers` is on (the owner logs its fetches), and whenever
//! the store side declines (store/foreign.rs `Fallback`). The reply is
//! made here and queued behind earlier replies like a local one.

use super::hop::Msg;
use super::watch;
use super::worker::Worker;
use crate::exec::reply::push_num;
use crate::exec::value_ref::ZC_MIN;
use crate::store::classes;
use crate::store::foreign::Read;

/// Access notes per owner before they are sent without waiting for the
/// turn's end.
const ACCESS_BATCH: usize = 256;

impl Worker {
    /// Tries to answer text `get`/`gets` of `key`, owned by worker `to`,
    /// for connection `idx` from `to`'s memory. False if the read must hop
    /// instead (nothing was written or counted then).
    pub(super) fn foreign_get(&mut self, idx: u32, to: usize, key: &[u8], cas: bool) -> bool {
        let Some(f) = &self.shared.foreign else {
            return false;
        };
        let Some(view) = f.views[to].get() else {
            return false;
        };
        let hash = self.shard.store.hash(key);
        let c = self.conns[idx as usize].as_mut().expect("live connection");
        if c.write_fence > c.base_seq || watch::kinds() & watch::FETCHERS != 0 {
            return false;
        }
        if !c.key_fences.is_empty() {
            let base = c.base_seq;
            c.key_fences.retain(|&(_, end)| end > base);
            if c.key_fences.iter().any(|&(h, _)| h == hash) {
                return false;
            }
        }
        let now = self.shard.store.now();
        let out = self.conns[idx as usize]
            .as_mut()
            .expect("live connection")
            .reply_buf();
        let section = f.readers.enter(self.id);
        let r = view.read(&section, hash, key, now, ZC_MIN, |k, v, h| {
            out.extend_from_slice(b"VALUE ");
            out.extend_from_slice(k);
            out.push(b' ');
            push_num(out, h.flags);
            out.push(b' ');
            push_num(out, h.vlen);
            if cas {
                out.push(b' ');
                push_num(out, h.cas);
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        });
        drop(section);
        let hit = match r {
            Read::Hit(h) => {
                let m = classes::memcached_size(h.klen, h.vlen, h.flags);
                self.shard.store.classes.at(classes::class_of(m)).get_hits += 1;
                if h.tell_owner {
                    self.note_access(to, (h.hash, h.seg, h.off));
                }
                true
            }
            Read::Miss => false,
            Read::Fallback(_) => {
                self.shard.c.foreign_read_fallbacks += 1;
                return false;
            }
        };
        self.shard.c.foreign_reads += 1;
        self.shard.count_fetch(hit, false);
        self.shard.detail.get(key, hit);
        true
    }

    fn note_access(&mut self, to: usize, at: (u64, u32, u32)) {
        self.accessed[to].push(at);
        if self.accessed[to].len() >= ACCESS_BATCH {
            self.send_accessed(to);
        }
    }

    /// Sends each owner the accesses noted this turn.
    pub(super) fn flush_accessed(&mut self) {
        for to in 0..self.accessed.len() {
            if !self.accessed[to].is_empty() {
                self.send_accessed(to);
            }
        }
    }

    /// Lossy on purpose: a full queue drops the notes rather than holding
    /// this worker up, and a sleeping owner is not woken for them (merge
    /// eviction needs "read since the hand last passed", not exact
    /// counts; Caffeine's read buffers drop the same way).
    fn send_accessed(&mut self, to: usize) {
        let hits = std::mem::take(&mut self.accessed[to]);
        let _ = self
            .shared
            .mesh
            .queue(self.id, to)
            .push(Msg::Accessed { hits });
    }
}
