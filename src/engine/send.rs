//! Sending: one send per connection per turn with everything it has ready
//! (a sendmsg when large values go by reference), and backpressure: a
//! client with too many unsent replies is not read until it catches up.
use super::close::KEEP_MAX;
use super::user_data::{ConnId, Kind, UserData};
use super::worker::Worker;
use io_uring::{opcode, types};
use std::time::Instant;

impl Worker {
    /// Queues the connection's output; stops reading from a connection at
    /// its memory cap until it drains; and closes one whose input has
    /// ended once everything it sent is answered. Called after parsing,
    /// after a reply from another shard, and after a send.
    pub(super) fn after_process(&mut self, idx: u32) {
        let cap = self.conn_cap();
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        if c.send_ready() && !c.queued_for_send {
            c.queued_for_send = true;
            self.to_send.push(idx);
        }
        // Requests that answer nothing (noreply, meta q, binary quiet
        // commands) are done once run: with no reply due and nothing to
        // send, record them now, not at the next reply, which may be
        // seconds later (a client's next request) and would charge them,
        // and it, the idle time between.
        if !c.lat.is_empty() && c.pending.is_empty() && c.out.is_empty() && c.out_refs.bytes == 0 {
            if let Some(h) = self.shared.telemetry.latency(self.id) {
                c.lat.sent(h, Instant::now());
            }
        }
        if c.eof
            && !c.closing
            && !c.recv_inflight
            && !c.paused
            && !c.over_cap(cap)
            && c.get.is_none()
            && c.dump.is_none()
        {
            // Input has ended and all of it is parsed (parsing stops short
            // only at the cap, while paused, or in an unfinished get): what
            // is left is an incomplete request, which memcached drops too.
            c.closing = true;
        }
        if c.closing {
            self.try_close(idx);
        } else if c.should_pause(cap) && !c.paused {
            c.paused = true;
            c.stalled = c.held_total();
            self.shard.c.stalled_bytes += c.stalled as u64;
            if c.recv_inflight {
                let e = opcode::AsyncCancel::new(
                    UserData::new(Kind::Recv, ConnId { idx, gen: c.gen }).0,
                )
                .build()
                .user_data(UserData::plain(Kind::Cancel, idx).0);
                self.push_sqe(e);
            }
        }
    }

    pub(super) fn on_send(&mut self, idx: u32, gen: u32, res: i32) {
        let now = self.last_sec;
        let Some(c) = self.conn_mut(idx, gen) else {
            return;
        };
        c.send_inflight = false;
        if res < 0 {
            super::conn_log::failed(c.fd, "write", -res);
            return self.abandon(idx);
        }
        c.last_active = now;
        c.send_off += res as usize;
        let more = c.send_off < c.sending_len();
        self.shard.c.bytes_written += res as u64;
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        if more {
            // (After `abandon` the socket is shut down: this fails at once.)
            self.submit_send(idx);
            return;
        }
        c.sending.clear();
        c.send_off = 0;
        if c.sending.capacity() > KEEP_MAX && c.out.is_empty() {
            // A burst is over: give its buffer back.
            self.freed += c.sending.capacity();
            c.sending = Vec::new();
        }
        let mut refs = std::mem::take(&mut c.sending_refs);
        self.release_refs(&mut refs);
        if let Some(c) = self.conns[idx as usize].as_mut() {
            c.sending_refs = refs;
        }
        self.maybe_resume(idx);
        self.after_process(idx);
    }

    /// A paused connection that drained: parse what waited, then read again.
    pub(super) fn maybe_resume(&mut self, idx: u32) {
        let cap = self.conn_cap();
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        if c.paused && c.may_resume(cap) && !c.closing {
            c.paused = false;
            self.release_stalled(idx);
            self.process(idx);
            // Parsing may have filled the cap again, pausing once more.
            self.after_process(idx);
            self.arm_recv(idx);
        }
    }

    pub(super) fn issue_sends(&mut self) {
        let list = std::mem::take(&mut self.to_send);
        let mut now: Option<Instant> = None;
        for &idx in &list {
            let Some(c) = self.conns[idx as usize].as_mut() else {
                continue;
            };
            c.queued_for_send = false;
            if c.send_inflight || !c.send_ready() {
                continue;
            }
            // Every request answered so far is handed to the kernel now.
            if c.pending.is_empty() && !c.lat.is_empty() {
                if let Some(h) = self.shared.telemetry.latency(self.id) {
                    c.lat.sent(h, *now.get_or_insert_with(Instant::now));
                }
            }
            c.send_off = 0;
            if c.tls.is_none() {
                std::mem::swap(&mut c.out, &mut c.sending);
                std::mem::swap(&mut c.out_refs, &mut c.sending_refs);
            } else {
                // Records, sealed from the plaintext (tls.rs).
                self.seal(idx);
            }
            self.submit_send(idx);
        }
        self.to_send = list;
        self.to_send.clear();
    }

    pub(super) fn submit_send(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        c.send_inflight = true;
        let user = UserData::new(Kind::Send, ConnId { idx, gen: c.gen }).0;
        let e = if c.sending_refs.is_empty() {
            let rest = &c.sending[c.send_off..];
            opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len() as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
        } else {
            // Large values straight from their pinned segments.
            let msg = c.msg.build(&c.sending, &c.sending_refs, c.send_off);
            opcode::SendMsg::new(types::Fd(c.fd), msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        };
        self.push_sqe(e.user_data(user));
    }
}
