//! One pipelined connection (TCP, or TLS over it) to one node, shared by
//! many callers.
//!
//! Callers hand whole requests (one command, or a quiet batch ending in
//! `mn`) to a writer task, which coalesces what is queued into one write;
//! a reader task parses replies in the same order. The server answers meta
//! commands in order, so a FIFO of what each request expects is all the
//! matching needs. Reading and writing run independently, so a large
//! pipelined request cannot deadlock against the server's replies.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::AbortHandle;

use crate::proto::response::{parse_head, Reply, Status};
use crate::stream::{ConnectError, Connector, ReadHalf, WriteHalf};

/// Longest reply line accepted, in bytes: a meta reply line is a code and
/// a few flags, at most a 250-byte key echoed; anything longer is garbage.
const MAX_LINE: u64 = 8 * 1024;

/// Up to this many queued bytes go out in one write.
const MAX_WRITE: usize = 256 * 1024;

/// Largest value block accepted, in bytes: memcached's `-I` tops out at
/// 1 GiB.
const MAX_VALUE: usize = 1 << 30;

/// Bytes of a value block allocated before they arrive (see `read_block`).
const VALUE_CHUNK: usize = 1 << 20;

/// What a request's replies look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Exactly this many replies (non-quiet commands).
    Replies(usize),
    /// Replies up to and including `MN` (a quiet batch of this many
    /// commands ended by `mn`); the `MN` itself is not returned. A batch
    /// whose every command, `mn` included, got a reply other than `MN` is
    /// over too: so a server refusing everything (`CLIENT_ERROR
    /// unauthenticated` to a connection that has not logged in, from
    /// corecache) fails the batch at once rather than at the timeout.
    UntilNoop(usize),
}

/// Why a request got no replies.
#[derive(Debug)]
pub(crate) enum ConnError {
    /// The socket failed or the peer closed it.
    Io(io::Error),
    /// The peer sent bytes that are not a meta reply.
    Protocol(String),
    /// The socket failed or the peer closed it before any byte of this
    /// request's replies arrived, on a connection that had answered
    /// earlier requests: most likely an idle connection the server dropped
    /// (a restart, an idle timeout), which a fresh connection cures.
    Unanswered(io::Error),
}

type Answer = Result<Vec<Reply>, Arc<ConnError>>;

struct Job {
    bytes: Vec<u8>,
    expect: Expect,
    reply: oneshot::Sender<Answer>,
}

struct Pending {
    expect: Expect,
    reply: oneshot::Sender<Answer>,
}

/// A handle to a pipelined connection; clones share it.
#[derive(Clone)]
pub(crate) struct Conn {
    tx: mpsc::UnboundedSender<Job>,
    broken: Arc<AtomicBool>,
    /// What the reader saw break the connection, set before `broken`: a
    /// call that finds the connection already broken reports this rather
    /// than a bare broken pipe (a TLS 1.3 server refusing the client's
    /// certificate sends its alert right after the handshake, often before
    /// the first request is queued).
    cause: Arc<OnceLock<Arc<ConnError>>>,
    shutdown: Arc<Notify>,
}

impl Conn {
    /// Opens a connection as `connector` says (TCP, TLS, login) and starts
    /// its reader and writer tasks on the current runtime.
    pub(crate) async fn connect(connector: &Connector) -> Result<Conn, ConnectError> {
        let (r, w) = connector.open().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ptx, prx) = mpsc::unbounded_channel();
        let broken = Arc::new(AtomicBool::new(false));
        let cause = Arc::new(OnceLock::new());
        let shutdown = Arc::new(Notify::new());
        let writer = tokio::spawn(writer(w, rx, ptx, broken.clone())).abort_handle();
        tokio::spawn(reader(
            r,
            prx,
            broken.clone(),
            cause.clone(),
            shutdown.clone(),
            writer,
        ));
        Ok(Conn {
            tx,
            broken,
            cause,
            shutdown,
        })
    }

    /// True once the connection failed; it takes no more requests.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Tears the connection down: queued and in-flight requests fail. Used
    /// when a request timed out, since the stream's state is then unknown.
    pub(crate) fn kill(&self) {
        self.broken.store(true, Ordering::Release);
        self.shutdown.notify_one();
    }

    /// Sends one request (its bytes already complete) and waits for its
    /// replies. No timeout here: the caller puts one around it.
    pub(crate) async fn call(&self, bytes: Vec<u8>, expect: Expect) -> Answer {
        // Refused before its bytes were written: the request never left.
        // The reader's reason if it has one, else a broken pipe that a
        // fresh connection may cure.
        let closed = || {
            self.cause.get().cloned().unwrap_or_else(|| {
                Arc::new(ConnError::Unanswered(io::ErrorKind::BrokenPipe.into()))
            })
        };
        if self.is_broken() {
            return Err(closed());
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                bytes,
                expect,
                reply,
            })
            .map_err(|_| closed())?;
        rx.await.unwrap_or_else(|_| Err(closed()))
    }
}

async fn writer(
    mut w: WriteHalf,
    mut rx: mpsc::UnboundedReceiver<Job>,
    pending: mpsc::UnboundedSender<Pending>,
    broken: Arc<AtomicBool>,
) {
    let mut buf = Vec::new();
    while let Some(job) = rx.recv().await {
        buf.clear();
        let mut next = Some(job);
        while let Some(job) = next.take() {
            if broken.load(Ordering::Acquire) {
                // Dropping the job's sender fails its caller.
                return;
            }
            buf.extend_from_slice(&job.bytes);
            // The reader learns what to expect before the bytes leave.
            let p = Pending {
                expect: job.expect,
                reply: job.reply,
            };
            if pending.send(p).is_err() {
                return;
            }
            if buf.len() < MAX_WRITE {
                next = rx.try_recv().ok();
            }
        }
        // TLS holds encrypted bytes until flushed; for TCP flush is free.
        if w.write_all(&buf).await.is_err() || w.flush().await.is_err() {
            broken.store(true, Ordering::Release);
            // The reader fails what was queued once the socket closes.
            let _ = w.shutdown().await;
            return;
        }
    }
}

/// Ends a connection however its reader ends (a failure, a kill, the
/// last handle dropped, a panic): marks it broken, so the pool hands it
/// out no more, and stops the writer, which a peer that reads nothing can
/// hold in `write_all` for ever with the socket, its buffer and every
/// queued request (a breaker's killed connections leaked a descriptor
/// and some 14 MB each). The requests it held never left, and their
/// callers see the connection closed.
struct Teardown {
    broken: Arc<AtomicBool>,
    writer: AbortHandle,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        self.broken.store(true, Ordering::Release);
        self.writer.abort();
    }
}

async fn reader(
    r: ReadHalf,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    broken: Arc<AtomicBool>,
    cause: Arc<OnceLock<Arc<ConnError>>>,
    shutdown: Arc<Notify>,
    writer: AbortHandle,
) {
    let _teardown = Teardown {
        broken: broken.clone(),
        writer,
    };
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let aborted = || Arc::new(ConnError::Io(io::ErrorKind::ConnectionAborted.into()));
    // Whether a request was answered on this connection: a failure before
    // the first reply byte is then a dropped idle connection, not a node
    // that cannot answer.
    let mut served = false;
    let closed = |served: bool, e: io::Error| {
        Arc::new(if served {
            ConnError::Unanswered(e)
        } else {
            ConnError::Io(e)
        })
    };
    let eof = || io::Error::from(io::ErrorKind::UnexpectedEof);
    let (err, current) = loop {
        // While idle, the socket is watched too: a server that closes the
        // connection (restart, idle timeout) marks it broken at once, so
        // the next call opens a fresh one. Requests are queued to this
        // task before their bytes leave, so bytes with nothing pending are
        // not a reply to anything.
        let p = tokio::select! {
            biased;
            p = pending.recv() => match p {
                Some(p) => p,
                None => return,
            },
            _ = shutdown.notified() => break (aborted(), None),
            res = r.fill_buf() => match res {
                Ok([]) => break (closed(served, eof()), None),
                // `pending.recv()` above may have been polled empty just
                // before the writer queued a request, and its reply read
                // here before this task polled again (it was preempted
                // between the two polls): the request is queued by now,
                // since the writer queues it before its bytes leave. Only
                // bytes with still nothing queued answer nothing.
                Ok(_) => match pending.try_recv() {
                    Ok(p) => p,
                    Err(_) => {
                        break (Arc::new(ConnError::Protocol("bytes before any request".into())), None)
                    }
                },
                Err(e) => break (closed(served, e), None),
            },
        };
        // The first byte of the replies, or the failure before it.
        let first = tokio::select! {
            res = r.fill_buf() => match res {
                Ok([]) => Err(closed(served, eof())),
                Ok(_) => Ok(()),
                Err(e) => Err(closed(served, e)),
            },
            _ = shutdown.notified() => Err(aborted()),
        };
        let res = match first {
            Ok(()) => tokio::select! {
                res = read_replies(&mut r, p.expect) => res.map_err(Arc::new),
                _ = shutdown.notified() => Err(aborted()),
            },
            Err(e) => Err(e),
        };
        match res {
            Ok(replies) => {
                served = true;
                let _ = p.reply.send(Ok(replies));
            }
            Err(e) => break (e, Some(p)),
        }
    };
    // Broken before anyone hears of the failure: a caller retrying at once
    // must not be handed this connection again.
    // Only the reader's own finding is a cause: a connection killed after
    // a timeout, or whose writer failed first, keeps the bare broken pipe,
    // which a fresh connection may cure.
    if !broken.load(Ordering::Acquire) {
        let _ = cause.set(err.clone());
    }
    broken.store(true, Ordering::Release);
    if let Some(p) = current {
        let _ = p.reply.send(Err(err.clone()));
    }
    pending.close();
    while let Some(p) = pending.recv().await {
        let _ = p.reply.send(Err(err.clone()));
    }
}

async fn read_replies(
    r: &mut BufReader<ReadHalf>,
    expect: Expect,
) -> Result<Vec<Reply>, ConnError> {
    let mut out = Vec::new();
    match expect {
        Expect::Replies(n) => {
            for _ in 0..n {
                out.push(read_reply(r).await?);
            }
        }
        Expect::UntilNoop(commands) => loop {
            let reply = read_reply(r).await?;
            if reply.status == Status::Noop {
                break;
            }
            out.push(reply);
            if out.len() > commands {
                break;
            }
        },
    }
    Ok(out)
}

/// Reads a value block of `want` bytes. Up to [`VALUE_CHUNK`] bytes are
/// allocated at once; a larger block grows (doubling) as its bytes arrive,
/// so a reply line that promises more than comes (a faulty server or
/// proxy: `VA 1000000000`) costs what came. Allocating the whole promise
/// up front asked for up to 1 GiB, which aborts the process where memory
/// is not overcommitted.
async fn read_block(r: &mut BufReader<ReadHalf>, want: usize) -> Result<Vec<u8>, ConnError> {
    let mut v = Vec::new();
    while v.len() < want {
        let at = v.len();
        let step = (want - at).min(VALUE_CHUNK.max(at));
        v.resize(at + step, 0);
        r.read_exact(&mut v[at..]).await.map_err(ConnError::Io)?;
    }
    Ok(v)
}

async fn read_reply(r: &mut BufReader<ReadHalf>) -> Result<Reply, ConnError> {
    let mut line = Vec::with_capacity(64);
    let n = (&mut *r)
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .await
        .map_err(ConnError::Io)?;
    if n == 0 {
        return Err(ConnError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    if !line.ends_with(b"\r\n") {
        return Err(ConnError::Protocol(format!(
            "reply line not ended by CRLF within {MAX_LINE} bytes"
        )));
    }
    line.truncate(line.len() - 2);
    let head = parse_head(&line).map_err(ConnError::Protocol)?;
    let value = match head.value_len {
        Some(len) if len > MAX_VALUE => {
            return Err(ConnError::Protocol(format!("VA size {len} above 1 GiB")))
        }
        Some(len) => {
            let mut v = read_block(r, len + 2).await?;
            if !v.ends_with(b"\r\n") {
                return Err(ConnError::Protocol("value block not ended by CRLF".into()));
            }
            v.truncate(len);
            Some(v)
        }
        None => None,
    };
    Ok(Reply {
        status: head.status,
        meta: head.meta,
        value,
    })
}
