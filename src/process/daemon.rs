//! `-d` and `--logfile`: running in the background as memcached does
//! (fork, the parent exits, the child starts a session, leaves its
//! directory and its terminal), and sending output to a log file, as
//! Debian's start script does for the `logfile` line of memcached.conf.

use super::{StartError, EX_OSERR};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{self, ForkResult};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

/// Which side of the fork this is.
pub enum Forked {
    /// The parent: exit with this status (0 once the child serves, else
    /// the child's own exit status).
    Parent(u8),
    /// The child: serve, and call `Ready::notify` once serving.
    Child(Ready),
}

/// What happens once the server serves: output moves to the log (or,
/// for a daemon, to /dev/null), and a daemon's waiting parent is told.
/// Until then start-up errors still reach the terminal (or the journal)
/// that started the server, so `corecache -d` that cannot start says why
/// and exits with the status the daemon exited with.
#[derive(Default)]
pub struct Ready {
    /// Where stdout and stderr go once serving.
    output: Option<OwnedFd>,
    /// The daemon's pipe to its waiting parent.
    parent: Option<File>,
}

impl Ready {
    /// Without `-d`: only the redirect to `log`, if any.
    pub fn foreground(log: Option<OwnedFd>) -> Ready {
        Ready {
            output: log,
            parent: None,
        }
    }

    /// Reports the server ready, once: redirects the output, then
    /// releases the parent.
    ///
    /// # Errors
    /// `EX_OSERR` if the output cannot be redirected.
    pub fn notify(&mut self) -> Result<(), StartError> {
        if let Some(out) = self.output.take() {
            redirect_output(&out)?;
            crate::admin::log_writer::end_tee();
        }
        if let Some(mut w) = self.parent.take() {
            let _ = w.write_all(b"1");
        }
        Ok(())
    }
}

fn os_err(what: &str, e: impl std::fmt::Display) -> StartError {
    StartError::new(EX_OSERR, format!("failed to daemonize: {what}: {e}"))
}

/// Opens the log file for appending (created if missing), before
/// privileges are dropped so a root-owned log directory works.
///
/// # Errors
/// `EX_OSERR` with the path and the open error.
pub fn open_log(path: &Path) -> Result<OwnedFd, StartError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| {
            StartError::new(
                EX_OSERR,
                format!("cannot open log file {}: {e}", path.display()),
            )
        })
}

/// Opens the log file at `path` again and points stdout and stderr at it
/// (SIGHUP, after logrotate moved the file away): lines written from now
/// on go to the new file.
///
/// # Errors
/// `EX_OSERR` if it cannot be opened (after `-u` the directory may not be
/// writable by the server's user) or the descriptors cannot be replaced;
/// the old file stays in use.
pub fn reopen_log(path: &Path) -> Result<(), StartError> {
    redirect_output(&open_log(path)?)
}

/// Sends stdout and stderr to `log`.
///
/// # Errors
/// `EX_OSERR` if the descriptors cannot be replaced.
pub fn redirect_output(log: &OwnedFd) -> Result<(), StartError> {
    unistd::dup2_stdout(log).map_err(|e| os_err("dup2", e))?;
    unistd::dup2_stderr(log).map_err(|e| os_err("dup2", e))
}

/// Forks into the background. The child starts a new session, ignores
/// SIGHUP, moves to `/` (unless `keep_dir`, memcached's rule for `-r` so
/// cores land in the start directory) and reads from /dev/null; once it
/// serves (`Ready::notify`) it writes to `log`, else to /dev/null unless
/// `keep_output` (memcached keeps the terminal with `-v`).
///
/// Must run while the process has a single thread.
///
/// # Errors
/// `EX_OSERR` when fork, setsid or the redirects fail.
pub fn daemonize(
    log: Option<OwnedFd>,
    keep_output: bool,
    keep_dir: bool,
) -> Result<Forked, StartError> {
    let (read_end, write_end) =
        unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| os_err("pipe", e))?;
    // SAFETY: start-up is single-threaded until the workers are spawned,
    // after this, so the child owns a consistent copy of the process.
    match unsafe { unistd::fork() }.map_err(|e| os_err("fork", e))? {
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut byte = [0u8; 1];
            let mut r = File::from(read_end);
            if matches!(r.read(&mut byte), Ok(1)) {
                return Ok(Forked::Parent(0));
            }
            // The child exited before serving: report its status.
            let code = match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, c)) => c as u8,
                Ok(WaitStatus::Signaled(_, s, _)) => 128u8.wrapping_add(s as u8),
                _ => 1,
            };
            Ok(Forked::Parent(code))
        }
        ForkResult::Child => {
            drop(read_end);
            // SIGHUP keeps the server's handler (reload the password and
            // ACL files, reopen the logs): a daemon has no terminal to hang
            // up after setsid, and ignoring it, as this did, left `-d`
            // servers deaf to reloads (a removed user kept logging in;
            // found by a breaker).
            unistd::setsid().map_err(|e| os_err("setsid", e))?;
            if !keep_dir {
                unistd::chdir("/").map_err(|e| os_err("chdir /", e))?;
            }
            let null = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map(OwnedFd::from)
                .map_err(|e| os_err("/dev/null", e))?;
            unistd::dup2_stdin(&null).map_err(|e| os_err("dup2", e))?;
            let output = match log {
                Some(l) => Some(l),
                None if !keep_output => Some(null),
                None => None,
            };
            Ok(Forked::Child(Ready {
                output,
                parent: Some(File::from(write_end)),
            }))
        }
    }
}
