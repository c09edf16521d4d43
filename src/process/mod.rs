//! The process around the engine, set up the way memcached sets up its
//! own: resource limits, the user it runs as, the daemon fork, the log
//! file, the pidfile. Everything here runs on the main thread before any
//! worker exists (fork and identity changes must not race with threads).

pub mod cleanup;
pub mod daemon;
pub mod identity;
pub mod limits;
pub mod sockets;
pub mod warm;

use std::fmt;

/// sysexits' `EX_USAGE`: a bad flag or value (memcached's status too).
pub const EX_USAGE: u8 = 64;
/// sysexits' `EX_NOUSER`: `-u` names no user.
pub const EX_NOUSER: u8 = 67;
/// sysexits' `EX_OSERR`: the system refused (a port in use, a failed
/// identity switch), memcached's status for "failed to listen".
pub const EX_OSERR: u8 = 71;

/// Why start-up stopped, and the exit status that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError {
    /// The process exit status.
    pub code: u8,
    /// One line for stderr, worded as memcached words it where memcached
    /// has the same failure (so scripts grepping for it keep working).
    pub msg: String,
}

impl StartError {
    /// An error with this exit status and message.
    pub fn new(code: u8, msg: impl Into<String>) -> StartError {
        StartError {
            code,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for StartError {}
