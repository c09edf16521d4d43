//! Closing: a connection whose input has ended (the peer's end of input,
//! or the server stopping) is answered in full, then closes once its
//! replies are out; a failed peer is abandoned with its output;
//! `-o idle_timeout` closes silent connections.
use super::accept::descriptor_freed;
use super::user_data::{ConnId, Kind, UserData};
use super::worker::Worker;
use io_uring::opcode;
use std::sync::atomic::Ordering::SeqCst;

/// Buffers larger than this are not kept by a connection with nothing in
/// them (send.rs), and count towards trimming the heap when freed. At
/// 64 KiB, 500 idle connections that had each been sent one 20 KB
/// multi-get reply held 13.6 MB (memcached: 0.3 MB); replies of the
/// common small requests, pipelined 16 deep, stay well under 16 KiB.
pub const KEEP_MAX: usize = 16 * 1024;

impl Worker {
    /// No more input will be read from connection `idx` (the server is
    /// stopping): its receive is cancelled, what it sent is still answered.
    pub(super) fn end_input(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        c.eof = true;
        if c.recv_inflight {
            let e =
                opcode::AsyncCancel::new(UserData::new(Kind::Recv, ConnId { idx, gen: c.gen }).0)
                    .build()
                    .user_data(UserData::plain(Kind::Cancel, idx).0);
            self.push_sqe(e);
        }
        self.after_process(idx);
    }

    /// The peer is gone or failed: nothing more can be delivered.
    pub(super) fn abandon(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        c.closing = true;
        if let Some(t) = c.tls.as_mut() {
            // Nobody to say goodbye to.
            t.closed = true;
        }
        let mut refs = c.drop_replies();
        if !c.send_inflight {
            // A send in flight still reads them; its completion lets go.
            refs.append(&mut c.sending_refs);
        }
        if c.send_inflight || c.recv_inflight {
            // SAFETY: shutting down our socket makes its operations
            // complete, so the connection can close.
            unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        }
        self.release_refs(&mut refs);
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
        if c.send_ready() && !c.send_inflight && !c.queued_for_send {
            c.queued_for_send = true;
            self.to_send.push(idx);
            return;
        }
        if !c.drained() {
            return;
        }
        if c.tls.is_some() && self.tls_close_notify(idx) {
            return;
        }
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        if c.recv_inflight {
            // SAFETY: shutting down our socket makes the pending recv complete.
            unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
            return;
        }
        self.release_incoming(idx);
        self.release_stalled(idx);
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        super::conn_log::closed(c.fd, c.eof);
        if let Some(w) = c.watch.take() {
            super::watch::remove(&w);
        }
        // SAFETY: no operation references the fd or buffers any more.
        unsafe { libc::close(c.fd) };
        descriptor_freed();
        if c.pinned {
            self.shard.c.worker_port_connections -= 1;
        }
        // Every buffer counts towards trimming the heap, small ones too:
        // 16 closed connections' buffers under 64 KiB each left 3 MiB
        // resident when only the large ones were counted.
        let bufs = [c.inbuf.capacity(), c.out.capacity(), c.sending.capacity()];
        self.freed += bufs.iter().sum::<usize>();
        self.conns[idx as usize] = None;
        self.free.push(idx);
        self.shard.c.curr_connections = self.shard.c.curr_connections.saturating_sub(1);
        self.shared.conns.fetch_sub(1, SeqCst);
        self.balance_steering();
    }

    /// `-o idle_timeout`: closes connections that neither sent nor took
    /// bytes for that long, once their replies are out; one whose replies
    /// cannot go (the peer does not read) is abandoned.
    pub(super) fn close_idle(&mut self, now: u32) {
        let limit = self.shared.settings.idle_timeout;
        if limit == 0 {
            return;
        }
        for i in 0..self.conns.len() {
            if let Some(c) = self.conns[i].as_mut() {
                if now.saturating_sub(c.last_active) < limit {
                    continue;
                }
                if c.drained() && c.get.is_none() {
                    c.closing = true;
                    self.try_close(i as u32);
                } else if c.waiting == 0 {
                    self.abandon(i as u32);
                }
            }
        }
    }
}
