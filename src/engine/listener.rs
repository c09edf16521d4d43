//! Listening sockets: one per worker per address, with SO_REUSEPORT so the
//! kernel spreads connections across workers.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;

pub fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host, port).to_socket_addrs()?.collect())
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn listen(addr: &SocketAddr, backlog: i32) -> io::Result<RawFd> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket syscalls on values we own; the sockaddr structs
    // are fully initialised before their pointers are passed.
    unsafe {
        let fd = check(libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let one: libc::c_int = 1;
        let p = &one as *const _ as *const libc::c_void;
        let l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        check(libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            p,
            l,
        ))?;
        check(libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            p,
            l,
        ))?;
        // Accepted sockets inherit TCP_NODELAY from their listener (the
        // kernel clones the listener's socket state), which matters for
        // direct descriptors: they have no fd to setsockopt on. Replies
        // are batched by the engine already; Nagle would only add latency.
        check(libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            p,
            l,
        ))?;
        let r = match addr {
            SocketAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as u16;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                libc::bind(
                    fd,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of_val(&sa) as u32,
                )
            }
            SocketAddr::V6(a) => {
                check(libc::setsockopt(
                    fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    p,
                    l,
                ))?;
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as u16;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                libc::bind(
                    fd,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of_val(&sa) as u32,
                )
            }
        };
        if let Err(e) = check(r) {
            libc::close(fd);
            return Err(e);
        }
        check(libc::listen(fd, backlog))?;
        Ok(fd)
    }
}
