//! Resource limits and memory locking (`-c`, `-r`, `-k`).

use super::{StartError, EX_OSERR};
use nix::sys::mman::{mlockall, MlockAllFlags};
use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};

/// Lifts RLIMIT_NOFILE towards what `-c` needs, as memcached does, so
/// `-c 10000` works without a wrapper raising `ulimit -n`: to `-c` plus
/// headroom for the server's own descriptors where the hard limit (or
/// privilege) allows, to `-c` at least.
///
/// # Errors
/// memcached's "failed to set rlimit for open files" (`EX_OSERR`) when not
/// even `-c` descriptors can be had.
pub fn raise_nofile(max_conns: usize) -> Result<(), StartError> {
    let need = max_conns as u64;
    let want = need + 128;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Err(StartError::new(
            EX_OSERR,
            "failed to getrlimit number of files",
        ));
    };
    if soft >= want
        // As root the hard limit can rise too; otherwise up to it.
        || setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)).is_ok()
        || (hard >= need && setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard).is_ok())
        || soft >= need
    {
        return Ok(());
    }
    Err(StartError::new(
        EX_OSERR,
        "failed to set rlimit for open files. Try starting as root or requesting smaller maxconns value.",
    ))
}

/// `-r`: raises the core file limit to unlimited, or to the hard limit.
///
/// # Errors
/// memcached's "failed to ensure corefile creation" (`EX_OSERR`) when the
/// soft limit ends at 0.
pub fn enable_core_dumps() -> Result<(), StartError> {
    if setrlimit(Resource::RLIMIT_CORE, RLIM_INFINITY, RLIM_INFINITY).is_err() {
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_CORE) {
            let _ = setrlimit(Resource::RLIMIT_CORE, hard, hard);
        }
    }
    match getrlimit(Resource::RLIMIT_CORE) {
        Ok((soft, _)) if soft > 0 => Ok(()),
        _ => Err(StartError::new(
            EX_OSERR,
            "failed to ensure corefile creation",
        )),
    }
}

/// `-k`, while still root: lets the user the server becomes lock all of
/// its memory (memcached locks after dropping root, where the default
/// 8 MiB RLIMIT_MEMLOCK makes `-k` fail for any real `-m`).
pub fn allow_locking() {
    let _ = setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY);
}

/// `-k`: locks current and future memory, pages locked as they are first
/// touched (MCL_ONFAULT, Linux 4.4; plain MCL_FUTURE if refused), as
/// memcached's are as it mallocs slab pages while it fills: item memory is
/// reserved up front here, and plain MCL_FUTURE faulted the whole
/// reservation in at start (an empty `-m 64 -t 2` held 125 MB; memcached
/// 67 MB) and left no room to raise `cache_memlimit`.
///
/// Only where locking is unlimited (`may_lock_unlimited`): under a finite
/// RLIMIT_MEMLOCK, mlockall succeeds on the little resident at the call
/// and every later mapping past the limit fails, which aborts a Rust
/// process on its next allocation (a `-u nobody -k` server did, with or
/// without MCL_ONFAULT; memcached's malloc returns NULL and it carries
/// on). Then memory is not locked and a warning says why, as memcached
/// warns when its mlockall fails. Locks do not survive fork, so this runs
/// in the process that serves.
pub fn lock_memory() -> Option<String> {
    if !may_lock_unlimited() {
        let limit = getrlimit(Resource::RLIMIT_MEMLOCK).map_or(0, |(soft, _)| soft);
        return Some(format!(
            "warning: -k invalid: the locked-memory limit is {limit} bytes and -k needs it \
             unlimited (start as root, or `ulimit -l unlimited` / LimitMEMLOCK=infinity); \
             memory not locked"
        ));
    }
    let all = MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE;
    mlockall(all | MlockAllFlags::from_bits_retain(libc::MCL_ONFAULT))
        .or_else(|_| mlockall(all))
        .err()
        .map(|e| format!("warning: -k invalid, mlockall() failed: {e}"))
}

/// Whether this process may lock any amount of memory: root (whose
/// CAP_IPC_LOCK passes over RLIMIT_MEMLOCK), or a limit made infinite by
/// `allow_locking`. Then `-k` locks even a reservation far beyond `-m`
/// (only what is touched gets memory); else a reservation past the limit
/// would fail to map.
pub fn may_lock_unlimited() -> bool {
    nix::unistd::geteuid().is_root()
        || getrlimit(Resource::RLIMIT_MEMLOCK).is_ok_and(|(soft, _)| soft == RLIM_INFINITY)
}
