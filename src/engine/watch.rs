//! `watch`: memcached's log streams (fetchers, mutations, evictions,
//! connevents) to the connections that ask for them, in memcached 1.6's
//! line formats (its logger.c).
//!
//! While no one watches, a worker pays one relaxed load of [`kinds`] per
//! loop turn, which it copies into its store (`store::notes`); a lookup
//! then tests that copy. While some watch, the store and the execution
//! layer leave notes, and after each request the worker formats them
//! ([`emit`]) into each interested watcher's queue: bounded at
//! [`WATCHER_BUF`] bytes (memcached's `watcher_logbuf_size`); a line that
//! does not fit is dropped and counted, and the next line that fits is
//! preceded by `skipped=N` (memcached's words). The worker a watcher's
//! connection is on moves its queue to the connection each loop turn
//! (at least every 100 ms), as far as the client keeps up.

use crate::store::notes::{self, GetStatus, Note};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

/// memcached's limit on watchers at once (WATCHER_LIMIT).
pub const LIMIT: usize = 20;
/// Bytes a watcher's queue holds at most (memcached's default
/// `watcher_logbuf_size`, 256 KiB).
pub const WATCHER_BUF: usize = 256 * 1024;
/// memcached's per-worker log buffer (`worker_logbuf_size`, 64 KiB):
/// corecache formats lines straight into the watchers' queues, so no
/// buffer of this size exists; shown in `stats settings` as memcached's.
pub const WORKER_LOGBUF: usize = 64 * 1024;

/// Kinds of lines (`watch` arguments), as bits.
pub const FETCHERS: u32 = notes::FETCHERS;
/// `mutations`.
pub const MUTATIONS: u32 = notes::MUTATIONS;
/// `evictions`.
pub const EVICTIONS: u32 = notes::EVICTIONS;
/// `connevents`: connections opened and closed.
pub const CONNEVENTS: u32 = 8;
/// `rawcmds`, `sysevents`, `proxyreqs`, `proxyevents`, `proxyuser`:
/// accepted as memcached does; corecache has nothing to log under them.
pub const OTHER: u32 = 16;

/// Log lines dropped because a watcher's queue was full
/// (`log_watcher_skipped`).
static SKIPPED: AtomicU64 = AtomicU64::new(0);
/// Log lines queued for watchers (`log_watcher_sent`).
static SENT: AtomicU64 = AtomicU64::new(0);
/// The kinds some watcher wants (0: no watcher).
static KINDS: AtomicU32 = AtomicU32::new(0);
/// memcached's global log entry id (`gid`).
static GID: AtomicU64 = AtomicU64::new(0);
/// The watchers connected now.
static WATCHERS: Mutex<Vec<Arc<Watcher>>> = Mutex::new(Vec::new());

/// `log_watcher_skipped`.
pub fn skipped() -> u64 {
    SKIPPED.load(Relaxed)
}

/// `log_watcher_sent`.
pub fn sent() -> u64 {
    SENT.load(Relaxed)
}

/// `log_watchers`: watchers connected now.
pub fn watchers() -> u64 {
    registry().len() as u64
}

/// The kinds of lines some watcher wants; 0 while no one watches.
#[inline]
pub fn kinds() -> u32 {
    KINDS.load(Relaxed)
}

fn registry() -> MutexGuard<'static, Vec<Arc<Watcher>>> {
    WATCHERS.lock().unwrap_or_else(|e| e.into_inner())
}

fn next_gid() -> u64 {
    GID.fetch_add(1, Relaxed) + 1
}

/// `watch [kind ...]`'s kinds, as memcached's process_watch_command reads
/// them: none given means fetchers; an unknown word is `ERROR`.
pub fn parse_kinds<'a>(mut words: impl Iterator<Item = &'a [u8]>) -> Option<u32> {
    let mut k = 0;
    let mut any = false;
    for w in words.by_ref() {
        any = true;
        k |= match w {
            b"fetchers" => FETCHERS,
            b"mutations" => MUTATIONS,
            b"evictions" => EVICTIONS,
            b"connevents" => CONNEVENTS,
            b"rawcmds" | b"sysevents" | b"proxyreqs" | b"proxyevents" | b"proxyuser" => OTHER,
            _ => return None,
        };
    }
    Some(if any { k } else { FETCHERS })
}

/// One watcher: what it wants and the lines waiting for its connection.
#[derive(Debug)]
pub struct Watcher {
    kinds: u32,
    /// The worker its connection is on, which feeds it each loop turn.
    worker: usize,
    /// Entries older than the watcher are not its (memcached's min_gid).
    min_gid: u64,
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    bytes: Vec<u8>,
    skipped: u64,
}

impl Watcher {
    fn push(&self, line: &[u8]) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        // Room for a `skipped=` line too, as memcached asks (+128).
        if q.bytes.len() + line.len() + 128 > WATCHER_BUF {
            q.skipped += 1;
            SKIPPED.fetch_add(1, Relaxed);
            return;
        }
        if q.skipped > 0 {
            let s = format!("skipped={}\n", q.skipped);
            q.bytes.extend_from_slice(s.as_bytes());
            q.skipped = 0;
        }
        q.bytes.extend_from_slice(line);
        SENT.fetch_add(1, Relaxed);
    }

    /// Moves up to `max` bytes of whole lines to `out`.
    pub fn take(&self, out: &mut Vec<u8>, max: usize) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.bytes.len() <= max {
            out.append(&mut q.bytes);
            return;
        }
        let cut = q.bytes[..max]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        out.extend_from_slice(&q.bytes[..cut]);
        q.bytes.drain(..cut);
    }

    /// Whether lines wait.
    pub fn has_lines(&self) -> bool {
        !self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bytes
            .is_empty()
    }
}

/// Adds a watcher of `kinds`, or memcached's refusal line.
pub fn add(kinds: u32, worker: usize) -> Result<Arc<Watcher>, &'static str> {
    let mut reg = registry();
    if reg.len() >= LIMIT {
        return Err("WATCHER_TOO_MANY log watcher limit reached");
    }
    let w = Arc::new(Watcher {
        kinds,
        worker,
        min_gid: next_gid(),
        queue: Mutex::new(Queue::default()),
    });
    reg.push(w.clone());
    KINDS.store(reg.iter().fold(0, |k, w| k | w.kinds), Relaxed);
    Ok(w)
}

/// Removes a watcher (its connection closed).
pub fn remove(w: &Arc<Watcher>) {
    let mut reg = registry();
    reg.retain(|x| !Arc::ptr_eq(x, w));
    KINDS.store(reg.iter().fold(0, |k, w| k | w.kinds), Relaxed);
}

/// Formats `notes` (taken from a store; `cfd` is the descriptor of the
/// connection whose request made them) into the watchers that want them.
/// Returns the workers (bit *i* for worker *i* < 64) whose watchers got
/// lines: they feed them on their next loop turn.
pub fn emit(notes: &mut Vec<Note>, cfd: i32) -> u64 {
    let mut fed = 0u64;
    if notes.is_empty() {
        return fed;
    }
    let reg = registry();
    let mut line = Vec::with_capacity(256);
    for note in notes.drain(..) {
        let kind = match note {
            Note::Get { .. } => FETCHERS,
            Note::Store { .. } => MUTATIONS,
            Note::Evict { .. } => EVICTIONS,
        };
        if !reg.iter().any(|w| w.kinds & kind != 0) {
            continue;
        }
        let gid = next_gid();
        line.clear();
        render(&note, gid, cfd, &mut line);
        for w in reg
            .iter()
            .filter(|w| w.kinds & kind != 0 && gid >= w.min_gid)
        {
            w.push(&line);
            if w.worker < 64 {
                fed |= 1 << w.worker;
            }
        }
    }
    fed
}

/// A connection opened or closed (`connevents`): memcached's
/// `type=conn_new` / `type=conn_close` lines, for descriptor `cfd` (still
/// open: its peer is asked); `close` is a close's reason (`normal`,
/// `error`, `idle_timeout`, `shutdown`).
pub fn conn_event(cfd: i32, close: Option<&str>) {
    if kinds() & CONNEVENTS == 0 {
        return;
    }
    let reg = registry();
    // SAFETY: the caller's connection owns the descriptor, open meanwhile.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(cfd) };
    let addr = socket2::SockRef::from(&fd)
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket());
    let gid = next_gid();
    let (rip, rport, transport) = match addr {
        Some(a) => (a.ip().to_string(), a.port(), "tcp"),
        None => ("unix".to_string(), 0, "local"),
    };
    let mut line = ts_gid(gid);
    line.push_str(&match close {
        None => format!("type=conn_new rip={rip} rport={rport} transport={transport} cfd={cfd}\n"),
        Some(r) => format!(
            "type=conn_close rip={rip} rport={rport} transport={transport} reason={r} cfd={cfd}\n"
        ),
    });
    for w in reg
        .iter()
        .filter(|w| w.kinds & CONNEVENTS != 0 && gid >= w.min_gid)
    {
        w.push(line.as_bytes());
    }
}

/// `ts=<sec>.<usec> gid=<n> `: memcached prints the microseconds
/// without zero padding (`%d`).
fn ts_gid(gid: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("ts={}.{} gid={gid} ", now.as_secs(), now.subsec_micros())
}

fn render(note: &Note, gid: u64, cfd: i32, out: &mut Vec<u8>) {
    out.extend_from_slice(ts_gid(gid).as_bytes());
    let key = |k: &[u8], out: &mut Vec<u8>| super::dump::urlencode(k, out);
    match note {
        Note::Get {
            key: k,
            status,
            clsid,
            size,
        } => {
            out.extend_from_slice(b"type=item_get key=");
            key(k, out);
            let status = match status {
                GetStatus::NotFound => "not_found",
                GetStatus::Found => "found",
                GetStatus::Flushed => "flushed",
                GetStatus::Expired => "expired",
            };
            let rest = format!(" status={status} clsid={clsid} cfd={cfd} size={size}\n");
            out.extend_from_slice(rest.as_bytes());
        }
        Note::Store {
            key: k,
            status,
            cmd,
            ttl,
            clsid,
            size,
        } => {
            out.extend_from_slice(b"type=item_store key=");
            key(k, out);
            let rest = format!(
                " status={status} cmd={cmd} ttl={ttl} clsid={clsid} cfd={cfd} size={size}\n"
            );
            out.extend_from_slice(rest.as_bytes());
        }
        Note::Evict {
            key: k,
            fetched,
            ttl,
            la,
            clsid,
            size,
        } => {
            out.extend_from_slice(b"type=eviction key=");
            key(k, out);
            let fetch = if *fetched { "yes" } else { "no" };
            let rest = format!(" fetch={fetch} ttl={ttl} la={la} clsid={clsid} size={size}\n");
            out.extend_from_slice(rest.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_as_memcached_reads_them() {
        let w = |s: &[u8]| parse_kinds(s.split(|&c| c == b' ').filter(|t| !t.is_empty()));
        assert_eq!(w(b""), Some(FETCHERS));
        assert_eq!(w(b"mutations evictions"), Some(MUTATIONS | EVICTIONS));
        assert_eq!(w(b"fetchers bogus"), None);
        assert_eq!(w(b"sysevents"), Some(OTHER));
    }

    #[test]
    fn a_full_queue_drops_and_says_how_many() {
        let w = Watcher {
            kinds: FETCHERS,
            worker: 0,
            min_gid: 0,
            queue: Mutex::new(Queue::default()),
        };
        let line = vec![b'x'; 1000];
        let mut line = line;
        line.push(b'\n');
        let fits = (WATCHER_BUF - 128) / line.len();
        for _ in 0..fits + 3 {
            w.push(&line);
        }
        let mut out = Vec::new();
        w.take(&mut out, usize::MAX);
        assert_eq!(out.len(), fits * line.len());
        w.push(b"next\n");
        out.clear();
        w.take(&mut out, usize::MAX);
        assert_eq!(out, b"skipped=3\nnext\n");
    }

    #[test]
    fn lines_in_memcached_formats() {
        let mut out = Vec::new();
        let n = Note::Get {
            key: b"a b".as_slice().into(),
            status: GetStatus::Found,
            clsid: 1,
            size: 5,
        };
        render(&n, 7, 12, &mut out);
        let s = String::from_utf8(out).unwrap();
        let rest = s.split_once(" gid=7 ").unwrap().1;
        assert_eq!(
            rest,
            "type=item_get key=a%20b status=found clsid=1 cfd=12 size=5\n"
        );
    }
}
