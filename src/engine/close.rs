//! Closing: a connection marked closing goes once its output is out and no
//! operation on it is in flight; a failed peer is abandoned with its
//! output; `-o idle_timeout` closes silent connections.
use super::worker::Worker;
use std::sync::atomic::Ordering::SeqCst;

impl Worker {
    /// The peer is gone or failed: nothing more can be delivered.
    pub(super) fn abandon(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        c.closing = true;
        c.out.clear();
        c.pending.clear();
        c.out_refs.release(&mut self.shard.store);
        if !c.send_inflight {
            // A send in flight still reads them; its completion lets go.
            c.sending_refs.release(&mut self.shard.store);
        }
        self.try_close(idx);
    }

    /// Closes a connection that is marked closing once its output is out
    /// and no operation on it is in flight.
    pub(super) fn try_close(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        if !c.closing {
            return;
        }
        if !c.out.is_empty() && !c.send_inflight && !c.queued_for_send {
            c.queued_for_send = true;
            self.to_send.push(idx);
            return;
        }
        if !c.drained() {
            return;
        }
        if c.recv_inflight {
            // SAFETY: shutting down our socket makes the pending recv complete.
            unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
            return;
        }
        // SAFETY: no operation references the fd or buffers any more.
        unsafe { libc::close(c.fd) };
        self.conns[idx as usize] = None;
        self.free.push(idx);
        self.shard.c.curr_connections = self.shard.c.curr_connections.saturating_sub(1);
        self.shared.conns.fetch_sub(1, SeqCst);
    }

    /// `-o idle_timeout`: closes connections silent for that long, once
    /// their replies are out.
    pub(super) fn close_idle(&mut self, now: u32) {
        let limit = self.shared.settings.idle_timeout;
        if limit == 0 {
            return;
        }
        for i in 0..self.conns.len() {
            if let Some(c) = self.conns[i].as_mut() {
                if now.saturating_sub(c.last_active) >= limit && c.pending.is_empty() {
                    c.closing = true;
                    self.try_close(i as u32);
                }
            }
        }
    }
}
