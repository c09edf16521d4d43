//! Text-protocol replies (memcached `doc/protocol.txt`): runs a request
//! through the shared operations (`ops.rs`) and writes memcached's lines.

use super::ops::store_mode;
use super::reply::{push_line, push_num, push_value};
use super::shard::{Shard, VERSION};
use crate::protocol::meta::{self, base64_decode};
use crate::protocol::text::{self, Request};
use crate::protocol::{Refusal, StoreCmd, KEY_MAX};
use crate::store::{DeleteOutcome, DeltaOutcome, SetArgs, SetOutcome};

/// One key of a get/gets/gat/gats: writes its VALUE block if found.
/// `touch` is gat's exptime.
pub fn get_key(sh: &mut Shard, key: &[u8], cas: bool, touch: Option<i64>, out: &mut Vec<u8>) {
    let f = sh.fetch(key, touch);
    sh.detail.get(key, f.is_some());
    let Some(f) = f else {
        return;
    };
    let it = f.item;
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(it.key());
    out.push(b' ');
    push_num(out, it.flags());
    out.push(b' ');
    push_num(out, it.vlen());
    if cas {
        out.push(b' ');
        push_num(out, sh.store.client_cas(&f));
    }
    out.extend_from_slice(b"\r\n");
    push_value(sh, out, it.value());
    out.extend_from_slice(b"\r\n");
}

/// Executes a request whose keys all belong to this shard. What concerns
/// the connection or the server (stats, quit, shutdown) and the policy
/// (`-F`, `-A`) are the dispatcher's; it never hands those here.
pub fn exec(sh: &mut Shard, req: &Request, out: &mut Vec<u8>) {
    let start = out.len();
    let noreply = match *req {
        Request::Get { keys, cas, touch } => {
            for key in text::tokens(keys) {
                get_key(sh, key, cas, touch, out);
            }
            out.extend_from_slice(b"END\r\n");
            false
        }
        Request::Store(s) => {
            sh.detail.set(s.key);
            let mut a = SetArgs::new(store_mode(s.mode), s.key, s.value, s.flags, s.exptime);
            let cas = s.cas.map(|c| sh.store_unique(c));
            a.cas = cas.unwrap_or(0);
            let cmd = if cas.is_some() {
                StoreCmd::Cas
            } else {
                StoreCmd::Plain
            };
            let r = if cas == Some(0) {
                sh.store_cas_zero(s.key)
            } else {
                sh.store_item(&a, cmd, s.mode)
            };
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
        Request::TooLarge(o) => {
            let mut kbuf = [0u8; KEY_MAX + 6];
            let key = if o.base64 {
                base64_decode(o.key, &mut kbuf)
            } else {
                Some(o.key)
            };
            let (line, silenced) = match key {
                // memcached's process_mset_command decodes the key before
                // it sizes the item: the decoding error wins (1.6.18,
                // measured), and the data block is swallowed all the same.
                None => (meta::BAD_KEY_ENCODING, o.noreply),
                Some(key) => {
                    if o.cmd != StoreCmd::Meta {
                        sh.detail.set(key);
                    }
                    sh.refuse_block(key, o.cmd, o.mode, o.refusal);
                    let line = match o.refusal {
                        Refusal::TooLarge => text::TOO_LARGE,
                        Refusal::NoMemory => text::NO_MEMORY,
                        Refusal::NoMemoryReading => text::NO_MEMORY_READING,
                    };
                    (line, o.silenced())
                }
            };
            push_line(out, line);
            silenced
        }
        Request::Delete { key, noreply } => {
            sh.detail.delete(key);
            let line = match sh.delete(key, 0) {
                DeleteOutcome::Deleted => "DELETED",
                _ => "NOT_FOUND",
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
            match sh.arith(key, incr, delta, 0, None) {
                DeltaOutcome::Value { value, .. } => {
                    push_num(out, value);
                    out.extend_from_slice(b"\r\n");
                }
                DeltaOutcome::NotFound => push_line(out, "NOT_FOUND"),
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
            let line = match sh.touch(key, exptime) {
                Some(_) => "TOUCHED",
                None => "NOT_FOUND",
            };
            push_line(out, line);
            noreply
        }
        Request::Flush { delay, noreply } => {
            sh.flush(delay);
            push_line(out, "OK");
            noreply
        }
        Request::FlushPrefix { prefix, noreply } => {
            sh.flush_prefix(prefix);
            push_line(out, "OK");
            noreply
        }
        Request::Version => {
            out.extend_from_slice(b"VERSION ");
            push_line(out, VERSION);
            false
        }
        Request::Verbosity { noreply, .. } => {
            push_line(out, "OK");
            noreply
        }
        Request::CacheMemlimit { mb, noreply } => {
            if sh.set_memlimit(mb) {
                push_line(out, "OK");
            } else {
                push_line(
                    out,
                    "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust",
                );
            }
            noreply
        }
        Request::Meta(m) => {
            super::meta::exec(sh, &m, out);
            false
        }
        Request::Error(e) => {
            push_line(out, e);
            false
        }
        Request::Quiet(_) => false,
        // The dispatcher's (see the function's comment).
        Request::Quit
        | Request::Stats { .. }
        | Request::Admin { .. }
        | Request::Shutdown { .. }
        | Request::RefreshCerts { .. } => false,
    };
    if noreply {
        out.truncate(start);
    }
}
