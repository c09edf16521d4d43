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

/// Writes this process's id to `path` (`-P`), removed again when the
/// returned guard drops.
///
/// # Errors
/// The write's error, e.g. when the directory is not writable by the user
/// the server runs as (as in memcached, it is written after switching).
pub fn write_pidfile(path: &Path) -> std::io::Result<RemoveOnDrop> {
    std::fs::write(path, format!("{}\n", std::process::id()))?;
    Ok(RemoveOnDrop::new(path))
}
