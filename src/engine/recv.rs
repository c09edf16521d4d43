//! Receiving: multishot receives into the worker's buffer ring, parsing
//! in place from the kernel's buffer when nothing waits before the new
//! bytes, and the connection's own input buffer otherwise.
use super::buf_ring::BufRing;
use super::conn::READ_CHUNK;
use super::user_data::{ConnId, Kind, UserData};
use super::worker::Worker;
use io_uring::{cqueue, opcode, types};

impl Worker {
    pub(super) fn arm_recv(&mut self, idx: u32) {
        let bgid = self.bufs.as_ref().map_or(0, |b| b.bgid);
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        if c.recv_inflight || c.closing || c.paused || c.eof {
            return;
        }
        c.recv_inflight = true;
        let e = opcode::RecvMulti::new(types::Fd(c.fd), bgid)
            .build()
            .user_data(UserData::new(Kind::Recv, ConnId { idx, gen: c.gen }).0);
        self.push_sqe(e);
    }

    pub(super) fn on_recv(&mut self, idx: u32, gen: u32, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let mut bufs = self.bufs.take().expect("buffer ring");
        self.recv_data(idx, gen, res, flags, &bufs);
        if let Some(b) = bid {
            bufs.recycle(b);
        }
        if res == -libc::ENOBUFS {
            bufs.starved();
        }
        self.bufs = Some(bufs);
    }

    pub(super) fn recv_data(&mut self, idx: u32, gen: u32, res: i32, flags: u32, bufs: &BufRing) {
        let (bid, more) = (cqueue::buffer_select(flags), cqueue::more(flags));
        if res == -libc::ENOBUFS {
            self.shard.c.read_buf_oom += 1;
        }
        let Some(c) = self.conn_mut(idx, gen) else {
            return;
        };
        if !more {
            c.recv_inflight = false;
        }
        if res == -libc::ENOBUFS || res == -libc::ECANCELED {
            // Out of receive buffers, or cancelled (backpressure, or the
            // server stopping): re-armed once there is room, unless input
            // has ended, which may now be done.
            if !c.paused && !c.closing && !c.eof {
                self.rearm.push(idx);
            }
            return self.after_process(idx);
        }
        if res == 0 {
            // The peer shut down its side: what it sent is still answered.
            c.eof = true;
            return self.after_process(idx);
        }
        if res < 0 {
            super::conn_log::failed(c.fd, "read", -res);
            return self.abandon(idx);
        }
        let Some(bid) = bid else { return };
        let data = bufs.data(bid, res as usize);
        self.shard.c.bytes_read += res as u64;
        let now = self.last_sec;
        let c = self.conns[idx as usize].as_mut().expect("live connection");
        c.last_active = now;
        // More was waiting only if the read filled its buffer and the
        // kernel says the socket still held bytes after it: a client that
        // sent exactly a buffer's worth is then judged, as memcached
        // judges it, on what it sent.
        c.read_full = res as usize >= bufs.buf_size() && cqueue::sock_nonempty(flags);
        if c.closing {
            return;
        }
        if c.tls.is_some() {
            // Ciphertext: decrypted into the connection's buffer (tls.rs).
            self.recv_tls(idx, data);
        } else if !c.parses_in_place() {
            // Behind earlier bytes: queue, then parse from the connection's buffer.
            c.inbuf.extend_from_slice(data);
            if !c.paused {
                self.process(idx);
            }
        } else {
            // The common case: parse straight from the kernel's buffer and
            // keep only an incomplete tail.
            c.inbuf.clear();
            c.in_start = 0;
            let used = self.parse_loop(idx, data);
            if used < data.len() {
                self.keep_tail(idx, &data[used..]);
            }
        }
        self.after_process(idx);
        if !more {
            self.arm_recv(idx);
        }
    }

    /// Keeps the incomplete start of a request. Room for the rest the
    /// parser said is missing is made once (from the worker's spare large
    /// buffer when it fits), so a large value is not copied again at each
    /// doubling of the buffer.
    pub(super) fn keep_tail(&mut self, idx: u32, tail: &[u8]) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        let want = tail.len() + c.need;
        c.need = 0;
        if want > 4 * READ_CHUNK && c.inbuf.is_empty() && self.spare_in.capacity() >= want {
            c.inbuf = std::mem::take(&mut self.spare_in);
            c.in_start = 0;
        }
        c.inbuf.reserve(want);
        c.inbuf.extend_from_slice(tail);
    }

    /// Parses and executes what is complete in a connection's own buffer.
    pub(super) fn process(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_mut() else {
            return;
        };
        let mut inbuf = std::mem::take(&mut c.inbuf);
        let mut pos = c.in_start;
        pos += self.parse_loop(idx, &inbuf[pos..]);
        let spare_max = self.spare_max();
        if let Some(c) = self.conns[idx as usize].as_mut() {
            if pos == inbuf.len() {
                inbuf.clear();
                pos = 0;
                if inbuf.capacity() > READ_CHUNK {
                    // Large requests are done: keep one buffer big enough
                    // for a value on this worker, not on this connection.
                    // (Kept up to 64 KiB each, 1000 idle connections that
                    // had each sent a 60 KB value held 60 MB; memcached
                    // holds nothing for them.)
                    let big = std::mem::take(&mut inbuf);
                    let fits = big.capacity() > 4 * READ_CHUNK && big.capacity() <= spare_max;
                    if fits && big.capacity() > self.spare_in.capacity() {
                        self.freed += self.spare_in.capacity();
                        self.spare_in = big;
                    } else {
                        self.freed += big.capacity();
                    }
                }
            } else if pos > 0 && pos > inbuf.len() / 2 {
                inbuf.drain(..pos);
                pos = 0;
            }
            c.inbuf = inbuf;
            c.in_start = pos;
        }
    }

    /// The largest input buffer kept for reuse: one value and its line.
    fn spare_max(&self) -> usize {
        2 * self.shared.settings.item_max + 2 * READ_CHUNK
    }

    /// Goes on with a connection that gave way to others (multiget.rs).
    pub(super) fn go_on(&mut self, idx: u32) {
        let Some(c) = self.conns[idx as usize].as_ref() else {
            return;
        };
        if !c.paused && !c.closing {
            self.process(idx);
            self.after_process(idx);
        }
    }
}
