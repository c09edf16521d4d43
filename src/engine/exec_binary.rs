//! Executes binary-protocol requests against a shard.

use super::shard::{push_value, Shard, VERSION};
use crate::protocol::binary::{is_quiet, op, status, write_head, write_response, Request};
use crate::store::{DeleteOutcome, DeltaOutcome, SetArgs, SetMode, SetOutcome};

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

/// Executes one request; the engine handles Quit, Stat and Flush
/// (they concern the connection or every shard).
pub fn exec(sh: &mut Shard, r: &Request, out: &mut Vec<u8>) {
    let h = r.h;
    let quiet = is_quiet(h.opcode);
    let ok = |out: &mut Vec<u8>, cas: u64, extras: &[u8], key: &[u8], value: &[u8]| {
        write_response(out, h.opcode, status::OK, h.opaque, cas, extras, key, value)
    };
    match h.opcode {
        op::GET | op::GETQ | op::GETK | op::GETKQ | op::GAT | op::GATQ | op::GATK | op::GATKQ => {
            let touch = matches!(h.opcode, op::GAT | op::GATQ | op::GATK | op::GATKQ);
            let with_key = matches!(h.opcode, op::GETK | op::GETKQ | op::GATK | op::GATKQ);
            let found = if touch {
                sh.c.cmd_touch += 1;
                let f = sh.store.touch(r.key, r.extra_u32(0) as i32 as i64);
                if let Some(f) = &f {
                    sh.store.bump(f);
                }
                f
            } else {
                sh.c.cmd_get += 1;
                sh.store.get(r.key)
            };
            match (&found, touch) {
                (Some(_), false) => sh.c.get_hits += 1,
                (None, false) => sh.c.get_misses += 1,
                (Some(_), true) => sh.c.touch_hits += 1,
                (None, true) => sh.c.touch_misses += 1,
            }
            match found {
                Some(f) => {
                    let flags = f.item.flags().to_be_bytes();
                    let key = if with_key { r.key } else { &[] };
                    let (cas, v) = (sh.store.cas_of(&f), f.item.value());
                    write_head(
                        out,
                        h.opcode,
                        status::OK,
                        h.opaque,
                        cas,
                        &flags,
                        key,
                        v.len(),
                    );
                    push_value(sh, out, v);
                }
                None if quiet => {}
                None if with_key => write_response(
                    out,
                    h.opcode,
                    status::KEY_ENOENT,
                    h.opaque,
                    0,
                    &[],
                    r.key,
                    b"",
                ),
                None => error(out, h.opcode, status::KEY_ENOENT, h.opaque),
            }
        }
        op::SET
        | op::SETQ
        | op::ADD
        | op::ADDQ
        | op::REPLACE
        | op::REPLACEQ
        | op::APPEND
        | op::APPENDQ
        | op::PREPEND
        | op::PREPENDQ => {
            sh.c.cmd_set += 1;
            let mode = match h.opcode {
                op::SET | op::SETQ => SetMode::Set,
                op::ADD | op::ADDQ => SetMode::Add,
                op::REPLACE | op::REPLACEQ => SetMode::Replace,
                op::APPEND | op::APPENDQ => SetMode::Append,
                _ => SetMode::Prepend,
            };
            if r.extras.len() < 8 && matches!(mode, SetMode::Set | SetMode::Add | SetMode::Replace)
            {
                // A body too large to buffer arrives without its parts.
                sh.c.store_too_large += 1;
                if mode == SetMode::Set {
                    if let Some(f) = sh.store.find(r.key) {
                        sh.store.remove(&f);
                    }
                }
                return error(out, h.opcode, status::E2BIG, h.opaque);
            }
            let (flags, exptime) = if r.extras.len() >= 8 {
                (r.extra_u32(0), r.extra_u32(4) as i32 as i64)
            } else {
                (0, 0)
            };
            let mut a = SetArgs::new(mode, r.key, r.value, flags, exptime);
            a.cas = h.cas;
            let r = sh.store.set(&a);
            sh.count_set(&r, h.cas != 0);
            let st = match r {
                SetOutcome::Stored { cas } => {
                    if !quiet {
                        ok(out, cas, &[], &[], &[]);
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
        op::DELETE | op::DELETEQ => match sh.store.delete(r.key, h.cas) {
            DeleteOutcome::Deleted => {
                sh.c.delete_hits += 1;
                if !quiet {
                    ok(out, 0, &[], &[], &[]);
                }
            }
            DeleteOutcome::NotFound => {
                sh.c.delete_misses += 1;
                error(out, h.opcode, status::KEY_ENOENT, h.opaque);
            }
            DeleteOutcome::Exists => error(out, h.opcode, status::KEY_EEXISTS, h.opaque),
        },
        op::INCREMENT | op::INCREMENTQ | op::DECREMENT | op::DECREMENTQ => {
            let incr = matches!(h.opcode, op::INCREMENT | op::INCREMENTQ);
            let (delta, initial, exptime) = (r.extra_u64(0), r.extra_u64(8), r.extra_u32(16));
            let mut res = sh.store.delta(r.key, incr, delta, h.cas);
            if res == DeltaOutcome::NotFound && exptime != u32::MAX && h.cas == 0 {
                let mut b = itoa::Buffer::new();
                let a = SetArgs::new(
                    SetMode::Add,
                    r.key,
                    b.format(initial).as_bytes(),
                    0,
                    exptime as i32 as i64,
                );
                if let SetOutcome::Stored { cas } = sh.store.set(&a) {
                    res = DeltaOutcome::Value {
                        value: initial,
                        cas,
                    };
                }
            }
            match res {
                DeltaOutcome::Value { value, cas } => {
                    if incr {
                        sh.c.incr_hits += 1;
                    } else {
                        sh.c.decr_hits += 1;
                    }
                    if !quiet {
                        ok(out, cas, &[], &[], &value.to_be_bytes());
                    }
                }
                DeltaOutcome::NotFound => {
                    if incr {
                        sh.c.incr_misses += 1;
                    } else {
                        sh.c.decr_misses += 1;
                    }
                    error(out, h.opcode, status::KEY_ENOENT, h.opaque);
                }
                DeltaOutcome::Exists => error(out, h.opcode, status::KEY_EEXISTS, h.opaque),
                DeltaOutcome::NonNumeric => error(out, h.opcode, status::DELTA_BADVAL, h.opaque),
                DeltaOutcome::NoMemory => error(out, h.opcode, status::ENOMEM, h.opaque),
            }
        }
        op::TOUCH => {
            sh.c.cmd_touch += 1;
            match sh.store.touch(r.key, r.extra_u32(0) as i32 as i64) {
                Some(f) => {
                    sh.c.touch_hits += 1;
                    ok(out, sh.store.cas_of(&f), &[], &[], &[]);
                }
                None => {
                    sh.c.touch_misses += 1;
                    error(out, h.opcode, status::KEY_ENOENT, h.opaque);
                }
            }
        }
        op::NOOP => ok(out, 0, &[], &[], &[]),
        op::VERSION => ok(out, 0, &[], &[], VERSION.as_bytes()),
        op::VERBOSITY => ok(out, 0, &[], &[], &[]),
        op::FLUSH | op::FLUSHQ => {
            sh.c.cmd_flush += 1;
            let delay = if r.extras.len() == 4 {
                r.extra_u32(0) as i32 as i64
            } else {
                0
            };
            sh.store.flush(delay);
            if !quiet {
                ok(out, 0, &[], &[], &[]);
            }
        }
        _ => error(out, h.opcode, status::UNKNOWN_COMMAND, h.opaque),
    }
}
