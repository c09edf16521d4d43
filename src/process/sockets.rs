//! The sockets a server listens on and its pidfile, made at start-up in
//! memcached's order and with memcached's messages and exit statuses
//! (`main.rs` calls these before dropping privileges and forking).

use super::cleanup::{pidfile_tmp, write_pidfile, RemoveOnDrop};
use super::{StartError, EX_OSERR};
use crate::config::Config;
use crate::engine::listener;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

/// strerror's text, which memcached's messages end with.
pub fn strerror(e: &std::io::Error) -> String {
    e.raw_os_error()
        .map(|n| nix::errno::Errno::from_raw(n).desc().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// `-s`: the UNIX socket, and the guard that removes its file at exit.
pub fn listen_unix(cfg: &Config) -> Result<Option<(OwnedFd, RemoveOnDrop)>, StartError> {
    let Some(path) = &cfg.unix_socket else {
        return Ok(None);
    };
    let failed = |e: std::io::Error| {
        let msg = format!(
            "failed to listen on UNIX socket: {}: {}",
            path.display(),
            strerror(&e)
        );
        StartError::new(EX_OSERR, msg)
    };
    // Absolute: a daemon removes it after changing directory.
    let file = std::path::absolute(path).map_err(failed)?;
    let fd = listener::listen_unix(path, cfg.unix_mask, cfg.backlog).map_err(failed)?;
    Ok(Some((fd, RemoveOnDrop::new(&file))))
}

/// `-P`: writes the pid; if it cannot, says memcached's line (naming the
/// temporary file, as memcached's does) and serves on without one, as
/// memcached does (corecache exited 71: a pidfile directory on /run gone
/// after a reboot, or a stale root-owned pidfile, kept it from starting
/// where memcached starts; found by a breaker).
pub fn pidfile_for_this_process(path: &std::path::Path) -> Option<RemoveOnDrop> {
    write_pidfile(path)
        .map_err(|e| {
            eprintln!(
                "Could not open the pid file {} for writing: {}",
                pidfile_tmp(path).display(),
                strerror(&e)
            );
        })
        .ok()
}

/// Every `-l` entry's addresses on the port `port_of` gives it, each with
/// whether it speaks TLS (`-Z` unless the entry says `notls:`). One name
/// may resolve to an address twice (kept once); two entries naming one
/// address are refused with `in_use(EADDRINUSE)`, as memcached's second
/// bind of it fails.
///
/// # Errors
/// A name that does not resolve; an address named twice.
fn listen_addresses(
    cfg: &Config,
    port_of: impl Fn(&crate::config::ListenSpec) -> u16,
    in_use: impl Fn(&std::io::Error) -> StartError,
) -> Result<(Vec<SocketAddr>, Vec<bool>), StartError> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut tls = Vec::new();
    for l in &cfg.listens {
        let h = &l.host;
        let found = listener::resolve(h, port_of(l))
            .map_err(|e| StartError::new(EX_OSERR, format!("cannot resolve -l {h}: {e}")))?;
        let first = addrs.len();
        for a in found {
            if addrs[first..].contains(&a) {
                continue;
            }
            if addrs[..first].contains(&a) {
                return Err(in_use(&std::io::Error::from_raw_os_error(libc::EADDRINUSE)));
            }
            addrs.push(a);
            tls.push(cfg.tls.is_some() && !l.notls);
        }
    }
    Ok((addrs, tls))
}

/// A TCP listener group's sockets (one per worker) and whether it speaks
/// TLS.
pub type TcpGroup = (Vec<OwnedFd>, bool);

/// Every `-l` address on its port (`-p` unless the entry names one), each
/// bound once per worker; TLS with `-Z` unless the entry says `notls:`.
pub fn listen_tcp(cfg: &Config) -> Result<Vec<TcpGroup>, StartError> {
    if cfg.tcp_port == 0 {
        return Ok(Vec::new());
    }
    let failed = |e: &std::io::Error| {
        let what = if cfg.interfaces_given {
            format!("one of interface(s) {}", cfg.interfaces.join(","))
        } else {
            format!("TCP port {}", cfg.tcp_port)
        };
        StartError::new(
            EX_OSERR,
            format!("failed to listen on {what}: {}", strerror(e)),
        )
    };
    let (addrs, tls) = listen_addresses(cfg, |l| l.port.unwrap_or(cfg.tcp_port), failed)?;
    let groups =
        listener::listen_tcp(&addrs, cfg.threads, cfg.backlog).map_err(|(_, e)| failed(&e))?;
    Ok(groups.into_iter().zip(tls).collect())
}

/// `-o worker_ports`: `result[w]` is worker `w`'s own sockets, one per
/// `-l` address, on port `base + w` (no SO_REUSEPORT group: one listener
/// each, so only that worker accepts there), TLS as the address's entry.
pub fn listen_worker_ports(cfg: &Config) -> Result<Vec<Vec<(OwnedFd, bool)>>, StartError> {
    let Some(base) = cfg.worker_ports else {
        return Ok(Vec::new());
    };
    let mut own = Vec::new();
    for w in 0..cfg.threads {
        let port = base + w as u16;
        // A repeated address was refused on the main port already.
        let (addrs, tls) = listen_addresses(
            cfg,
            |_| port,
            |e| {
                StartError::new(
                    EX_OSERR,
                    format!("failed to listen on worker {w}'s port: {}", strerror(e)),
                )
            },
        )?;
        let groups = listener::listen_tcp(&addrs, 1, cfg.backlog).map_err(|(a, e)| {
            StartError::new(
                EX_OSERR,
                format!(
                    "failed to listen on worker {w}'s port {a}: {}",
                    strerror(&e)
                ),
            )
        })?;
        own.push(groups.into_iter().flatten().zip(tls).collect());
    }
    Ok(own)
}
