//! A bound on how long an admin connection's reply may wait for its
//! client to read.
//!
//! hyper's `header_read_timeout` bounds a client slow to send and the
//! listener's request timeout a handler slow to answer, but neither covers
//! a reply the client never reads: a client pipelining thousands of
//! `GET /metrics` and reading none held its admin slot for as long as it
//! stayed connected, and `--admin-max-conns` of them made every new
//! connection, `/healthz` and `/readyz` included, answer `503` (found by a
//! breaker). [`StallGuard`] fails a write that has made no progress for
//! the admin timeout, which closes the connection and frees its slot.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Sleep};

/// A stream whose writes fail with `TimedOut` once one has waited
/// `limit` without the peer taking a byte.
pub struct StallGuard<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write first waits; disarmed by any progress.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> StallGuard<S> {
    /// Wraps `inner`; `limit` is how long a write may wait.
    pub fn new(inner: S, limit: Duration) -> Self {
        StallGuard {
            inner,
            limit,
            deadline: None,
        }
    }

    /// Passes a write's result through, arming the deadline while it
    /// waits and failing it once the deadline has passed.
    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.deadline = None;
            return r;
        }
        let limit = self.limit;
        let d = self.deadline.get_or_insert_with(|| Box::pin(sleep(limit)));
        match d.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "admin client read nothing of its reply within the timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write(cx, buf);
        me.watch(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write_vectored(cx, bufs);
        me.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_flush(cx);
        me.watch(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_shutdown(cx);
        me.watch(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Instant;

    /// A writer whose peer takes a byte only every `every` (never if
    /// None), waking its task to ask again meanwhile.
    struct Peer {
        every: Option<Duration>,
        next: Instant,
    }

    impl AsyncWrite for Peer {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            match self.every {
                Some(every) if Instant::now() >= self.next => {
                    self.next = Instant::now() + every;
                    Poll::Ready(Ok(1))
                }
                _ => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn write_all(every: Option<Duration>, bytes: usize, limit: Duration) -> io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let next = Instant::now();
        let mut g = StallGuard::new(Peer { every, next }, limit);
        rt.block_on(async {
            for _ in 0..bytes {
                poll_fn(|cx| Pin::new(&mut g).poll_write(cx, b"x")).await?;
            }
            Ok(())
        })
    }

    /// A peer that never reads: the write fails after the limit, where
    /// unguarded it waited for ever.
    #[test]
    fn a_write_nobody_reads_fails_after_the_limit() {
        let t0 = Instant::now();
        let e = write_all(None, 1, Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() >= Duration::from_millis(100));
    }

    /// A slow reader is never cut: each byte taken puts the deadline off,
    /// though the whole reply takes several times the limit.
    #[test]
    fn a_reader_slower_than_the_limit_overall_is_served() {
        let t0 = Instant::now();
        let every = Some(Duration::from_millis(40));
        write_all(every, 10, Duration::from_millis(100)).unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(300));
    }
}
