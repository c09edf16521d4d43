//! Serving a read of another worker's key from that worker's memory
//! (`-o foreign_reads`, on by default with more than one worker): the
//! dispatch point's third answer besides "here" and "hop". The store side,
//! and why it is sound without locks, is store/foreign.rs.
//!
//! Only reads that change nothing qualify: text `get`/`gets` (one key, or
//! each key of a multi-get), meta `mg` without `N`, `T`, `R` (and not
//! when it would hand out a win token, nor with `h` or `l`, which the
//! owner answers after this worker's access notes), binary GET, GETQ,
//! GETK, GETKQ. A read gives way to the hop when the connection has a
//! write of that key (or a flush) still unanswered (`Conn::key_fences`,
//! `Conn::write_fence`: read-your-writes),
//! when `watch fetchers` is on (the owner logs its fetches), and whenever
//! the store side declines (store/foreign.rs `Fallback`). The reply is
//! made here and queued behind earlier replies like a local one.

use super::dispatch::Request;
use super::hop::Msg;
use super::watch;
use super::worker::Worker;
use crate::exec;
use crate::exec::reply::push_num;
use crate::exec::value_ref::ZC_MIN;
use crate::protocol::binary::{self, Kind};
use crate::protocol::meta::MetaRequest;
use crate::protocol::text;
use crate::store::classes;
use crate::store::foreign::{Hit, Read};
use crate::store::item::FETCHED;
use crate::store::segment;
use std::sync::atomic::Ordering;

/// Access notes per owner before they are sent without waiting for the
/// turn's end.
const ACCESS_BATCH: usize = 256;

/// Which reply a foreign read writes: the protocol's own renderers, as the
/// owner's path would.
pub(super) enum Reply<'r, 'a> {
    /// Text `get` (`cas` false) or `gets`, one key of it.
    Text { cas: bool },
    /// A meta `mg` that only reads (`exec::meta::reads_only`).
    Meta(&'r MetaRequest<'a>),
    /// Binary GET, GETQ, GETK or GETKQ.
    Binary(&'r binary::Request<'a>),
}

impl Reply<'_, '_> {
    /// Whether a request may be served by a foreign read at all.
    pub(super) fn for_request<'r, 'a>(req: &'r Request<'a>) -> Option<Reply<'r, 'a>> {
        match req {
            Request::Text(text::Request::Meta(m))
                if exec::meta::reads_only(m) && !exec::meta::asks_access(m) =>
            {
                Some(Reply::Meta(m))
            }
            Request::Binary(Ok(r)) if r.cmd.kind == Kind::Get => Some(Reply::Binary(r)),
            _ => None,
        }
    }

    /// Writes a hit's reply; false (having written nothing) if the reply
    /// would change the item, which only the owner may do.
    fn hit(&self, out: &mut Vec<u8>, k: &[u8], v: &[u8], h: &Hit) -> bool {
        match self {
            Reply::Text { cas } => {
                out.extend_from_slice(b"VALUE ");
                out.extend_from_slice(k);
                out.push(b' ');
                push_num(out, h.flags);
                out.push(b' ');
                push_num(out, h.vlen);
                if *cas {
                    out.push(b' ');
                    push_num(out, h.cas);
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(v);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Meta(m) => {
                if exec::meta::would_win(h.iflags) {
                    return false;
                }
                let facts = exec::meta::HitFacts {
                    vlen: h.vlen,
                    flags: h.flags,
                    cas: h.cas,
                    ttl: match h.expire {
                        0 => -1,
                        e => e.saturating_sub(h.now) as i64,
                    },
                    idle: h.idle,
                    was_fetched: h.iflags & FETCHED != 0,
                    iflags: h.iflags,
                };
                exec::meta::render_hit(m, &facts, false, out, |o| o.extend_from_slice(v));
            }
            Reply::Binary(r) => {
                exec::binary::get_hit_head(r, out, h.flags, h.cas, v.len());
                out.extend_from_slice(v);
            }
        }
        true
    }

    fn miss(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Text { .. } => {}
            Reply::Meta(m) => exec::meta::render_miss(m, out),
            Reply::Binary(r) => exec::binary::get_miss(r, out),
        }
    }
}

impl Worker {
    /// Tries to answer a read of `key`, owned by worker `to`, for
    /// connection `idx` from `to`'s memory, writing `reply`'s bytes. False
    /// if the read must hop instead (nothing was written or counted then).
    pub(super) fn foreign_get(&mut self, idx: u32, to: usize, key: &[u8], reply: Reply) -> bool {
        let Some(f) = &self.shared.foreign else {
            return false;
        };
        let Some(view) = f.views[to].get() else {
            return false;
        };
        let hash = self.shard.store.hash(key);
        let c = self.conns[idx as usize].as_mut().expect("live connection");
        if watch::kinds() & watch::FETCHERS != 0 || !c.read_may_pass(hash) {
            return false;
        }
        let out = c.reply_buf();
        let section = f.readers.enter(self.id);
        let r = view.read(&section, hash, key, ZC_MIN, |k, v, h| {
            reply.hit(out, k, v, h)
        });
        drop(section);
        let hit = match r {
            Read::Hit(h) => {
                // As the owner's path counts: text and binary gets count
                // per class (`Store::get`), meta's lookup does not.
                if !matches!(reply, Reply::Meta(_)) {
                    let m = classes::memcached_size(h.klen, h.vlen, h.flags);
                    self.shard.store.classes.at(classes::class_of(m)).get_hits += 1;
                }
                let bump = !matches!(reply, Reply::Meta(m) if m.f.no_bump);
                if h.tell_owner && bump {
                    self.note_access(to, (h.hash, h.seg, h.off));
                }
                true
            }
            Read::Miss => {
                // The owner counts a miss for its ghosts (`Store::accessed`).
                self.note_access(to, (hash, segment::NONE, 0));
                let out = self.conns[idx as usize]
                    .as_mut()
                    .expect("live connection")
                    .reply_buf();
                reply.miss(out);
                false
            }
            Read::Fallback(_) => {
                self.shard.c.foreign_read_fallbacks += 1;
                return false;
            }
        };
        self.shard.c.foreign_reads += 1;
        self.shard.count_fetch(hit, false);
        if !matches!(reply, Reply::Meta(_)) {
            self.shard.detail.get(key, hit);
        }
        true
    }

    fn note_access(&mut self, to: usize, at: (u64, u32, u32)) {
        self.accessed[to].push(at);
        if self.accessed[to].len() >= ACCESS_BATCH {
            self.send_accessed(to);
        }
    }

    /// Sends each owner the accesses noted this turn, but keeps them for
    /// an owner asleep while shards are borrowed (lend.rs): the next
    /// request borrowed there applies them first, in order, as the hop
    /// would have (a miss's note, which a ghost needs, before the `set`
    /// that fills the key: a reviewer saw such fills lose their ghost
    /// credit). A full batch goes at once anyway (`note_access`).
    pub(super) fn flush_accessed(&mut self) {
        let keep = self.shared.settings.borrow_shards;
        for to in 0..self.accessed.len() {
            let kept = keep && self.shared.mesh.sleeping[to].load(Ordering::Relaxed);
            if !self.accessed[to].is_empty() && !kept {
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
