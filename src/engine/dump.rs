//! `lru_crawler metadump` and `stats cachedump`: every shard's items,
//! streamed to the client in bounded steps.
//!
//! A dump belongs to its connection (`Conn::dump`). Each loop turn, the
//! worker the connection is on takes one step for each of its dumps that
//! is not waiting and whose client keeps up (less than `OUT_HIGH` bytes
//! unsent): a `Store::scan` step of at most `STEP_RECORDS` records, on its
//! own shard directly, or on another worker's as a `Job::Dump` whose lines
//! come back into a reply slot (`Msg::DumpReply`, with the next cursor).
//! Shards are walked one after the other; `END` closes the dump. While a
//! dump runs, the connection's further requests wait unparsed (memcached
//! refuses to pipeline behind a metadump), so nothing interleaves.
//!
//! Like memcached's crawler, the view is best effort: an item stored,
//! moved or removed during the dump may be missed or listed twice.

use super::hop::Job;
use super::worker::Worker;
use crate::protocol::admin::AdminCmd;
use crate::store::classes;
use crate::store::scan::{ScanCursor, ScanFilter, SCAN_DONE};
use crate::store::Store;

/// Records a step reads at most: measured about 100 µs of a worker when
/// every record is listed (benches/scan.rs; `cargo bench --bench scan`).
pub const STEP_RECORDS: usize = 512;
/// A dump waits while its connection has this many bytes unsent.
const OUT_HIGH: usize = 256 * 1024;
/// memcached's cap on one `stats cachedump` reply, bytes.
const CACHEDUMP_MAX: usize = 2 * 1024 * 1024;

/// What a dump lists and how.
#[derive(Clone, Copy, Debug)]
pub struct DumpSpec {
    /// `stats cachedump`'s `ITEM` lines (else metadump's `key=` lines).
    pub cachedump: bool,
    /// Bit i: class id i is listed. (memcached ends metadump lines with
    /// `\n` alone, cachedump's with `\r\n`; `END` with `\r\n`.)
    pub classes: u64,
}

/// A connection's dump in progress.
#[derive(Debug)]
pub struct DumpState {
    spec: DumpSpec,
    /// The worker whose shard is being read, and where.
    worker: usize,
    cursor: ScanCursor,
    /// A step on another worker is in flight.
    waiting: bool,
    /// Lines and bytes still allowed (cachedump's limit and 2 MiB).
    lines_left: u64,
    bytes_left: usize,
}

/// One step on `store`: the lines of at most `STEP_RECORDS` records from
/// `cursor`, at most `max_lines` of them, and where to go on.
pub fn step(
    store: &Store,
    spec: DumpSpec,
    cursor: ScanCursor,
    max_lines: u64,
) -> (Vec<u8>, ScanCursor) {
    let max_items = max_lines.min(STEP_RECORDS as u64) as usize;
    let st = store.scan(cursor, &ScanFilter::default(), STEP_RECORDS, max_items);
    let now = store.clock().unix_now();
    let mut out = Vec::new();
    for it in &st.items {
        let size = classes::memcached_size(it.key.len(), it.value_len as usize, it.flags);
        let cls = classes::class_of(size);
        if spec.classes & (1 << cls) == 0 {
            continue;
        }
        let exp = if it.ttl < 0 { -1 } else { now + it.ttl };
        if spec.cachedump {
            // memcached: the key as stored, the value's bytes, the
            // absolute expiry (0 = none).
            out.extend_from_slice(b"ITEM ");
            out.extend_from_slice(&it.key);
            let line = format!(" [{} b; {} s]\r\n", it.value_len, exp.max(0));
            out.extend_from_slice(line.as_bytes());
        } else {
            out.extend_from_slice(b"key=");
            urlencode(&it.key, &mut out);
            let line = format!(
                " exp={exp} la={} cas={} fetch={} cls={cls} size={size}\n",
                it.atime_unix,
                it.cas,
                if it.fetched { "yes" } else { "no" },
            );
            out.extend_from_slice(line.as_bytes());
        }
    }
    (out, st.next)
}

/// memcached's `uriencode`: letters, digits and `-._~` as they are, every
/// other byte as `%XX`.
pub(super) fn urlencode(key: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

impl Worker {
    /// Starts the dump an admin command asks for on connection `idx`, or
    /// answers its one line.
    pub(super) fn admin_cmd(&mut self, idx: u32, cmd: AdminCmd) {
        let (spec, lines_left, bytes_left) = match cmd {
            AdminCmd::Line(l) => {
                crate::exec::reply::push_line(self.conn(idx).reply_buf(), l);
                return;
            }
            AdminCmd::Silent => return,
            AdminCmd::MetaDump { classes } => (
                DumpSpec {
                    cachedump: false,
                    classes,
                },
                u64::MAX,
                usize::MAX,
            ),
            AdminCmd::CacheDump { class, limit } => (
                DumpSpec {
                    cachedump: true,
                    classes: 1 << class,
                },
                if limit == 0 { u64::MAX } else { limit as u64 },
                CACHEDUMP_MAX,
            ),
        };
        let gen = self.conn(idx).gen;
        self.conn(idx).dump = Some(Box::new(DumpState {
            spec,
            worker: 0,
            cursor: 0,
            waiting: false,
            lines_left,
            bytes_left,
        }));
        self.dumps.push((idx, gen));
    }

    /// Whether a dump could take a step now (the loop must not sleep).
    pub(super) fn dump_ready(&self) -> bool {
        self.dumps.iter().any(|&(idx, gen)| {
            self.conns[idx as usize].as_ref().is_some_and(|c| {
                c.gen == gen && c.dump.as_ref().is_some_and(|d| !d.waiting) && c.unsent() < OUT_HIGH
            })
        })
    }

    /// One step for each dump that may take one.
    pub(super) fn run_dumps(&mut self) {
        let mut i = 0;
        while i < self.dumps.len() {
            let (idx, gen) = self.dumps[i];
            let live = self.conns[idx as usize]
                .as_ref()
                .is_some_and(|c| c.gen == gen && c.dump.is_some() && !c.closing);
            if !live {
                self.dumps.swap_remove(i);
                continue;
            }
            i += 1;
            self.dump_step(idx);
        }
    }

    fn dump_step(&mut self, idx: u32) {
        let me = self.id;
        let c = self.conn(idx);
        if c.unsent() >= OUT_HIGH {
            return;
        }
        let Some(d) = c.dump.as_mut() else { return };
        if d.waiting {
            return;
        }
        let (worker, spec, cursor, left) = (d.worker, d.spec, d.cursor, d.lines_left);
        if worker != me {
            d.waiting = true;
            self.forward(
                idx,
                worker,
                Job::Dump {
                    spec,
                    cursor,
                    max_lines: left,
                },
            );
            return;
        }
        let (bytes, next) = step(&self.shard.store, spec, cursor, left);
        self.dump_progress(idx, &bytes, next, false);
    }

    /// Takes a step's lines (already in the output when `in_slot`) and
    /// moves the dump on: to the next cursor, the next worker, or `END`.
    pub(super) fn dump_progress(
        &mut self,
        idx: u32,
        bytes: &[u8],
        next: ScanCursor,
        in_slot: bool,
    ) {
        let n = self.shared.mesh.n;
        let c = self.conn(idx);
        let Some(d) = c.dump.as_mut() else { return };
        d.waiting = false;
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        d.lines_left = d.lines_left.saturating_sub(lines);
        d.bytes_left = d.bytes_left.saturating_sub(bytes.len());
        d.cursor = next;
        if next == SCAN_DONE {
            d.worker += 1;
            d.cursor = 0;
        }
        let done = d.worker >= n || d.lines_left == 0 || d.bytes_left == 0;
        if !in_slot {
            c.reply_buf().extend_from_slice(bytes);
        }
        if done {
            c.dump = None;
            c.reply_buf().extend_from_slice(b"END\r\n");
            // Requests that arrived behind the dump run now.
            self.process(idx);
        }
        self.after_process(idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_as_memcached_does() {
        let mut v = Vec::new();
        urlencode(b"a%20b c/\xff-._~Z9", &mut v);
        assert_eq!(v, b"a%2520b%20c%2F%FF-._~Z9");
    }
}
