//! `-u`: the user the server runs as. Started as root, corecache requires
//! `-u` (memcached: "can't run as root without the -u switch") and
//! becomes that user once its ports are bound, before any worker thread
//! or io_uring ring exists.

use super::{StartError, EX_NOUSER, EX_OSERR, EX_USAGE};
use nix::unistd::{self, Gid, Uid, User};
use std::ffi::CString;

/// The user to become, looked up before anything is bound.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user's name, as given to `-u`.
    pub name: String,
    /// Its user id.
    pub uid: Uid,
    /// Its primary group id.
    pub gid: Gid,
}

/// Whether this process may switch users (real or effective uid 0), the
/// test memcached makes.
pub fn is_root() -> bool {
    unistd::getuid().is_root() || unistd::geteuid().is_root()
}

/// The identity to switch to: `None` when not root (memcached ignores
/// `-u` then, and so does corecache).
///
/// # Errors
/// `EX_USAGE` when root without `-u`; `EX_NOUSER` when the user does not
/// exist; `EX_OSERR` when the user database cannot be read.
pub fn resolve(user: Option<&str>) -> Result<Option<Identity>, StartError> {
    if !is_root() {
        return Ok(None);
    }
    let Some(name) = user else {
        return Err(StartError::new(
            EX_USAGE,
            "can't run as root without the -u switch",
        ));
    };
    match User::from_name(name) {
        Ok(Some(u)) => Ok(Some(Identity {
            name: name.to_string(),
            uid: u.uid,
            gid: u.gid,
        })),
        Ok(None) => Err(StartError::new(
            EX_NOUSER,
            format!("can't find the user {name} to switch to"),
        )),
        Err(e) => Err(StartError::new(
            EX_OSERR,
            format!("can't look up the user {name}: {e}"),
        )),
    }
}

/// Becomes `id`: its groups (initgroups), its primary group, then its
/// user, and checks the switch holds (root cannot be regained).
///
/// # Errors
/// `EX_OSERR` when any step fails: the server must not run with more
/// privilege than asked for.
pub fn become_user(id: &Identity) -> Result<(), StartError> {
    let fail = |what: &str, e: nix::Error| {
        StartError::new(
            EX_OSERR,
            format!("failed to assume identity of user {}: {what}: {e}", id.name),
        )
    };
    let cname = CString::new(id.name.as_str())
        .map_err(|_| StartError::new(EX_NOUSER, format!("bad user name {:?}", id.name)))?;
    unistd::initgroups(&cname, id.gid).map_err(|e| fail("initgroups", e))?;
    unistd::setgid(id.gid).map_err(|e| fail("setgid", e))?;
    unistd::setuid(id.uid).map_err(|e| fail("setuid", e))?;
    let held = unistd::getuid() == id.uid
        && unistd::geteuid() == id.uid
        && unistd::getgid() == id.gid
        && unistd::getegid() == id.gid;
    let regained = !id.uid.is_root() && unistd::setuid(Uid::from_raw(0)).is_ok();
    if !held || regained {
        return Err(StartError::new(
            EX_OSERR,
            format!("failed to assume identity of user {}", id.name),
        ));
    }
    Ok(())
}
