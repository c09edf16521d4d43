//! Log lines leave the worker threads through a bounded queue, and one
//! writer thread does the `write(2)`s.
//!
//! Why: a worker that writes its own log lines stalls when the other end
//! does not read. A full pipe (a supervisor that reads stderr late), a
//! journald that throttles, or a slow disk under `--logfile` then stops
//! every connection of that shard. Seen in this project's tests: 600
//! audited `flush_all` lines filled a 64 KiB stderr pipe and the worker
//! writing the next one blocked until the test timed out.
//!
//! So once the writer thread runs ([`start`]), a worker only copies the
//! formatted line into the queue. A full queue drops the line and counts
//! it (memcached's `log_worker_dropped`; its logger thread drops the same
//! way rather than block a worker); the writer thread reports the count
//! in a line of its own once it can write again. Before [`start`] (set-up,
//! on the main thread, before the `-d` fork, whose child would not inherit
//! a thread) and after [`stop`] lines are written directly.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::fmt::MakeWriter;

/// Lines the queue holds before it drops (about 3 MiB of 200-byte lines:
/// a second of a `-vvv` flood at 16 k requests/s).
const QUEUE_LINES: usize = 16 * 1024;

/// Where a line goes: stderr (queued once the writer runs), or an
/// appended file (`--audit-log`, written at once: see `OffloadWriter`).
#[derive(Clone)]
pub enum Sink {
    /// The process's stderr (which `--logfile` points at its file).
    Stderr,
    /// A file opened for appending.
    File(Arc<Mutex<std::fs::File>>),
}

impl Sink {
    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stderr => io::stderr().lock().write_all(line),
            Sink::File(f) => f.lock().unwrap_or_else(|p| p.into_inner()).write_all(line),
        }
    }
}

enum Msg {
    Line(Sink, Vec<u8>),
    /// Everything queued before it is written: answer on the channel.
    Flush(SyncSender<()>),
}

struct Queue {
    tx: SyncSender<Msg>,
    rx: Mutex<Option<Receiver<Msg>>>,
    running: AtomicBool,
}

static QUEUE: OnceLock<Queue> = OnceLock::new();
/// Lines dropped because the queue was full (memcached's `log_worker_dropped`).
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Lines written (memcached's `log_worker_written`).
static WRITTEN: AtomicU64 = AtomicU64::new(0);

fn queue() -> &'static Queue {
    QUEUE.get_or_init(|| {
        let (tx, rx) = sync_channel(QUEUE_LINES);
        Queue {
            tx,
            rx: Mutex::new(Some(rx)),
            running: AtomicBool::new(false),
        }
    })
}

/// Lines dropped since start because the writer fell behind.
pub fn dropped() -> u64 {
    DROPPED.load(Relaxed)
}

/// Lines written since start.
pub fn written() -> u64 {
    WRITTEN.load(Relaxed)
}

/// `--logfile` while the output still goes to the terminal: start-up
/// lines go to both (see [`tee_to`]).
static TEE: Mutex<Option<std::fs::File>> = Mutex::new(None);

fn write_now(sink: &Sink, line: &[u8]) {
    // A log line that cannot be written has nowhere to be reported.
    if sink.write_line(line).is_ok() {
        WRITTEN.fetch_add(1, Relaxed);
    }
    if matches!(sink, Sink::Stderr) {
        if let Some(f) = TEE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = f.write_all(line);
        }
    }
}

/// Copies what is written to stderr into `log` too, until [`end_tee`].
/// stderr is pointed at `--logfile` only once the server serves, so that
/// an error that stops the start reaches the terminal (and a `-d` parent);
/// the tee puts the start-up lines (warnings, `-v` lines, that error) in
/// the log file as well, where memcached's Debian wrapper puts all output.
pub fn tee_to(log: std::fs::File) {
    *TEE.lock().unwrap_or_else(|p| p.into_inner()) = Some(log);
}

/// Ends [`tee_to`]: stderr is the log file now.
pub fn end_tee() {
    *TEE.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// Writes one line (a newline is added) to stderr with a single
/// `write(2)`, so that it never interleaves with another process's lines
/// in an `O_APPEND` log (two servers given Debian's one `logfile`).
pub fn say(msg: &str) {
    write_now(&Sink::Stderr, format!("{msg}\n").as_bytes());
}

/// Starts the writer thread; from here on lines are queued. Call after
/// the `-d` fork. Errors: the thread cannot be spawned (lines then stay
/// direct).
pub fn start() -> io::Result<()> {
    let q = queue();
    let Some(rx) = q.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return Ok(());
    };
    // Never joined: it waits on the queue until the process exits, and
    // `stop` is how the last lines are waited for.
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || drain(rx))?;
    q.running.store(true, Relaxed);
    Ok(())
}

fn drain(rx: Receiver<Msg>) {
    let mut reported = 0;
    while let Ok(m) = rx.recv() {
        match m {
            Msg::Line(sink, line) => {
                let d = DROPPED.load(Relaxed);
                if d != reported {
                    let note = format!(
                        "corecache: {} log lines dropped: the log writer fell behind\n",
                        d - reported
                    );
                    write_now(&Sink::Stderr, note.as_bytes());
                    reported = d;
                }
                write_now(&sink, &line);
            }
            Msg::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// How long a stopping process waits for queued lines to be written: a
/// stderr nobody reads must not keep it from exiting (memcached exits at
/// once; SIGTERM hung for minutes here before this bound).
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Writes out the queued lines (waiting at most `STOP_WAIT`), then writes
/// directly from here on (for the last lines of a stopping process).
pub fn stop() {
    let Some(q) = QUEUE.get() else { return };
    if !q.running.swap(false, Relaxed) {
        return;
    }
    let (done_tx, done_rx) = sync_channel(1);
    let deadline = std::time::Instant::now() + STOP_WAIT;
    let mut msg = Msg::Flush(done_tx);
    // The queue may be full behind a blocked writer: try until the deadline.
    loop {
        match q.tx.try_send(msg) {
            Ok(()) => {
                let _ = done_rx
                    .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
                return;
            }
            Err(TrySendError::Full(m)) if std::time::Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(_) => return,
        }
    }
}

/// A `MakeWriter` for `tracing_subscriber`'s fmt layer: each formatted
/// event (which the layer writes with one `write_all`) becomes one line in
/// the queue.
#[derive(Clone)]
pub struct Offload(pub Sink);

/// The writer for one event.
pub struct OffloadWriter(Sink);

impl Write for OffloadWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let q = queue();
        // A file sink is the `--audit-log` trail: a record of who did what
        // must not be dropped because stderr is slow, and a local file
        // append does not block as an unread pipe does. Written at once.
        if !q.running.load(Relaxed) || matches!(self.0, Sink::File(_)) {
            write_now(&self.0, buf);
            return Ok(buf.len());
        }
        match q.tx.try_send(Msg::Line(self.0.clone(), buf.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                DROPPED.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Disconnected(Msg::Line(sink, line))) => write_now(&sink, &line),
            Err(TrySendError::Disconnected(_)) => {}
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Offload {
    type Writer = OffloadWriter;

    fn make_writer(&'a self) -> OffloadWriter {
        OffloadWriter(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_file_lines_are_written_in_order_and_never_dropped() {
        let path = std::env::temp_dir().join(format!("cc-logq-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        let sink = Sink::File(Arc::new(Mutex::new(f)));
        let mk = Offload(sink);
        start().unwrap();
        for i in 0..1000 {
            mk.make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        stop();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Nothing blocks the queue here, so nothing may be dropped.
        assert_eq!(dropped(), 0);
        assert_eq!(lines.len(), 1000);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[999], "line 999");
        // After stop, lines go straight to the sink.
        assert!(!queue().running.load(Relaxed));
    }
}
