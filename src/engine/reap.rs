//! Completion demultiplexing: takes a batch of completions off the ring,
//! runs the prefetch pass over the requests they carry (see `prefetch.rs`),
//! and hands each completion to its handler by the kind in its user data.
use super::prefetch::{Prefetcher, PREFETCH_MAX};
use super::user_data::{ConnId, Kind, UserData, GEN_MASK};
use super::worker::Worker;
use crate::protocol::Proto;
use io_uring::cqueue;

impl Worker {
    pub(super) fn reap(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        loop {
            batch.clear();
            batch.extend(
                self.ring
                    .completion()
                    .take(256)
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            if batch.is_empty() {
                self.batch = batch;
                return;
            }
            let mut prefetched = 0;
            for (i, &(u, res, flags)) in batch.iter().enumerate() {
                if i == prefetched {
                    prefetched = i + self.prefetch(&batch[i..]);
                }
                let ud = UserData(u);
                let ConnId { idx, gen } = ud.conn();
                match ud.kind() {
                    Some(Kind::Accept) => self.on_listen_ready(flags),
                    Some(Kind::Recv) => self.on_recv(idx, gen, res, flags),
                    Some(Kind::Send) => self.on_send(idx, gen, res),
                    // Wake-ups only end the wait; a cancel's own completion
                    // says nothing the receive's does not.
                    Some(Kind::Wake | Kind::Cancel) | None => {}
                }
            }
        }
    }

    /// Starts loading the index buckets and items that the requests at
    /// the front of `batch` will look up, up to `PREFETCH_MAX` keys, so
    /// their misses overlap. Returns how many completions it covered.
    pub(super) fn prefetch(&mut self, batch: &[(u64, i32, u32)]) -> usize {
        let Some(bufs) = self.bufs.as_ref() else {
            return batch.len();
        };
        let mut p = Prefetcher {
            store: &self.shard.store,
            route: &self.route,
            shards: self.shared.mesh.n,
            me: self.id,
            item_max: self.shared.settings.item_max,
            views: self.shared.foreign.as_ref().map(|f| &f.views[..]),
        };
        let hashes = &mut self.hashes;
        hashes.clear();
        let mut covered = 0;
        for &(u, res, flags) in batch {
            if hashes.len() >= PREFETCH_MAX {
                break;
            }
            covered += 1;
            let ud = UserData(u);
            let ConnId { idx, gen } = ud.conn();
            let (Some(bid), Some(Kind::Recv)) = (cqueue::buffer_select(flags), ud.kind()) else {
                continue;
            };
            let Some(c) = self.conns.get(idx as usize).and_then(|c| c.as_ref()) else {
                continue;
            };
            // Only the common case: whole requests at the buffer's start.
            if res <= 0
                || c.gen & GEN_MASK != gen
                || !c.parses_in_place()
                || c.skip > 0
                || c.tls.is_some()
            {
                continue;
            }
            let data = bufs.data(bid, res as usize);
            // A pinned connection's keys all run here.
            p.shards = if c.pinned { 1 } else { self.shared.mesh.n };
            p.buckets(c.proto.unwrap_or(Proto::detect(data[0])), data, hashes);
        }
        if hashes.len() > 1 {
            p.items(hashes);
        }
        covered
    }
}
