//! How a worker learns that its listeners have connections: an epoll set
//! of them, watched by one multishot poll on the worker's ring, and
//! `accept4()` called by the worker itself.
//!
//! Why not a multishot accept on each listener, which did it all in the
//! kernel: an io_uring operation holds its file, and a ring outlives the
//! process that made it. When the server dies without closing its
//! listeners (SIGKILL, the OOM killer, a crash), the kernel tears the ring
//! down in a kernel worker some time after the process is gone (5-11 ms on
//! this 2-core host when idle: kill, `wait()` returns, connect; more under
//! load), and meanwhile the port still completes handshakes: a client's
//! connection lands in the dead listener's backlog and is then reset.
//! memcached's port refuses at once, and clients that fail over rely on
//! it: libmemcached with replicas sends a refused request to the next
//! server but counts a reset as that request's error (CI saw one such error
//! in 1,000 gets after a node was killed). An epoll set holds no reference
//! to the files in it, so here the ring holds only the epoll file, and the
//! listeners close with the process, as memcached's do.
//!
//! Cost, measured with a connection per request (server CPU per
//! connection, medians of 3 rounds, `docs/PERFORMANCE.md`): multishot
//! accept 33.8 µs, this set 36.9 µs (two `accept4()` calls a wake-up, the
//! second finding the backlog empty), memcached 49.1 µs. An acceptor thread
//! per listener, blocking in `accept4()` and posting each socket to the
//! worker by MSG_RING, cost about 10 µs more than the multishot accept (as
//! much as memcached, whose listener thread does the same): left out.

use io_uring::{opcode, squeue, types};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A worker's listeners in one epoll set.
pub struct ListenSet {
    epoll: OwnedFd,
}

impl ListenSet {
    /// Puts `listeners` in a new epoll set (level-triggered, readable) and
    /// makes them non-blocking, so the worker's `accept4()` never waits.
    ///
    /// # Errors
    /// `epoll_create1` or `epoll_ctl` failed (out of descriptors, memory).
    pub fn new(listeners: &[RawFd]) -> std::io::Result<ListenSet> {
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a descriptor we just created and own.
        let epoll = unsafe { OwnedFd::from_raw_fd(ep) };
        for (li, &fd) in listeners.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: li as u64,
            };
            // SAFETY: fcntl and epoll_ctl on descriptors the worker owns,
            // with a live event.
            let r = unsafe {
                let fl = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
                libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(ListenSet { epoll })
    }

    /// The multishot poll that completes, tagged `user_data`, each time a
    /// listener of the set has a connection waiting.
    pub fn poll(&self, user_data: u64) -> squeue::Entry {
        opcode::PollAdd::new(types::Fd(self.epoll.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(user_data)
    }
}

/// What one `accept4()` came to.
pub enum Accepted {
    Socket(RawFd),
    /// The backlog is empty.
    Empty,
    /// A connection that failed before it was accepted, or a signal: the
    /// next may be fine.
    Again,
    /// Out of descriptors or memory (EMFILE, ENFILE, ENOMEM, ENOBUFS).
    Shortage,
    /// The listener is shut down (the server is stopping) or broken.
    Broken,
}

/// Accepts one connection from the non-blocking listener `fd`.
pub fn accept_one(fd: RawFd) -> Accepted {
    // SAFETY: accept4 on a listening socket; no address is asked for.
    let s = unsafe {
        libc::accept4(
            fd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if s >= 0 {
        return Accepted::Socket(s);
    }
    match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
        libc::EAGAIN => Accepted::Empty,
        libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS => Accepted::Shortage,
        // accept(2): errors of the pending connection, or a signal.
        libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM => Accepted::Again,
        _ => Accepted::Broken,
    }
}
