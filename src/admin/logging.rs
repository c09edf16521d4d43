//! Leveled logs through `tracing`, with memcached's `-v` levels:
//!
//! | flag   | what is logged                                        | level  |
//! |--------|-------------------------------------------------------|--------|
//! | none   | errors, and the audit trail                           | ERROR  |
//! | `-v`   | also warnings and start-up lines                      | WARN   |
//! | `-vv`  | also connections opened and closed, client errors     | INFO   |
//! | `-vvv` | also every command line (never a data block)          | DEBUG  |
//! | `-vvvv`| everything                                            | TRACE  |
//!
//! (`engine/conn_log.rs` writes the `-vv` and `-vvv` lines.)
//!
//! The audit trail (target [`AUDIT_TARGET`]) is logged at every level, and
//! is the only thing at the default level besides errors: there is never a
//! line per request unless `-vvv` asks for it.
//!
//! Lines go to stderr, or appended to `--logfile`. Under systemd (stderr is
//! the journal: `JOURNAL_STREAM` is set) each line starts with its
//! sd-daemon priority (`<3>` error ... `<7>` debug) and has no timestamp,
//! which the journal adds; elsewhere lines carry an RFC 3339 UTC time.
//! `--audit-log` also writes the audit trail to a file of its own. SIGHUP
//! reopens both files (`--logfile` in `process/daemon.rs`), for logrotate.
//!
//! Workers never write a line themselves: `log_writer.rs` queues it for a
//! writer thread, so a stderr nobody reads cannot stall a shard.

use super::log_writer::{Offload, Sink};
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The `tracing` target of audit events (see `audit.rs`).
pub const AUDIT_TARGET: &str = "audit";

/// The current `-v` count; the filter reads it, `set_verbosity` changes it.
static VERBOSITY: AtomicU8 = AtomicU8::new(0);

/// The most detailed level `-v` repeated `v` times lets through.
pub fn level_for(v: u8) -> LevelFilter {
    match v {
        0 => LevelFilter::ERROR,
        1 => LevelFilter::WARN,
        2 => LevelFilter::INFO,
        3 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Whether an event passes at verbosity `v`: the audit trail always does.
pub fn passes(meta: &Metadata<'_>, v: u8) -> bool {
    meta.target() == AUDIT_TARGET || level_for(v) >= *meta.level()
}

/// The verbosity filter. Interest is decided per call site and cached by
/// `tracing`, so a disabled `debug!` on the hot path costs one load of the
/// global max level; `set_verbosity` rebuilds that cache.
struct Verbosity;

impl<S> Filter<S> for Verbosity {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        passes(meta, VERBOSITY.load(Relaxed))
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if passes(meta, VERBOSITY.load(Relaxed)) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // Audit events are INFO, so INFO call sites stay worth asking about.
        Some(level_for(VERBOSITY.load(Relaxed)).max(LevelFilter::INFO))
    }
}

/// Lets only the audit trail through (for `--audit-log`).
struct AuditOnly;

impl<S> Filter<S> for AuditOnly {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        meta.target() == AUDIT_TARGET
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.target() == AUDIT_TARGET {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}

/// Prefixes each line with its sd-daemon priority for the journal.
struct Journald(Format<Full, ()>);

/// sd-daemon(3) priority of a level; the audit trail is a notice.
fn priority(meta: &Metadata<'_>) -> u8 {
    if meta.target() == AUDIT_TARGET {
        return 5;
    }
    match *meta.level() {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(event.metadata()))?;
        self.0.format_event(ctx, writer, event)
    }
}

fn append(path: &str) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open log file {path}: {e}"))
}

/// Whether stderr is the journal: systemd sets `JOURNAL_STREAM` to the
/// `device:inode` of the stream it connected, and a process must check it
/// is still its stderr (systemd.exec(5)) — a child or a redirect inherits
/// the variable, not the journal.
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino),
        Err(_) => false,
    }
}

/// Installs the global subscriber: `verbose` is the `-v` count;
/// `to_logfile`: stderr will be pointed at `--logfile` (so lines carry
/// their time, even under systemd); `audit_log` an optional file
/// (appended). Call once, before anything logs. Errors: a file that cannot
/// be opened; a subscriber already set.
pub fn init(verbose: u8, to_logfile: bool, audit_log: Option<&str>) -> Result<(), String> {
    VERBOSITY.store(verbose, Relaxed);
    let main = if !to_logfile && stderr_is_journal() {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(Offload(Sink::Stderr))
            .event_format(Journald(Format::default().without_time()))
            .fmt_fields(DefaultFields::new())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(Offload(Sink::Stderr))
            .boxed()
    }
    .with_filter(Verbosity);
    let audit = match audit_log {
        Some(p) => {
            let file = Arc::new(Mutex::new(append(p)?));
            // The daemon leaves its directory: keep the path as given here.
            let path = std::path::absolute(p).map_err(|e| format!("{p}: {e}"))?;
            let _ = AUDIT_FILE.set((path, file.clone()));
            let f = Offload(Sink::File(file));
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(f)
                    .with_filter(AuditOnly),
            )
        }
        None => None,
    };
    let subscriber = tracing_subscriber::registry().with(main).with(audit);
    tracing::subscriber::set_global_default(subscriber).map_err(|e| e.to_string())
}

/// `--audit-log`'s path and the file the audit layer writes to.
static AUDIT_FILE: OnceLock<(PathBuf, Arc<Mutex<File>>)> = OnceLock::new();

/// Opens `--audit-log`'s path again and writes there from now on (SIGHUP,
/// after logrotate moved the file). Returns the path, or None without
/// `--audit-log`. Errors: the file cannot be opened (the old one stays).
pub fn reopen_audit_log() -> Result<Option<String>, String> {
    let Some((path, file)) = AUDIT_FILE.get() else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    let f = append(&shown)?;
    *file.lock().unwrap_or_else(|p| p.into_inner()) = f;
    Ok(Some(shown))
}

/// The current `-v` count.
pub fn verbosity() -> u8 {
    VERBOSITY.load(Relaxed)
}

/// Changes the `-v` count at run time (memcached's `verbosity N`).
pub fn set_verbosity(v: u8) {
    VERBOSITY.store(v, Relaxed);
    tracing::callsite::rebuild_interest_cache();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_memcached_v() {
        assert_eq!(level_for(0), LevelFilter::ERROR);
        assert_eq!(level_for(1), LevelFilter::WARN);
        assert_eq!(level_for(2), LevelFilter::INFO);
        assert_eq!(level_for(3), LevelFilter::DEBUG);
        assert_eq!(level_for(9), LevelFilter::TRACE);
    }
}
