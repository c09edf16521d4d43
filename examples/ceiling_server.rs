//! The ceiling to measure the engine against: a protocol-free io_uring
//! server with no store. One-shot recv per connection, one send per
//! connection per loop turn, canned replies (`END` to anything, `STORED`
//! to a `set` and its data). It does the kernel work a memcached reply
//! needs and nothing else, so its distance from memcached is the most any
//! server can gain on a host through the same socket API.
//!
//! ```text
//! cargo build --release --example ceiling_server
//! CORECACHE_BIN=target/release/examples/ceiling_server \
//!     scripts/bench-memtier.sh --cpu-budget 0.25 --concurrent --workloads c50,p16,c500
//! ```
//! Takes `-p PORT` and ignores corecache's other flags.

use io_uring::{cqueue, opcode, types, IoUring};
use std::net::TcpListener;
use std::os::fd::AsRawFd;

const ACCEPT: u64 = u64::MAX;

struct Conn {
    fd: i32,
    inbuf: Vec<u8>,
    have: usize,
    out: Vec<u8>,
    sending: Vec<u8>,
    send_off: usize,
    send_inflight: bool,
    queued: bool,
    closing: bool,
}

struct Server {
    ring: IoUring,
    conns: Vec<Option<Conn>>,
    to_send: Vec<usize>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = args
        .iter()
        .position(|a| a == "-p")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(11211);
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let one: libc::c_int = 1;
    // SAFETY: a valid socket and a pointer to a live c_int of the stated size.
    unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .build(4096)
        .expect("io_uring");
    let mut s = Server {
        ring,
        conns: Vec::new(),
        to_send: Vec::new(),
    };
    let lfd = listener.as_raw_fd();
    s.push(
        opcode::AcceptMulti::new(types::Fd(lfd))
            .build()
            .user_data(ACCEPT),
    );
    loop {
        s.ring.submit_and_wait(1).expect("io_uring_enter");
        let cqes: Vec<cqueue::Entry> = s.ring.completion().collect();
        for c in cqes {
            let (ud, res) = (c.user_data(), c.result());
            if ud == ACCEPT {
                if !cqueue::more(c.flags()) {
                    s.push(
                        opcode::AcceptMulti::new(types::Fd(lfd))
                            .build()
                            .user_data(ACCEPT),
                    );
                }
                if res >= 0 {
                    s.accept(res);
                }
            } else if ud & 1 == 1 {
                s.on_send((ud >> 1) as usize, res);
            } else {
                s.on_recv((ud >> 1) as usize, res);
            }
        }
        for idx in std::mem::take(&mut s.to_send) {
            let Some(c) = s.conns[idx].as_mut() else {
                continue;
            };
            c.queued = false;
            if !c.send_inflight && !c.out.is_empty() {
                std::mem::swap(&mut c.out, &mut c.sending);
                c.send_off = 0;
                s.send(idx);
            }
        }
    }
}

impl Server {
    fn push(&mut self, e: io_uring::squeue::Entry) {
        // SAFETY: every buffer an entry names belongs to a connection that
        // is only dropped when the peer closed and nothing is in flight.
        while unsafe { self.ring.submission().push(&e) }.is_err() {
            self.ring.submit().expect("io_uring_enter");
        }
    }

    fn accept(&mut self, fd: i32) {
        let conn = Conn {
            fd,
            inbuf: vec![0; 16 * 1024],
            have: 0,
            out: Vec::new(),
            sending: Vec::new(),
            send_off: 0,
            send_inflight: false,
            queued: false,
            closing: false,
        };
        let idx = match self.conns.iter().position(|c| c.is_none()) {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        self.conns[idx] = Some(conn);
        self.recv(idx);
    }

    fn recv(&mut self, idx: usize) {
        let c = self.conns[idx].as_mut().expect("live connection");
        let room = &mut c.inbuf[c.have..];
        let e = opcode::Recv::new(types::Fd(c.fd), room.as_mut_ptr(), room.len() as u32)
            .build()
            .user_data((idx as u64) << 1);
        self.push(e);
    }

    fn send(&mut self, idx: usize) {
        let c = self.conns[idx].as_mut().expect("live connection");
        c.send_inflight = true;
        let rest = &c.sending[c.send_off..];
        let e = opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len() as u32)
            .build()
            .user_data((idx as u64) << 1 | 1);
        self.push(e);
    }

    fn on_recv(&mut self, idx: usize, res: i32) {
        let Some(c) = self.conns[idx].as_mut() else {
            return;
        };
        if res <= 0 || c.have + res as usize == c.inbuf.len() {
            // Closed, failed, or a request larger than the buffer.
            c.closing = true;
            if !c.send_inflight {
                self.close(idx);
            }
            return;
        }
        c.have += res as usize;
        let used = canned_replies(&c.inbuf[..c.have], &mut c.out);
        c.inbuf.copy_within(used..c.have, 0);
        c.have -= used;
        if !c.out.is_empty() && !c.queued {
            c.queued = true;
            self.to_send.push(idx);
        }
        self.recv(idx);
    }

    fn close(&mut self, idx: usize) {
        if let Some(c) = self.conns[idx].take() {
            // SAFETY: our own socket, closed once, with no operation in
            // flight on it or its buffers (see the callers).
            unsafe { libc::close(c.fd) };
        }
    }

    fn on_send(&mut self, idx: usize, res: i32) {
        let Some(c) = self.conns[idx].as_mut() else {
            return;
        };
        c.send_inflight = false;
        if c.closing {
            // Set by a finished recv, so nothing else is in flight.
            return self.close(idx);
        }
        if res < 0 {
            // The armed recv will fail too, and close.
            return;
        }
        c.send_off += res as usize;
        if c.send_off < c.sending.len() {
            return self.send(idx);
        }
        c.sending.clear();
        if !c.out.is_empty() && !c.queued {
            c.queued = true;
            self.to_send.push(idx);
        }
    }
}

/// Answers every whole request at the front of `buf`; returns the bytes
/// used. A `set` line's fifth token is its data length.
fn canned_replies(buf: &[u8], out: &mut Vec<u8>) -> usize {
    let mut pos = 0;
    while let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') {
        let line = &buf[pos..pos + nl];
        if line.starts_with(b"set ") {
            let bytes = line
                .split(|&b| b == b' ' || b == b'\r')
                .filter(|t| !t.is_empty())
                .nth(4)
                .and_then(|t| std::str::from_utf8(t).ok()?.parse::<usize>().ok())
                .unwrap_or(0);
            let end = pos + nl + 1 + bytes + 2;
            if end > buf.len() {
                break;
            }
            pos = end;
            out.extend_from_slice(b"STORED\r\n");
        } else {
            pos += nl + 1;
            out.extend_from_slice(b"END\r\n");
        }
    }
    pos
}
