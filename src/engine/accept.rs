//! Accepting connections: the connection limit (`-c`), running out of
//! descriptors, and the connection table whose slots and generations make
//! a `ConnId`.
//!
//! The worker accepts when its listen set says a listener is ready
//! (listen_set.rs). Out of descriptors (EMFILE, ENFILE), accepting again
//! at once would fail at once, in a loop. As
//! memcached, accepting pauses instead (counted in `listen_disabled_num`;
//! `accepting_conns` is 0 meanwhile): the clients wait in the listen
//! backlog, and accepting resumes when this process frees a descriptor (any
//! worker: descriptors are the process's), or, for shortages beyond it
//! (ENFILE, ENOMEM, ENOBUFS), once a second.
use super::conn::Conn;
use super::listen_set::{accept_one, Accepted};
use super::user_data::GEN_MASK;
use super::worker::Worker;
use io_uring::cqueue;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Mutex;

/// Descriptors this process has closed (connections, refused ones).
static FDS_FREED: AtomicU64 = AtomicU64::new(0);

/// Records that this process closed a descriptor.
pub fn descriptor_freed() {
    FDS_FREED.fetch_add(1, Relaxed);
}

/// Paused accepting over the whole process, as memcached has one switch
/// for it (`accepting_conns` 0): a pause is counted once however many
/// listeners of however many workers it spans, and timed from the first
/// listener's pause to the last one's resume. Pauses are rare: changes
/// take the lock; worker 0 reads the figures every loop turn, lock-free.
static PAUSE_BEGAN: Mutex<Option<std::time::Instant>> = Mutex::new(None);
/// Listeners paused now (changed under `PAUSE_BEGAN`).
static PAUSED_LISTENERS: AtomicUsize = AtomicUsize::new(0);
/// `listen_disabled_num`.
static PAUSES: AtomicU64 = AtomicU64::new(0);
/// `time_in_listen_disabled_us`, of pauses that ended.
static PAUSED_MICROS: AtomicU64 = AtomicU64::new(0);

fn pause_began() -> std::sync::MutexGuard<'static, Option<std::time::Instant>> {
    PAUSE_BEGAN.lock().unwrap_or_else(|e| e.into_inner())
}

/// A listener's paused accepting.
#[derive(Clone, Copy, Debug)]
pub struct AcceptPause {
    /// `FDS_FREED` when it last tried to accept.
    freed: u64,
}

impl Worker {
    /// A listener has connections waiting (the multishot poll of the
    /// listen set completed): accept them on every listener not paused.
    pub(super) fn on_listen_ready(&mut self, flags: u32) {
        if self.stopping {
            return;
        }
        if !cqueue::more(flags) {
            // The kernel ended the multishot poll (an overflowing
            // completion queue does): watch again.
            self.arm_listen_poll();
        }
        for li in 0..self.listeners.len() {
            if self.accept_paused[li].is_none() {
                self.accept_all(li as u32);
            }
        }
    }

    /// Accepts every connection waiting on listener `li`, or pauses it on
    /// a shortage (as memcached: the clients wait in the backlog). Returns
    /// whether it is (still) short.
    pub(super) fn accept_all(&mut self, li: u32) -> bool {
        loop {
            match accept_one(self.listeners[li as usize]) {
                Accepted::Socket(fd) => self.accepted(li, fd),
                Accepted::Again => {}
                Accepted::Empty | Accepted::Broken => return false,
                Accepted::Shortage => {
                    self.pause_accepting(li);
                    return true;
                }
            }
        }
    }

    /// Pauses listener `li`, or, paused already (a retry failed), notes
    /// the descriptors freed so far: the same pause goes on.
    fn pause_accepting(&mut self, li: u32) {
        if self.accept_paused[li as usize].is_none() {
            let mut began = pause_began();
            if PAUSED_LISTENERS.fetch_add(1, Relaxed) == 0 {
                *began = Some(std::time::Instant::now());
                PAUSES.fetch_add(1, Relaxed);
            }
        }
        self.accept_paused[li as usize] = Some(AcceptPause {
            freed: FDS_FREED.load(Relaxed),
        });
    }

    /// A new connection `fd` from listener `li`: refused past `-c`, else
    /// given a slot and its first receive.
    fn accepted(&mut self, li: u32, fd: i32) {
        let total = self.shared.conns.fetch_add(1, SeqCst);
        if total >= self.shared.settings.max_conns {
            self.shared.conns.fetch_sub(1, SeqCst);
            self.shard.c.rejected_connections += 1;
            let msg = b"ERROR Too many open connections\r\n";
            // SAFETY: best-effort write and close of a socket we own.
            unsafe {
                libc::write(fd, msg.as_ptr() as *const libc::c_void, msg.len());
                libc::close(fd);
            }
            descriptor_freed();
            return;
        }
        self.shard.c.curr_connections += 1;
        self.shard.c.total_connections += 1;
        self.balance_steering();
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.gens.push(0);
                (self.conns.len() - 1) as u32
            }
        };
        self.gens[idx as usize] = self.gens[idx as usize].wrapping_add(1) & GEN_MASK;
        let mut conn = Conn::new(fd, self.gens[idx as usize]);
        let on_tls = self.tls_listeners.get(li as usize) == Some(&true);
        if let Some(tls) = self.shared.tls.as_ref().filter(|_| on_tls) {
            match super::tls::TlsConn::new(tls.current()) {
                Ok(t) => conn.tls = Some(t),
                Err(e) => {
                    tracing::error!("TLS connection refused: {e}");
                    // SAFETY: closing a socket we were just handed.
                    unsafe { libc::close(fd) };
                    descriptor_freed();
                    self.shared.conns.fetch_sub(1, SeqCst);
                    self.shard.c.curr_connections -= 1;
                    self.free.push(idx);
                    return;
                }
            }
        }
        conn.last_active = self.last_sec;
        conn.pinned = li as usize >= self.pinned_from;
        if conn.pinned {
            self.shard.c.worker_port_connections += 1;
            self.shard.c.worker_port_total_connections += 1;
        }
        super::conn_log::opened(fd, conn.pinned);
        self.conns[idx as usize] = Some(conn);
        self.arm_recv(idx);
    }

    /// Re-arms paused accepts once a descriptor was freed, and at most a
    /// second later in any case, and publishes whether
    /// the server accepts: worker 0 speaks for all in `accepting_conns`,
    /// memcached's 0/1.
    pub(super) fn retry_accepts(&mut self, new_second: bool) {
        let freed = FDS_FREED.load(Relaxed);
        for li in 0..self.accept_paused.len() {
            let Some(p) = self.accept_paused[li] else {
                continue;
            };
            // Also once a second whatever the shortage: descriptors this
            // process frees elsewhere (the admin port's connections, a log
            // file) are not counted in FDS_FREED, and a breaker review
            // left the data port paused for good after 1,100 admin
            // connections came and went. One failed accept a second costs
            // nothing measurable.
            if !self.stopping && (p.freed != freed || new_second) && !self.accept_all(li as u32) {
                // Accepting again (a retry still short stays the same
                // pause, counted once, as memcached's).
                self.accept_paused[li] = None;
                let mut began = pause_began();
                if PAUSED_LISTENERS.fetch_sub(1, Relaxed) == 1 {
                    if let Some(t) = began.take() {
                        PAUSED_MICROS.fetch_add(t.elapsed().as_micros() as u64, Relaxed);
                    }
                }
            }
        }
        if new_second {
            // Other workers' closes move the mean too.
            self.balance_steering();
        }
        // Worker 0 speaks for the process, as memcached's one switch.
        if self.id == 0 {
            let c = &mut self.shard.c;
            c.accepting_conns = u64::from(PAUSED_LISTENERS.load(Relaxed) == 0);
            c.listen_disabled_num = PAUSES.load(Relaxed);
            c.time_in_listen_disabled_us = PAUSED_MICROS.load(Relaxed);
        }
    }

    /// Steering on while this worker holds no more than its share of the
    /// connections, off past it (steer.rs).
    pub(super) fn balance_steering(&mut self) {
        if let Some(s) = self.steer.as_mut() {
            let total = self.shared.conns.load(Relaxed) as u64;
            if s.balance(self.shard.c.curr_connections, total, self.shared.mesh.n) {
                self.shard.c.steering_changes += 1;
            }
        }
    }

    pub(super) fn conn_mut(&mut self, idx: u32, gen: u32) -> Option<&mut Conn> {
        self.conns
            .get_mut(idx as usize)?
            .as_mut()
            .filter(|c| c.gen & GEN_MASK == gen)
    }

    pub(super) fn conn(&mut self, idx: u32) -> &mut Conn {
        self.conns[idx as usize].as_mut().expect("live connection")
    }
}
