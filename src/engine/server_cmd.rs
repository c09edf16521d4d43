//! Commands that concern the connection or the whole server rather than a
//! shard: `stats` (every group, text and binary), `quit`, `shutdown`,
//! `refresh_certs`.

use super::dispatch::{Op, Request};
use super::hop::Job;
use super::stats;
use super::stats_classes;
use super::stats_settings;
use super::worker::Worker;
use crate::exec::counters::Counters;
use crate::exec::reply::push_line;
use crate::protocol::admin;
use crate::protocol::binary::{self, status};
use crate::protocol::text;
use std::borrow::Cow;
use std::sync::atomic::Ordering::SeqCst;

/// What a `stats` group answers.
enum StatsReply {
    /// Name/value rows, then the end marker.
    Rows(Vec<(Cow<'static, str>, String)>),
    /// `stats reset` done (text `RESET`; binary: the end marker alone,
    /// as for binary `detail on|off`).
    Reset,
    /// No such group (text `ERROR`; binary "Not found").
    Unknown,
    /// Lines already written out, as bytes: text `stats conns`' STAT
    /// lines (then `END`); binary `detail dump`'s dump, sent as one
    /// `detailed` row (then the end marker).
    Lines(Vec<u8>),
}

impl Worker {
    /// Runs a server command for connection `idx`.
    pub(super) fn server_cmd(&mut self, idx: u32, op: Op, req: &Request) {
        match (op, req) {
            (Op::Stats, Request::Text(text::Request::Admin { cmd: b"watch", arg })) => {
                self.watch_cmd(idx, arg);
            }
            (Op::Stats, Request::Text(text::Request::Admin { cmd, arg })) => {
                let dump_enabled = self.shared.settings.introspection.dump_enabled;
                let mut t = text::tokens(arg);
                let metadump = t.next() == Some(b"metadump") && t.next().is_some();
                let c = if *cmd == b"slabs" {
                    admin::slabs(arg)
                } else if *cmd == b"lru" {
                    admin::lru(arg)
                } else if metadump && t.next().is_none() && !dump_enabled {
                    // -X: memcached's words, before the classes are read.
                    admin::AdminCmd::Line("ERROR metadump not allowed")
                } else {
                    admin::lru_crawler(arg)
                };
                self.admin_cmd(idx, c);
            }
            (Op::Stats, Request::Text(text::Request::Stats { arg }))
                if text::tokens(arg).next() == Some(b"cachedump") =>
            {
                let rest = text::tokens(arg).skip(1).fold(Vec::new(), |mut v, t| {
                    v.push(b' ');
                    v.extend_from_slice(t);
                    v
                });
                let c = if self.shared.settings.introspection.dump_enabled {
                    admin::cachedump(&rest)
                } else {
                    admin::AdminCmd::Line("CLIENT_ERROR stats cachedump not allowed")
                };
                self.admin_cmd(idx, c);
            }
            (Op::Stats, Request::Text(text::Request::Stats { arg }))
                if text::tokens(arg).next() == Some(b"detail") =>
            {
                let sub = text::tokens(arg).nth(1).unwrap_or(b"");
                let detail = &self.shared.detail;
                let out = match sub {
                    b"on" | b"off" => {
                        detail.set_enabled(sub == b"on");
                        b"OK\r\n".to_vec()
                    }
                    b"dump" => detail.dump(),
                    _ => b"CLIENT_ERROR usage: stats detail on|off|dump\r\n".to_vec(),
                };
                self.conn(idx).reply_buf().extend_from_slice(&out);
            }
            (Op::Stats, Request::Text(text::Request::Stats { arg })) => {
                let group = text::tokens(arg).next().unwrap_or(b"");
                let reply = self.stats_group(idx, group, false);
                let out = self.conn(idx).reply_buf();
                match reply {
                    StatsReply::Rows(rows) => {
                        for (k, v) in rows {
                            out.extend_from_slice(b"STAT ");
                            out.extend_from_slice(k.as_bytes());
                            out.push(b' ');
                            out.extend_from_slice(v.as_bytes());
                            out.extend_from_slice(b"\r\n");
                        }
                        out.extend_from_slice(b"END\r\n");
                    }
                    StatsReply::Lines(lines) => {
                        out.extend_from_slice(&lines);
                        out.extend_from_slice(b"END\r\n");
                    }
                    StatsReply::Reset => push_line(out, "RESET"),
                    StatsReply::Unknown => push_line(out, "ERROR"),
                }
            }
            (Op::Stats, Request::Binary(Ok(r))) => {
                let reply = match r.key.strip_prefix(b"detail") {
                    // memcached's process_bin_stat compares prefixes so.
                    Some(sub) if sub.starts_with(b" dump") => {
                        StatsReply::Lines(self.shared.detail.dump())
                    }
                    Some(sub) if sub.starts_with(b" on") || sub.starts_with(b" off") => {
                        self.shared.detail.set_enabled(sub.starts_with(b" on"));
                        StatsReply::Reset
                    }
                    Some(_) => StatsReply::Unknown,
                    None => self.stats_group(idx, r.key, true),
                };
                let (op, opaque) = (r.h.opcode, r.h.opaque);
                let out = self.conn(idx).reply_buf();
                let end = |out: &mut Vec<u8>| {
                    binary::write_response(out, op, 0, opaque, 0, &[], &[], &[])
                };
                match reply {
                    StatsReply::Rows(rows) => {
                        for (k, v) in rows {
                            let (k, v) = (k.as_bytes(), v.as_bytes());
                            binary::write_response(out, op, 0, opaque, 0, &[], k, v);
                        }
                        end(out);
                    }
                    // memcached's append_stats("detailed", dump).
                    StatsReply::Lines(dump) => {
                        binary::write_response(out, op, 0, opaque, 0, &[], b"detailed", &dump);
                        end(out);
                    }
                    StatsReply::Reset => end(out),
                    StatsReply::Unknown => {
                        crate::exec::binary::error(out, op, status::KEY_ENOENT, opaque)
                    }
                }
            }
            (Op::Quit, Request::Binary(Ok(r))) => {
                if !r.cmd.quiet {
                    let out = self.conn(idx).reply_buf();
                    binary::write_response(out, r.h.opcode, 0, r.h.opaque, 0, &[], &[], &[]);
                }
                self.conn(idx).closing = true;
            }
            (Op::Quit, _) => self.conn(idx).closing = true,
            (Op::RefreshCerts, Request::Text(text::Request::RefreshCerts { noreply })) => {
                // memcached's replies; noreply silences only `OK`, as an
                // error goes out regardless (memcached's out_errstring).
                // The files are read here, on the worker, as memcached
                // does: a few small files, rarely.
                let reply = match self.shared.tls.as_ref().map(|t| t.reload()) {
                    None => Some("Error TLS not enabled".to_string()),
                    Some(Ok(())) => (!noreply).then(|| "OK".to_string()),
                    Some(Err(e)) => Some(format!("Error loading the certificates: {e}")),
                };
                if let Some(r) = reply {
                    push_line(self.conn(idx).reply_buf(), &r);
                }
            }
            (Op::Shutdown, Request::Text(text::Request::Shutdown { bad_mode: true, .. })) => {
                push_line(
                    self.conn(idx).reply_buf(),
                    "CLIENT_ERROR invalid shutdown mode",
                );
            }
            (Op::Shutdown, _) => {
                // As memcached with -A: no reply; every worker winds down.
                self.shared.stop.store(true, SeqCst);
                self.conn(idx).closing = true;
            }
            _ => {}
        }
    }

    /// One `stats` group, the same for both protocols.
    fn stats_group(&mut self, idx: u32, group: &[u8], binary: bool) -> StatsReply {
        if matches!(group, b"items" | b"slabs") {
            // This shard's changes of this turn, for a pipelined stats.
            self.shared.classes.publish(self.id, &mut self.shard.store);
        }
        match group {
            b"" => StatsReply::Rows(named(stats::general(&self.shared, &self.totals()))),
            b"settings" => {
                let maxbytes = self.totals().limit_maxbytes;
                let rows = stats_settings::settings(&self.shared, maxbytes);
                StatsReply::Rows(named(rows))
            }
            b"ports" => {
                let rows = stats::ports(&self.shared, &self.per_worker());
                StatsReply::Rows(rows.into_iter().map(|(k, v)| (k.into(), v)).collect())
            }
            b"items" => owned(stats_classes::items(&self.shared.classes)),
            b"slabs" => owned(stats_classes::slabs(&self.shared.classes)),
            b"sizes" => owned(stats_classes::sizes()),
            b"conns" if !binary => {
                for to in 0..self.shared.mesh.n {
                    if to != self.id {
                        self.forward(idx, to, Job::Conns);
                    }
                }
                StatsReply::Lines(self.conns_lines(Some(idx)))
            }
            b"reset" => {
                // Every worker's counters, as memcached's one set. The
                // reply waits for the others' (empty) replies, so a `stats`
                // after it sees every worker reset.
                for to in 0..self.shared.mesh.n {
                    if to != self.id {
                        self.forward(idx, to, Job::ResetStats);
                    }
                }
                // After the forwards, which count themselves.
                self.reset_stats();
                StatsReply::Reset
            }
            _ => StatsReply::Unknown,
        }
    }

    /// Every worker's counters summed, this one's current.
    pub(super) fn totals(&self) -> Counters {
        let mut t = Counters::default();
        for c in self.per_worker() {
            t.add(&c);
        }
        t
    }

    /// Each worker's counters since its last `stats reset`, as last
    /// published, this one's current.
    fn per_worker(&self) -> Vec<Counters> {
        let mut me = self.shard.counters_since_reset();
        // Set at publishing for the others (worker.rs `publish`).
        me.connection_structures = self.conns.len() as u64;
        let bases = &self.shared.stats_base;
        (self.shared.published.iter().zip(bases).enumerate())
            .map(|(i, (p, b))| {
                if i == self.id {
                    me
                } else {
                    p.snapshot().since(&b.snapshot())
                }
            })
            .collect()
    }

    /// `stats reset` on this shard: `stats` counts from here on (the
    /// counts themselves go on, see `exec/counters.rs`).
    pub(super) fn reset_stats(&mut self) {
        self.shard.reset_counters();
        self.shared.stats_base[self.id].publish(&self.shard.base);
    }
}

fn owned(rows: Vec<(String, String)>) -> StatsReply {
    StatsReply::Rows(rows.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn named(rows: Vec<(&'static str, String)>) -> Vec<(Cow<'static, str>, String)> {
    rows.into_iter()
        .map(|(k, v)| (Cow::Borrowed(k), v))
        .collect()
}

/// memcached's most verbose level the `verbosity` command sets (its
/// MAX_VERBOSITY_LEVEL; `-vvv` on the command line goes further).
const MAX_VERBOSITY_LEVEL: u32 = 2;

/// `verbosity N` (text) and binary VERBOSITY: the logging level changes
/// at once for every worker (`admin/logging.rs`), capped as memcached's
/// `process_verbosity_command`; a level that is not a number changes
/// nothing.
pub(super) fn apply_verbosity(req: &Request) {
    let level = match req {
        Request::Text(text::Request::Verbosity { level, .. }) => *level,
        Request::Binary(Ok(r)) if r.extras.len() >= 4 => Some(r.extra_u32(0)),
        _ => None,
    };
    if let Some(l) = level {
        crate::admin::logging::set_verbosity(l.min(MAX_VERBOSITY_LEVEL) as u8);
    }
}
