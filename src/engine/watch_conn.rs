//! A worker's side of `watch`: the command, feeding each watching
//! connection its lines, and handing the store's notes to the watchers
//! (watch.rs) after each request.

use super::watch::{self, Watcher};
use super::worker::Worker;
use crate::protocol::text;
use std::sync::Arc;

/// A watching connection gets more lines only while it has less than this
/// unsent (as a dump, dump.rs).
const OUT_HIGH: usize = 256 * 1024;

impl Worker {
    /// `watch [kinds...]` on connection `idx`: memcached's replies, or
    /// `OK` and the connection streams log lines from then on (it reads
    /// nothing more; closing it ends the watch).
    pub(super) fn watch_cmd(&mut self, idx: u32, arg: &[u8]) {
        // memcached: a trailing noreply is an unknown kind (`ERROR`),
        // silenced.
        if text::tokens(arg).last() == Some(b"noreply".as_slice()) {
            return;
        }
        // memcached also refuses a watch behind replies not yet sent
        // ("ERROR cannot pipeline other commands before watch"), but
        // 1.6.18 was not seen to (`get k\r\nwatch\r\n` in one packet
        // answers OK): replies before it go first here.
        let line = if !self.shared.settings.introspection.watch_enabled {
            "CLIENT_ERROR watch commands not allowed"
        } else {
            match watch::parse_kinds(text::tokens(arg)).map(|k| watch::add(k, self.id)) {
                None => "ERROR",
                Some(Err(refused)) => refused,
                Some(Ok(w)) => {
                    let c = self.conn(idx);
                    c.watch = Some(w);
                    self.watching.push(idx);
                    "OK"
                }
            }
        };
        crate::exec::reply::push_line(self.conn(idx).reply_buf(), line);
    }

    /// Moves each watching connection's waiting lines to its output, as
    /// far as it keeps up. Once a loop turn.
    pub(super) fn feed_watchers(&mut self) {
        let mut i = 0;
        while i < self.watching.len() {
            let idx = self.watching[i];
            let w: Option<Arc<Watcher>> = self.conns[idx as usize]
                .as_ref()
                .and_then(|c| c.watch.clone());
            let Some(w) = w else {
                self.watching.swap_remove(i);
                continue;
            };
            i += 1;
            let c = self.conn(idx);
            let unsent = c.unsent();
            if unsent < OUT_HIGH && w.has_lines() {
                // Behind any reply still waiting for another worker.
                w.take(c.reply_buf(), OUT_HIGH - unsent);
                self.after_process(idx);
            }
        }
    }

    /// Hands the notes the last request left in the store to the
    /// watchers; `cfd` is the requesting connection's descriptor (-1 when
    /// unknown here: a request forwarded from another worker).
    #[inline]
    pub(super) fn emit_notes(&mut self, cfd: i32) {
        if !self.shard.store.notes.notes.is_empty() {
            watch::emit(&mut self.shard.store.notes.notes, cfd);
        }
    }

    /// Once a loop turn: which notes the store keeps (one relaxed load).
    #[inline]
    pub(super) fn watch_turn(&mut self) {
        // Notes left outside a request (maintenance's evictions).
        self.emit_notes(-1);
        let k = watch::kinds();
        self.shard.store.notes.kinds = k & (watch::FETCHERS | watch::MUTATIONS | watch::EVICTIONS);
        self.shard.store.refresh_gate();
        if !self.watching.is_empty() {
            self.feed_watchers();
        }
    }
}
