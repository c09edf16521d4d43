//! Binary-protocol replies (memcached `doc/protocol-binary.txt`): runs a
//! request through the shared operations (`ops.rs`) and writes response
//! packets. The opcode was decoded once by the parser (`binary::Command`).

use super::ops::{store_mode, AutoCreate};
use super::reply::push_value;
use super::shard::{Shard, VERSION};
use crate::protocol::binary::{status, write_head, write_response, Kind, Request};
use crate::protocol::{text, Refusal, SetMode, StoreCmd};
use crate::store::{DeleteOutcome, DeltaOutcome, SetArgs, SetOutcome};

/// memcached's error bodies, by status.
pub fn error_text(st: u16) -> &'static str {
    match st {
        status::KEY_ENOENT => "Not found",
        status::KEY_EEXISTS => "Data exists for key.",
        status::E2BIG => "Too large.",
        status::EINVAL => "Invalid arguments",
        status::NOT_STORED => "Not stored.",
        status::DELTA_BADVAL => "Non-numeric server-side value for incr or decr",
        status::AUTH_ERROR => "Auth failure.",
        status::ENOMEM => "Out of memory",
        _ => "Unknown command",
    }
}

/// Writes an error response: status `st` with memcached's text as body.
pub fn error(out: &mut Vec<u8>, opcode: u8, st: u16, opaque: u32) {
    write_response(
        out,
        opcode,
        st,
        opaque,
        0,
        &[],
        &[],
        error_text(st).as_bytes(),
    );
}

/// Binary exptimes are unsigned 32-bit seconds (protocol-binary.txt);
/// memcached reads values past 2^31 as absolute times after 2038.
fn exptime(v: u32) -> i64 {
    v as i64
}

/// A FLUSH's delay: its optional 4-byte extras, as an exptime.
pub fn flush_delay(r: &Request) -> i64 {
    if r.extras.len() == 4 {
        exptime(r.extra_u32(0))
    } else {
        0
    }
}

/// The header (and key) of a GET/GETK/GETQ/GETKQ/GAT* hit, for a value of
/// `vlen` bytes that the caller appends.
pub fn get_hit_head(r: &Request, out: &mut Vec<u8>, flags: u32, cas: u64, vlen: usize) {
    let key = if r.cmd.with_key { r.key } else { &[] };
    let h = r.h;
    write_head(
        out,
        h.opcode,
        status::OK,
        h.opaque,
        cas,
        &flags.to_be_bytes(),
        key,
        vlen,
    );
}

/// The reply to a GET* miss: nothing for the quiet ones, the key with
/// KEY_ENOENT for GETK, KEY_ENOENT alone otherwise.
pub fn get_miss(r: &Request, out: &mut Vec<u8>) {
    let h = r.h;
    if r.cmd.quiet {
        return;
    }
    if r.cmd.with_key {
        write_response(
            out,
            h.opcode,
            status::KEY_ENOENT,
            h.opaque,
            0,
            &[],
            r.key,
            b"",
        );
    } else {
        error(out, h.opcode, status::KEY_ENOENT, h.opaque);
    }
}

/// Executes one request whose key (if any) this shard owns. Quit, Stat,
/// and the policy on Flush are the dispatcher's.
pub fn exec(sh: &mut Shard, r: &Request, out: &mut Vec<u8>) {
    let h = r.h;
    let quiet = r.cmd.quiet;
    let ok = |out: &mut Vec<u8>, cas: u64, value: &[u8]| {
        write_response(out, h.opcode, status::OK, h.opaque, cas, &[], &[], value)
    };
    if r.cmd.kind == Kind::Delete {
        // Found or not (memcached's process_bin_delete counts first).
        sh.detail.delete(r.key);
    }
    match r.cmd.kind {
        Kind::Get | Kind::Gat => {
            let touch = (r.cmd.kind == Kind::Gat).then(|| exptime(r.extra_u32(0)));
            let found = sh.fetch(r.key, touch);
            sh.detail.get(r.key, found.is_some());
            match found {
                Some(f) => {
                    let (cas, v) = (sh.store.client_cas(&f), f.item.value());
                    get_hit_head(r, out, f.item.flags(), cas, v.len());
                    push_value(sh, out, v);
                }
                None => get_miss(r, out),
            }
        }
        Kind::Store(mode) => {
            sh.detail.set(r.key);
            if let Some(refusal) = r.refused {
                sh.refuse_block(r.key, StoreCmd::Binary, mode, refusal);
                // memcached's process_bin_update and conn_nread strip
                // "SERVER_ERROR " from their text replies for the body.
                let (st, body) = match refusal {
                    Refusal::TooLarge => (status::E2BIG, error_text(status::E2BIG)),
                    Refusal::NoMemory => (status::ENOMEM, "Out of memory allocating item"),
                    Refusal::NoMemoryReading => {
                        let text = text::NO_MEMORY_READING;
                        (
                            status::ENOMEM,
                            text.strip_prefix("SERVER_ERROR ").unwrap_or(text),
                        )
                    }
                };
                let (op, opaque) = (h.opcode, h.opaque);
                return write_response(out, op, st, opaque, 0, &[], &[], body.as_bytes());
            }
            let (flags, exp) = if r.extras.len() >= 8 {
                (r.extra_u32(0), exptime(r.extra_u32(4)))
            } else {
                (0, 0)
            };
            // memcached's process_bin_update: a SET/ADD/REPLACE carrying
            // a CAS is a CAS store (NREAD_CAS), whatever its opcode.
            let cas = sh.store_unique(h.cas);
            let mode = match mode {
                SetMode::Add | SetMode::Replace if cas != 0 => SetMode::Set,
                m => m,
            };
            let mut a = SetArgs::new(store_mode(mode), r.key, r.value, flags, exp);
            a.cas = cas;
            let st = match sh.store_item(&a, StoreCmd::Binary, mode) {
                SetOutcome::Stored { cas } => {
                    if !quiet {
                        ok(out, cas, &[]);
                    }
                    return;
                }
                SetOutcome::NotStored => match mode {
                    SetMode::Add => status::KEY_EEXISTS,
                    SetMode::Replace => status::KEY_ENOENT,
                    _ => status::NOT_STORED,
                },
                SetOutcome::Exists => status::KEY_EEXISTS,
                SetOutcome::NotFound => status::KEY_ENOENT,
                SetOutcome::TooLarge => status::E2BIG,
                SetOutcome::NoMemory => status::ENOMEM,
            };
            error(out, h.opcode, st, h.opaque);
        }
        Kind::Delete => match sh.delete(r.key, h.cas) {
            DeleteOutcome::Deleted => {
                if !quiet {
                    ok(out, 0, &[]);
                }
            }
            DeleteOutcome::NotFound => error(out, h.opcode, status::KEY_ENOENT, h.opaque),
            DeleteOutcome::Exists => error(out, h.opcode, status::KEY_EEXISTS, h.opaque),
        },
        Kind::Arith(incr) => {
            let (delta, initial, exp) = (r.extra_u64(0), r.extra_u64(8), r.extra_u32(16));
            // exptime 0xffffffff: "do not create" (protocol-binary.txt);
            // a CAS is compared only with an item that exists (memcached's
            // process_bin_arithmetic creates a missing one regardless).
            let create = (exp != u32::MAX).then(|| AutoCreate {
                initial,
                exptime: exptime(exp),
            });
            match sh.arith(r.key, incr, delta, h.cas, create) {
                DeltaOutcome::Value { value, cas } => {
                    if !quiet {
                        ok(out, cas, &value.to_be_bytes());
                    }
                }
                DeltaOutcome::NotFound => error(out, h.opcode, status::KEY_ENOENT, h.opaque),
                DeltaOutcome::Exists => error(out, h.opcode, status::KEY_EEXISTS, h.opaque),
                DeltaOutcome::NonNumeric => error(out, h.opcode, status::DELTA_BADVAL, h.opaque),
                DeltaOutcome::NoMemory => error(out, h.opcode, status::ENOMEM, h.opaque),
            }
        }
        // As GAT without the value (process_bin_get_or_touch): the item's
        // flags as extras, its CAS.
        Kind::Touch => {
            let found = sh.touch(r.key, exptime(r.extra_u32(0)));
            sh.detail.get(r.key, found.is_some());
            match found {
                Some(f) => {
                    let flags = f.item.flags().to_be_bytes();
                    let cas = sh.store.client_cas(&f);
                    write_response(out, h.opcode, status::OK, h.opaque, cas, &flags, &[], &[]);
                }
                None => error(out, h.opcode, status::KEY_ENOENT, h.opaque),
            }
        }
        Kind::Noop | Kind::Verbosity => ok(out, 0, &[]),
        Kind::Version => ok(out, 0, VERSION.as_bytes()),
        Kind::Flush => {
            sh.flush(flush_delay(r));
            if !quiet {
                ok(out, 0, &[]);
            }
        }
        // The dispatcher's (see the function's comment).
        // The engine answers these (server_cmd.rs, auth_cmd.rs).
        Kind::Quit | Kind::Stat | Kind::SaslList | Kind::SaslAuth | Kind::SaslStep => {}
    }
}
