//! Executes text-protocol requests against a shard and writes the replies.

use super::shard::{push_line, push_num, push_value, Shard, VERSION};
use crate::protocol::text::{self, Request};
use crate::store::{DeleteOutcome, DeltaOutcome, SetArgs, SetOutcome};

/// One key of a get/gets/gat/gats: writes its VALUE block if found.
pub fn get_key(sh: &mut Shard, key: &[u8], cas: bool, touch: Option<i64>, out: &mut Vec<u8>) {
    if key.len() > crate::protocol::KEY_MAX {
        return push_line(out, text::BAD_FORMAT);
    }
    let found = match touch {
        None => {
            sh.c.cmd_get += 1;
            sh.store.get(key)
        }
        Some(e) => {
            sh.c.cmd_touch += 1;
            let f = sh.store.touch(key, e);
            if let Some(f) = &f {
                sh.store.bump(f);
            }
            f
        }
    };
    match (found, touch) {
        (Some(_), None) => sh.c.get_hits += 1,
        (None, None) => sh.c.get_misses += 1,
        (Some(_), Some(_)) => sh.c.touch_hits += 1,
        (None, Some(_)) => sh.c.touch_misses += 1,
    }
    let Some(f) = found else { return };
    let it = f.item;
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(it.key());
    out.push(b' ');
    push_num(out, it.flags());
    out.push(b' ');
    push_num(out, it.vlen());
    if cas {
        out.push(b' ');
        push_num(out, sh.store.cas_of(&f));
    }
    out.extend_from_slice(b"\r\n");
    push_value(sh, out, it.value());
    out.extend_from_slice(b"\r\n");
}

/// Executes a request whose keys all belong to this shard. Requests that
/// concern every shard (flush_all, stats) are handled by the engine.
pub fn exec(sh: &mut Shard, req: &Request, out: &mut Vec<u8>) {
    let start = out.len();
    let noreply = match *req {
        Request::Get { keys, .. }
            if text::tokens(keys).any(|k| k.len() > crate::protocol::KEY_MAX) =>
        {
            // memcached answers a get with an over-long key with the error alone.
            push_line(out, text::BAD_FORMAT);
            false
        }
        Request::Get { keys, cas, touch } => {
            for key in text::tokens(keys) {
                get_key(sh, key, cas, touch, out);
            }
            out.extend_from_slice(b"END\r\n");
            false
        }
        Request::Store(s) => {
            sh.c.cmd_set += 1;
            let mut a = SetArgs::new(s.mode, s.key, s.value, s.flags, s.exptime);
            a.cas = s.cas;
            let is_cas = s.cas != 0;
            let r = sh.store.set(&a);
            sh.count_set(&r, is_cas);
            let line = match r {
                SetOutcome::Stored { .. } => "STORED",
                SetOutcome::NotStored => "NOT_STORED",
                SetOutcome::Exists => "EXISTS",
                SetOutcome::NotFound => "NOT_FOUND",
                SetOutcome::TooLarge => text::TOO_LARGE,
                SetOutcome::NoMemory => text::NO_MEMORY,
            };
            push_line(out, line);
            s.noreply
        }
        Request::TooLarge { key, set, noreply } => {
            sh.c.store_too_large += 1;
            if set {
                if let Some(f) = sh.store.find(key) {
                    sh.store.remove(&f);
                }
            }
            push_line(out, text::TOO_LARGE);
            noreply
        }
        Request::Delete { key, noreply } => {
            let line = match sh.store.delete(key, 0) {
                DeleteOutcome::Deleted => {
                    sh.c.delete_hits += 1;
                    "DELETED"
                }
                _ => {
                    sh.c.delete_misses += 1;
                    "NOT_FOUND"
                }
            };
            push_line(out, line);
            noreply
        }
        Request::Delta {
            key,
            incr,
            delta,
            noreply,
        } => {
            match sh.store.delta(key, incr, delta, 0) {
                DeltaOutcome::Value { value, .. } => {
                    if incr {
                        sh.c.incr_hits += 1
                    } else {
                        sh.c.decr_hits += 1
                    }
                    push_num(out, value);
                    out.extend_from_slice(b"\r\n");
                }
                DeltaOutcome::NotFound => {
                    if incr {
                        sh.c.incr_misses += 1
                    } else {
                        sh.c.decr_misses += 1
                    }
                    push_line(out, "NOT_FOUND");
                }
                DeltaOutcome::NonNumeric => push_line(out, text::NON_NUMERIC),
                DeltaOutcome::Exists => push_line(out, "EXISTS"),
                DeltaOutcome::NoMemory => push_line(out, "SERVER_ERROR out of memory"),
            }
            noreply
        }
        Request::Touch {
            key,
            exptime,
            noreply,
        } => {
            sh.c.cmd_touch += 1;
            if sh.store.touch(key, exptime).is_some() {
                sh.c.touch_hits += 1;
                push_line(out, "TOUCHED");
            } else {
                sh.c.touch_misses += 1;
                push_line(out, "NOT_FOUND");
            }
            noreply
        }
        Request::Flush { delay, noreply } => {
            sh.c.cmd_flush += 1;
            sh.store.flush(delay);
            push_line(out, "OK");
            noreply
        }
        Request::Version => {
            out.extend_from_slice(b"VERSION ");
            push_line(out, VERSION);
            false
        }
        Request::Verbosity { noreply } => {
            push_line(out, "OK");
            noreply
        }
        Request::Quit | Request::Stats { .. } => false,
        Request::CacheMemlimit { mb, noreply } => {
            let share = (mb as usize) * (1 << 20) / sh.shards.max(1);
            if sh.store.set_memory_limit(share) {
                push_line(out, "OK");
            } else {
                push_line(
                    out,
                    "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust",
                );
            }
            noreply
        }
        Request::Shutdown => {
            push_line(out, "ERROR: shutdown not enabled");
            false
        }
        Request::Meta(m) => {
            super::exec_meta::exec(sh, &m, out);
            false
        }
        Request::Error(e) => {
            push_line(out, e);
            false
        }
    };
    if noreply {
        out.truncate(start);
    }
}
