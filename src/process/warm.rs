//! `-e PATH`: keeping the cache across a restart, as memcached's
//! restartable cache does (1.5.18+), with the files laid out as its are:
//! `PATH.meta` is the clean-stop marker, a text file of `key value`
//! lines written last, after every shard's data; `PATH.N` holds shard
//! N's segments (`store::snapshot`). Point `PATH` at tmpfs (`/dev/shm`)
//! for speed; any file system works.
//!
//! The rules that keep a restart from serving anything wrong:
//! - no marker, no restore: a crash (or SIGKILL) leaves none, and the data
//!   files of that run are removed unread; `PATH.running`, made at start
//!   and removed after a clean save, lets the next start say so;
//! - the marker is removed before any data is read, so a crash during or
//!   after a restore starts the next run cold; a marker this process
//!   cannot remove, or not a regular file of this user's, is not trusted
//!   (another user could plant one in a shared /dev/shm);
//! - the marker must name this format and the settings that decide where
//!   items live (`-t`, `-m`, `-I`, segment size), as memcached refuses
//!   a memory file from other settings;
//! - each shard file must have the length the marker recorded, name the
//!   run the marker names (an id drawn at each stop: two processes given
//!   the same `PATH` cannot have their shard files restored together),
//!   and its segments must have their checksums (`store::snapshot`).
//!
//! Data files are read back with their pages punched out behind the
//! reader, so a restore from tmpfs needs little more memory than `-m`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::store::snapshot::{self, SnapshotCounts, FORMAT};
use crate::store::Store;

/// The settings a file must have been written with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// `-t`: shards (a key's owner depends on it).
    pub threads: usize,
    /// `-m` in bytes.
    pub memory: usize,
    /// Segment size in bytes.
    pub segment_size: usize,
    /// `-I` in bytes.
    pub item_max: usize,
}

impl Fingerprint {
    fn lines(&self) -> Vec<(&'static str, String)> {
        vec![
            ("format", String::from_utf8_lossy(FORMAT).into_owned()),
            ("threads", self.threads.to_string()),
            ("memory", self.memory.to_string()),
            ("segment_size", self.segment_size.to_string()),
            ("item_size_max", self.item_max.to_string()),
        ]
    }
}

/// The clean-stop marker's path.
pub fn meta_path(path: &Path) -> PathBuf {
    suffixed(path, "meta")
}

/// Shard `id`'s data file.
pub fn shard_path(path: &Path, id: usize) -> PathBuf {
    suffixed(path, &id.to_string())
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

/// The marker is a few lines; a larger one is not ours.
const META_MAX: u64 = 4096;

/// The sentinel of a running process: there without a marker at start
/// means the last run did not stop cleanly.
pub fn running_path(path: &Path) -> PathBuf {
    suffixed(path, "running")
}

/// Creates a file only this user may read: the files hold every value.
fn create_private(p: &Path) -> io::Result<File> {
    let _ = fs::remove_file(p);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
}

/// Marks this process as running at `PATH` (see `running_path`), which
/// also proves at start that the files can be written there, as memcached
/// refuses to start when its `-e` file cannot be opened.
///
/// # Errors
/// The directory is missing or not writable.
pub fn begin(path: &Path) -> io::Result<()> {
    create_private(&running_path(path)).map(drop)
}

/// Reads the marker if it is a regular file of this user's, at most
/// `META_MAX` bytes.
fn read_meta(meta: &Path) -> io::Result<String> {
    let md = fs::symlink_metadata(meta)?;
    // SAFETY: geteuid has no failure mode.
    let me = unsafe { libc::geteuid() };
    if !md.is_file() || md.uid() != me || md.len() > META_MAX {
        return Err(io::Error::other(
            "not a regular file of this user's of at most 4 KiB",
        ));
    }
    let mut text = String::new();
    File::open(meta)?.take(META_MAX).read_to_string(&mut text)?;
    Ok(text)
}

/// What start-up found at `PATH`.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// A clean stop's files, for these settings: restore them.
    Warm,
    /// Nothing to restore; with the reason when files were there (the
    /// line start-up prints).
    Cold(Option<String>),
}

/// Looks at `PATH.meta` and decides; removes the marker whatever it says
/// (see the module comment), and the data files when they will not be
/// read.
pub fn take(path: &Path, want: &Fingerprint) -> Found {
    let meta = meta_path(path);
    let mut found = match read_meta(&meta) {
        Ok(text) => check(path, &text, want),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let left = running_path(path).exists()
                || (0..crate::config::MAX_THREADS).any(|i| shard_path(path, i).exists());
            let said = read_meta(&running_path(path)).unwrap_or_default();
            if let Some(why) = said.strip_prefix(NOT_SAVED) {
                Found::Cold(Some(format!(
                    "the last stop could not save the cache ({})",
                    why.trim_end()
                )))
            } else if left {
                Found::Cold(Some(
                    "no clean-stop marker (the last run did not stop gracefully)".into(),
                ))
            } else {
                Found::Cold(None)
            }
        }
        Err(e) => Found::Cold(Some(format!("{}: {e}", meta.display()))),
    };
    match fs::remove_file(&meta) {
        Err(e) if e.kind() != io::ErrorKind::NotFound && found == Found::Warm => {
            found = Found::Cold(Some(format!(
                "{} cannot be removed ({e}), so it could be read again after a crash",
                meta.display()
            )));
        }
        _ => {}
    }
    if found != Found::Warm {
        remove_data(path, crate::config::MAX_THREADS);
    }
    found
}

fn check(path: &Path, text: &str, want: &Fingerprint) -> Found {
    let get = |k: &str| {
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.trim().to_string())
    };
    for (k, v) in want.lines() {
        let had = get(k).unwrap_or_else(|| "(none)".into());
        if had != v {
            return Found::Cold(Some(format!(
                "written with {k} {had}, this process has {v}"
            )));
        }
    }
    let run = get("run").and_then(|v| v.parse::<u64>().ok());
    for id in 0..want.threads {
        let p = shard_path(path, id);
        let len = fs::metadata(&p).map(|m| m.len()).ok();
        let said = get(&format!("shard.{id}")).and_then(|v| v.parse::<u64>().ok());
        if len.is_none() || len != said {
            return Found::Cold(Some(format!(
                "{} is missing or not the length the marker recorded",
                p.display()
            )));
        }
        let mut head = [0u8; snapshot::HEADER_LEN];
        let named = File::open(&p)
            .and_then(|mut f| f.read_exact(&mut head))
            .ok()
            .and_then(|()| snapshot::file_run(&head));
        if run.is_none() || named != run {
            return Found::Cold(Some(format!(
                "{} was not written by the stop that wrote the marker \
                 (two servers given one -e path?)",
                p.display()
            )));
        }
    }
    Found::Warm
}

/// Removes every shard data file of `PATH` (up to `n` shards).
pub fn remove_data(path: &Path, n: usize) {
    for id in 0..n {
        let _ = fs::remove_file(shard_path(path, id));
    }
}

/// Reads shard `id`'s file into `store` (new, empty), keeping the keys
/// `keep` accepts, then removes the file. On error the store is cold.
///
/// # Errors
/// The file cannot be opened, or `Store::restore` refused it.
pub fn restore_shard(
    path: &Path,
    id: usize,
    store: &mut Store,
    keep: impl Fn(&[u8]) -> bool,
) -> Result<SnapshotCounts, String> {
    let p = shard_path(path, id);
    let file = File::open(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut r = PunchingReader::new(file);
    let res = store.restore(&mut r, unix, keep).map_err(|e| e.to_string());
    let _ = fs::remove_file(&p);
    res
}

/// Writes shard `id`'s file from `store`; returns what it wrote and the
/// file's length.
///
/// # Errors
/// Creating, writing or syncing the file failed.
pub fn save_shard(
    path: &Path,
    id: usize,
    store: &Store,
    run: u64,
) -> io::Result<(SnapshotCounts, u64)> {
    let p = shard_path(path, id);
    let file = create_private(&p)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let counts = store.save_run(&mut w, run)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((counts, file.metadata()?.len()))
}

/// What each shard's save wrote at the stop: (items, file length), None
/// until it has (or if it failed); the stop's run id; the first failure.
pub struct Saves(
    std::sync::Mutex<Vec<Option<(u64, u64)>>>,
    u64,
    std::sync::Mutex<Option<String>>,
);

/// A run id: random (std's per-process hash keys come from the OS), so
/// two processes' stops never share one.
fn new_run() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

impl Saves {
    /// For `n` shards, none saved yet.
    pub fn new(n: usize) -> Saves {
        Saves(
            std::sync::Mutex::new(vec![None; n]),
            new_run(),
            std::sync::Mutex::new(None),
        )
    }

    /// Saves shard `id` (on its worker's thread, once it has stopped).
    pub fn save(&self, path: &Path, id: usize, store: &Store) -> io::Result<()> {
        let (c, len) = save_shard(path, id, store, self.1).inspect_err(|e| {
            self.2
                .lock()
                .unwrap()
                .get_or_insert_with(|| format!("shard {id}: {e}"));
        })?;
        self.0.lock().unwrap()[id] = Some((c.items, len));
        Ok(())
    }

    /// After every worker: the marker if all shards saved (returns the
    /// items saved), the data files removed otherwise (returns None).
    ///
    /// # Errors
    /// Writing the marker failed.
    pub fn finish(&self, path: &Path, want: &Fingerprint) -> io::Result<Option<u64>> {
        let saved = self.0.lock().unwrap().clone();
        let Some(all) = saved.into_iter().collect::<Option<Vec<_>>>() else {
            remove_data(path, want.threads);
            let why = self.2.lock().unwrap().clone();
            say_not_saved(path, why.as_deref().unwrap_or("a worker did not save"));
            return Ok(None);
        };
        let lengths: Vec<u64> = all.iter().map(|s| s.1).collect();
        commit(path, want, &lengths, self.1).inspect_err(|e| {
            remove_data(path, want.threads);
            say_not_saved(path, &format!("the marker: {e}"));
        })?;
        Ok(Some(all.iter().map(|s| s.0).sum()))
    }
}

/// What the running sentinel says after a stop that could not save: the
/// next start names the reason, not a crash. Best effort (a full disk may
/// refuse this too; the next start then says the run did not stop
/// cleanly, which is still true of the cache).
const NOT_SAVED: &str = "not saved: ";

fn say_not_saved(path: &Path, why: &str) {
    if let Ok(mut f) = create_private(&running_path(path)) {
        let _ = io::Write::write_all(&mut f, format!("{NOT_SAVED}{why}\n").as_bytes());
    }
}

/// Writes the clean-stop marker once every shard's file is written:
/// `lengths[i]` is shard i's file length, `run` the id their headers name.
///
/// # Errors
/// Writing, syncing or renaming the marker failed (the next start is
/// then cold).
pub fn commit(path: &Path, want: &Fingerprint, lengths: &[u64], run: u64) -> io::Result<()> {
    let mut text = String::new();
    for (k, v) in want.lines() {
        text.push_str(&format!("{k} {v}\n"));
    }
    text.push_str(&format!("corecache {}\n", crate::version::CORECACHE));
    text.push_str(&format!("run {run}\n"));
    for (i, len) in lengths.iter().enumerate() {
        text.push_str(&format!("shard.{i} {len}\n"));
    }
    let meta = meta_path(path);
    let tmp = suffixed(path, "meta.tmp");
    let mut f = create_private(&tmp)?;
    io::Write::write_all(&mut f, text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, &meta)?;
    let _ = fs::remove_file(running_path(path));
    Ok(())
}

/// Reads a file and gives its pages back to the file system behind
/// itself (FALLOC_FL_PUNCH_HOLE), in steps of `STEP` bytes: on tmpfs the
/// data would otherwise sit in memory beside the store it is copied into.
struct PunchingReader {
    file: File,
    read: u64,
    punched: u64,
}

const STEP: u64 = 64 << 20;

impl PunchingReader {
    fn new(file: File) -> PunchingReader {
        PunchingReader {
            file,
            read: 0,
            punched: 0,
        }
    }
}

impl Read for PunchingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read += n as u64;
        if self.read - self.punched >= STEP {
            let len = self.read - self.punched;
            // SAFETY: fallocate on our own descriptor; punching a hole only
            // drops bytes already read. Best effort: a refusal (a file
            // system without hole punching) changes nothing else.
            unsafe {
                libc::fallocate(
                    self.file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    self.punched as libc::off_t,
                    len as libc::off_t,
                );
            }
            self.punched = self.read;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> Fingerprint {
        Fingerprint {
            threads: 2,
            memory: 64 << 20,
            segment_size: 1 << 20,
            item_max: 1 << 20,
        }
    }

    /// A shard file of `len` bytes whose header names `run`.
    fn shard_file(p: &Path, id: usize, run: u64, len: usize) {
        let mut bytes = snapshot::header_for_tests(run);
        bytes.resize(len, 0);
        fs::write(shard_path(p, id), bytes).unwrap();
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("corecache-warm-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d.join("mem")
    }

    #[test]
    fn every_shard_file_a_cold_start_finds_is_removed() {
        // A run of more than 64 workers left files a cold start did not
        // remove (it looked at 64): shards of the cache on tmpfs, in RAM,
        // until the next reboot.
        let p = dir("many");
        for id in [0, 1, 63, 64, 200, 255] {
            fs::write(shard_path(&p, id), b"x").unwrap();
        }
        assert!(matches!(take(&p, &fp()), Found::Cold(Some(_))));
        for id in [0, 1, 63, 64, 200, 255] {
            assert!(!shard_path(&p, id).exists(), "{id}");
        }
    }

    #[test]
    fn a_stop_that_could_not_save_says_so_at_the_next_start() {
        let p = dir("unsaved");
        begin(&p).unwrap();
        let saves = Saves::new(2);
        *saves.2.lock().unwrap() = Some("shard 1: No space left on device".into());
        shard_file(&p, 0, saves.1, 103);
        saves.0.lock().unwrap()[0] = Some((1, 103));
        assert_eq!(saves.finish(&p, &fp()).unwrap(), None);
        assert!(!shard_path(&p, 0).exists(), "the saved shard removed");
        let Found::Cold(Some(why)) = take(&p, &fp()) else {
            panic!()
        };
        assert!(
            why.contains("could not save the cache (shard 1: No space left on device)"),
            "{why}"
        );
        // A run that then crashes says so, not the old reason.
        begin(&p).unwrap();
        let Found::Cold(Some(why)) = take(&p, &fp()) else {
            panic!()
        };
        assert!(why.contains("did not stop gracefully"), "{why}");
    }

    #[test]
    fn a_clean_stop_is_restored_once() {
        let p = dir("clean");
        shard_file(&p, 0, 7, 103);
        shard_file(&p, 1, 7, 102);
        commit(&p, &fp(), &[103, 102], 7).unwrap();
        assert_eq!(take(&p, &fp()), Found::Warm);
        assert!(!meta_path(&p).exists(), "marker removed before reading");
        // Had the restore crashed, the next start finds no marker.
        assert!(matches!(take(&p, &fp()), Found::Cold(Some(_))));
        assert!(!shard_path(&p, 0).exists());
    }

    #[test]
    fn other_settings_a_crash_or_a_torn_file_start_cold() {
        let p = dir("cold");
        assert_eq!(take(&p, &fp()), Found::Cold(None));
        // Other -m.
        shard_file(&p, 0, 7, 103);
        shard_file(&p, 1, 7, 102);
        commit(&p, &fp(), &[103, 102], 7).unwrap();
        let other = Fingerprint {
            memory: 128 << 20,
            ..fp()
        };
        let Found::Cold(Some(why)) = take(&p, &other) else {
            panic!()
        };
        assert!(why.contains("memory 67108864"), "{why}");
        assert!(!shard_path(&p, 0).exists(), "data removed unread");
        // A shard file of another length than recorded.
        shard_file(&p, 0, 7, 103);
        shard_file(&p, 1, 7, 101);
        commit(&p, &fp(), &[103, 102], 7).unwrap();
        assert!(matches!(take(&p, &fp()), Found::Cold(Some(_))));
        // Two servers given one path: a shard file of another stop's, of
        // the length the marker recorded.
        shard_file(&p, 0, 7, 103);
        shard_file(&p, 1, 8, 102);
        commit(&p, &fp(), &[103, 102], 7).unwrap();
        let Found::Cold(Some(why)) = take(&p, &fp()) else {
            panic!()
        };
        assert!(why.contains("mem.1 was not written by the stop"), "{why}");
        assert!(!shard_path(&p, 0).exists(), "data removed unread");
        // A marker of an earlier build, which named no run.
        shard_file(&p, 0, 0, 103);
        shard_file(&p, 1, 0, 102);
        commit(&p, &fp(), &[103, 102], 0).unwrap();
        let text = fs::read_to_string(meta_path(&p))
            .unwrap()
            .replace("run 0\n", "");
        fs::write(meta_path(&p), text).unwrap();
        assert!(matches!(take(&p, &fp()), Found::Cold(Some(_))));
        // Data without a marker: a crash.
        fs::write(shard_path(&p, 1), b"d").unwrap();
        assert!(matches!(take(&p, &fp()), Found::Cold(Some(_))));
        // A crash after the data files were read: only the sentinel says so.
        begin(&p).unwrap();
        let Found::Cold(Some(why)) = take(&p, &fp()) else {
            panic!()
        };
        assert!(why.contains("clean-stop"), "{why}");
        // A marker that is not a regular file (a FIFO would block the
        // start, /dev/zero would fill memory) is not read.
        std::os::unix::fs::symlink("/dev/zero", meta_path(&p)).unwrap();
        assert!(matches!(take(&p, &fp()), Found::Cold(Some(_))));
        assert!(fs::symlink_metadata(meta_path(&p)).is_err(), "removed");
        fs::write(shard_path(&p, 1), b"d").unwrap();
        let Found::Cold(Some(why)) = take(&p, &fp()) else {
            panic!()
        };
        assert!(why.contains("clean-stop"), "{why}");
        assert!(!shard_path(&p, 1).exists());
    }
}
