//! Listening sockets, and why one address belongs to one process.
//!
//! TCP: every worker has its own listener on each address, joined in one
//! SO_REUSEPORT group so the kernel spreads connections across workers.
//! A group alone would let a second server (same user) join it and take
//! half the clients, so the first socket of each address is bound and
//! put in listening state *without* SO_REUSEPORT: from then on any other
//! socket on that address, with or without SO_REUSEPORT, fails to bind
//! (`EADDRINUSE`, memcached's "failed to listen"). Only then is
//! SO_REUSEPORT set on it and the other workers' sockets bind; the
//! kernel forms the group around the first socket when they listen. Two
//! servers starting at once cannot both pass the first step: a listening
//! socket without SO_REUSEPORT conflicts with every other socket on the
//! address. (A foreign program of the same user that sets SO_REUSEPORT
//! itself can still join once the group exists: the kernel's rule.)
//!
//! Worker ports (`-o worker_ports`): `listen_tcp` with one socket per
//! address, so the port has a single owner, the worker it belongs to.
//!
//! UNIX (`-s`): one socket, which every worker accepts from through its
//! own duplicate of the descriptor.

use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// The addresses of a `-l` entry (`[`…`]` around IPv6 allowed) on `port`.
///
/// # Errors
/// The resolver's error for an unknown host name.
pub fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host, port).to_socket_addrs()?.collect())
}

fn tcp_socket(addr: &SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(*addr), Type::STREAM, None)?;
    // A restart can bind while the last run's connections sit in TIME_WAIT.
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Accepted sockets inherit TCP_NODELAY from their listener (the
    // kernel clones the listener's socket state), which matters for
    // direct descriptors: they have no fd to setsockopt on. Replies are
    // batched by the engine already; Nagle would only add latency.
    s.set_tcp_nodelay(true)?;
    Ok(s)
}

/// How long a bind retries an address in use before giving up.
const BIND_PATIENCE: std::time::Duration = std::time::Duration::from_millis(1500);

/// Binds `s` to `a`, retrying while the address is in use for up to
/// [`BIND_PATIENCE`]. A process that used io_uring leaves its listening
/// sockets open for a moment after it has exited (the kernel releases a
/// ring's files in a worker after exit): a restart right after a crash or
/// a kill found the port taken by the dead process and exited 71, where
/// memcached restarts. A port another live server holds stays taken, and
/// the start fails as memcached's does, that much later.
fn bind_patiently(s: &Socket, a: &SocketAddr) -> io::Result<()> {
    let deadline = std::time::Instant::now() + BIND_PATIENCE;
    loop {
        match s.bind(&(*a).into()) {
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// `per_addr` listening sockets on each of `addrs`, owned by this process
/// alone (see the module notes): `result[a][w]` is worker `w`'s socket on
/// address `a`.
///
/// # Errors
/// The address that failed and why; `EADDRINUSE` when another process
/// (or an overlapping address of this list) holds it. Sockets already
/// made are closed.
pub fn listen_tcp(
    addrs: &[SocketAddr],
    per_addr: usize,
    backlog: i32,
) -> Result<Vec<Vec<OwnedFd>>, (SocketAddr, io::Error)> {
    let mut groups: Vec<Vec<Socket>> = Vec::new();
    // Claim every address first, so a taken one fails before any group forms.
    for a in addrs {
        let claim = || -> io::Result<Socket> {
            let s = tcp_socket(a)?;
            bind_patiently(&s, a)?;
            s.listen(backlog)?;
            Ok(s)
        };
        groups.push(vec![claim().map_err(|e| (*a, e))?]);
    }
    if per_addr > 1 {
        for (a, group) in addrs.iter().zip(&mut groups) {
            let join = |first: &Socket| -> io::Result<Vec<Socket>> {
                first.set_reuse_port(true)?;
                let mut more = Vec::new();
                for _ in 1..per_addr {
                    let s = tcp_socket(a)?;
                    s.set_reuse_port(true)?;
                    s.bind(&(*a).into())?;
                    s.listen(backlog)?;
                    more.push(s);
                }
                Ok(more)
            };
            let more = join(&group[0]).map_err(|e| (*a, e))?;
            group.extend(more);
        }
    }
    Ok(groups
        .into_iter()
        .map(|g| g.into_iter().map(OwnedFd::from).collect())
        .collect())
}

/// A listening UNIX socket at `path` with permission bits `mask`
/// (memcached's `-a`). A socket file left by a server that is gone is
/// replaced; one a live server answers on is not (memcached would unlink
/// it and strand that server).
///
/// # Errors
/// `EADDRINUSE` when a server answers at `path`; bind and listen errors.
pub fn listen_unix(path: &Path, mask: u32, backlog: i32) -> io::Result<OwnedFd> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::from_raw_os_error(libc::EADDRINUSE));
            }
            std::fs::remove_file(path)?;
        }
    }
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let addr = SockAddr::unix(path)?;
    // The socket file is created with the process umask; narrowing it for
    // the bind gives the file `mask` from the start (no window with wider
    // access). Start-up is single-threaded, so the umask change is ours.
    use nix::sys::stat::{umask, Mode};
    let old = umask(Mode::from_bits_truncate(!mask & 0o777));
    let bound = s.bind(&addr);
    umask(old);
    bound?;
    s.listen(backlog)?;
    Ok(OwnedFd::from(s))
}
