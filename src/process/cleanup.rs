//! Files the server creates and removes when it exits: the pidfile and
//! the UNIX socket.

use std::path::{Path, PathBuf};

/// Removes its path when dropped, so every exit path out of start-up and
/// serving cleans up. `disarm` hands the file over (to a daemon child).
#[derive(Debug)]
pub struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    /// Guards an existing file.
    pub fn new(path: &Path) -> RemoveOnDrop {
        RemoveOnDrop(Some(path.to_path_buf()))
    }

    /// Keeps the file: this process no longer owns it.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The name a pidfile is first written under, then renamed from.
pub fn pidfile_tmp(path: &Path) -> std::path::PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    tmp.into()
}

/// Writes this process's id to `path` (`-P`), removed again when the
/// returned guard drops. As memcached's `save_pid`, it is written to
/// `path.tmp` and renamed, so a reader never finds it empty, and a stale
/// pidfile the user cannot write (left by root) is replaced if the
/// directory allows.
///
/// # Errors
/// The write's or the rename's error, e.g. when the directory is not
/// writable by the user the server runs as (as in memcached, it is
/// written after switching).
pub fn write_pidfile(path: &Path) -> std::io::Result<RemoveOnDrop> {
    let tmp = pidfile_tmp(path);
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(RemoveOnDrop::new(path))
}
