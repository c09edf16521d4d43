//! A request for another worker's key run on that worker's shard here,
//! while the owner sleeps (`-o borrow_shards`; the token and why it is
//! sound: lend.rs). The dispatch point's fourth answer besides "here",
//! "foreign read" and "hop", tried before the hop.

use super::dispatch::Request;
use super::watch;
use super::worker::Worker;
use crate::exec;
use crate::protocol::meta::MetaCmd;
use std::sync::atomic::Ordering::Relaxed;

impl Worker {
    /// Runs `req` (for a key worker `to` owns) on `to`'s shard into
    /// connection `idx`'s replies, if `to` is asleep and nothing this
    /// worker sent it is still unapplied. False (having done nothing) if
    /// the request must hop instead.
    pub(super) fn exec_borrowed(&mut self, idx: u32, to: usize, req: &Request) -> bool {
        if !self.shared.settings.borrow_shards
            || !matches!(req, Request::Text(_) | Request::Binary(Ok(_)))
            || !self.backlog[to].is_empty()
        {
            return false;
        }
        let shared = &self.shared;
        let Some(mut sh) = shared.lends[to].try_borrow() else {
            return false;
        };
        // In order behind this worker's earlier requests: the owner pops
        // jobs only holding the token and runs what it pops in that turn,
        // so once it has taken as many as were sent, all are applied. (Not
        // "the queue is empty": access notes and replies, which never wake
        // a sleeping owner, sit there too, and a breaker found that one
        // foreign read before each write sent 19 writes in 20 to the hop.)
        if shared.mesh.jobs_taken(self.id, to).load(Relaxed) != self.jobs_sent[to] {
            return false;
        }
        // `mg` with `h` or `l`, and `me`, answer after this worker's
        // earlier foreign reads of the owner's records are counted: those
        // still queued are the owner's to apply (a reviewer saw `me` say
        // `fetch=no` after a read).
        if let Request::Text(crate::protocol::text::Request::Meta(m)) = req {
            let reads_notes = exec::meta::asks_access(m) || m.cmd == MetaCmd::Debug;
            if reads_notes && !shared.mesh.queue(self.id, to).is_empty() {
                return false;
            }
        }
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return false;
        };
        let fd = c.fd;
        // As the owner would on waking: its clock (it may have slept up to
        // a tenth of a second) and this worker's foreign reads of its
        // records (`Msg::Accessed`, sent ahead of a hop for `mg h`/`l`).
        sh.store.tick();
        for (hash, seg, off) in self.accessed[to].drain(..) {
            sh.store.accessed(hash, seg, off);
        }
        // Values are copied (zc_min stays usize::MAX): a reference would
        // pin the owner's segment from here.
        let (out, _) = c.reply_target();
        let start = out.len();
        match req {
            Request::Text(t) => exec::text::exec(&mut sh, t, out),
            Request::Binary(Ok(r)) => exec::binary::exec(&mut sh, r, out),
            _ => unreachable!("checked above"),
        }
        super::conn_log::reply_error(Some(fd), to, out.get(start..).unwrap_or_default());
        // The owner's duties after a request (`run_job`): shut direct
        // reads after a flush-like change, hand `watch` its notes, and
        // publish the counters before the reply goes, so a `stats` that
        // follows it sees them.
        sh.store.refresh_gate();
        let fed = watch::emit(&mut sh.store.notes.notes, fd);
        let mut counts = sh.counters();
        counts.connection_structures = shared.published[to].connection_structures.load(Relaxed);
        shared.published[to].publish(&counts);
        shared.classes.publish(to, &mut sh.store);
        drop(sh);
        // Watchers are fed by the worker their connection is on; the hop
        // woke the owner, whose turn fed its own at once. Wake whichever
        // workers got lines (this one feeds its own at its turn's end).
        for w in (0..self.shared.mesh.n.min(64)).filter(|&w| fed & (1 << w) != 0) {
            if w != self.id {
                self.wake(w);
            }
        }
        self.shard.c.cross_shard_borrowed += 1;
        true
    }
}
