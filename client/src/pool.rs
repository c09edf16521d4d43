//! One ring member's connections and health.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::conn::{Conn, ConnError, Expect};
use crate::error::{Error, Result};
use crate::proto::response::Reply;
use crate::stream::{tls_failure, ConnectError, Connector};

/// A member's pipelined connections (made on first use, remade when they
/// break) and its failure count.
pub(crate) struct NodePool {
    pub(crate) addr: String,
    slots: Vec<Slot>,
    next: AtomicUsize,
    failures: AtomicU32,
    down_until: Mutex<Option<Instant>>,
    connector: Connector,
    timeout: Duration,
}

struct Slot {
    conn: RwLock<Option<Conn>>,
    connecting: tokio::sync::Mutex<()>,
}

/// A member's health as the client's routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    Up,
    /// Marked down; may be tried again from the instant given.
    Down(Instant),
}

impl NodePool {
    pub(crate) fn new(connector: Connector, size: usize, timeout: Duration) -> Self {
        NodePool {
            addr: connector.addr.clone(),
            slots: (0..size)
                .map(|_| Slot {
                    conn: RwLock::new(None),
                    connecting: tokio::sync::Mutex::new(()),
                })
                .collect(),
            next: AtomicUsize::new(0),
            failures: AtomicU32::new(0),
            down_until: Mutex::new(None),
            connector,
            timeout,
        }
    }

    pub(crate) fn health(&self) -> Health {
        match *self.down_until.lock().unwrap() {
            Some(t) => Health::Down(t),
            None => Health::Up,
        }
    }

    /// Records a transport failure; returns true if the member just went
    /// down (after `limit` failures in a row, or one while on trial).
    pub(crate) fn on_failure(&self, limit: u32, retry_after: Duration) -> bool {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let mut down = self.down_until.lock().unwrap();
        let on_trial = down.is_some();
        if n >= limit || on_trial {
            *down = Some(Instant::now() + retry_after);
            self.failures.store(0, Ordering::Release);
            return true;
        }
        false
    }

    /// Records a success. Returns true if it ended a down period, and the
    /// caller puts the member back in the ring. A success that a request
    /// sent before the member went down brings back before its retry time
    /// leaves it down: it is revived on trial at that time, as any other
    /// (a breaker found such a straggler clearing the down mark while the
    /// member stayed out of the ring for good, so nothing revived it).
    pub(crate) fn on_success(&self) -> bool {
        self.failures.store(0, Ordering::Release);
        let mut down = self.down_until.lock().unwrap();
        match *down {
            Some(t) if Instant::now() < t => false,
            Some(_) => {
                *down = None;
                true
            }
            None => false,
        }
    }

    /// Sends a request on one of the member's connections and waits for
    /// its replies, within the timeout. A request that failed on a reused
    /// connection before any reply byte (the server dropped it while idle,
    /// e.g. across a restart) is sent once more on a fresh connection if
    /// `retry` (the request is safe to run twice); that first failure is not the
    /// node's. The error says whether it counts against the node.
    pub(crate) async fn call(
        &self,
        bytes: Vec<u8>,
        expect: Expect,
        retry: bool,
    ) -> Result<Vec<Reply>, CallError> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let conn = self.conn(slot).await.map_err(CallError::node)?;
        // Kept only when a retry may need them.
        let again = retry.then(|| bytes.clone());
        match self.attempt(&conn, bytes, expect).await {
            Err(Failed::Conn(e)) if matches!(*e, ConnError::Unanswered(_)) => match again {
                Some(bytes) => {
                    let conn = self.conn(slot).await.map_err(CallError::node)?;
                    match self.attempt(&conn, bytes, expect).await {
                        Ok(r) => Ok(r),
                        // A fresh connection that fails is the node's.
                        Err(e) => Err(self.failed(e)),
                    }
                }
                // Not sent again (add, CAS store, delete, mg N, incr,
                // append): may or may not have been applied; not held
                // against the node either.
                None => Err(CallError {
                    error: self.failed(Failed::Conn(e)).error,
                    node_failure: false,
                }),
            },
            Ok(r) => Ok(r),
            Err(e) => Err(self.failed(e)),
        }
    }

    async fn attempt(
        &self,
        conn: &Conn,
        bytes: Vec<u8>,
        expect: Expect,
    ) -> Result<Vec<Reply>, Failed> {
        match tokio::time::timeout(self.timeout, conn.call(bytes, expect)).await {
            Ok(Ok(replies)) => Ok(replies),
            Ok(Err(e)) => Err(Failed::Conn(e)),
            Err(_) => {
                // The stream's state is unknown now: start afresh.
                conn.kill();
                Err(Failed::Timeout)
            }
        }
    }

    fn failed(&self, e: Failed) -> CallError {
        CallError::node(match e {
            Failed::Timeout => Error::Timeout {
                node: self.addr.clone(),
                after: self.timeout,
            },
            Failed::Conn(e) => match &*e {
                ConnError::Io(io) | ConnError::Unanswered(io) => self.io_error(io),
                // Garbage from the node counts against it too: something
                // that is not a memcached server, or one that is broken.
                ConnError::Protocol(m) => Error::Protocol {
                    node: self.addr.clone(),
                    message: m.clone(),
                },
            },
        })
    }

    fn io_error(&self, io: &std::io::Error) -> Error {
        // A TLS alert after the handshake: with TLS 1.3 a server refusing
        // the client's certificate says so at the first read.
        match tls_failure(io) {
            Some(message) => Error::Tls {
                node: self.addr.clone(),
                message,
            },
            None => Error::Connection {
                node: self.addr.clone(),
                source: copy_io(io),
            },
        }
    }

    /// Slot `slot`'s connection, opened anew if it has none or a broken one.
    async fn conn(&self, slot: usize) -> Result<Conn> {
        let slot = &self.slots[slot];
        if let Some(c) = slot
            .conn
            .read()
            .unwrap()
            .as_ref()
            .filter(|c| !c.is_broken())
        {
            return Ok(c.clone());
        }
        let _one_connect = slot.connecting.lock().await;
        if let Some(c) = slot
            .conn
            .read()
            .unwrap()
            .as_ref()
            .filter(|c| !c.is_broken())
        {
            return Ok(c.clone());
        }
        // A connection that failed its TLS handshake or login is not kept:
        // the next call opens a new one.
        let node = || self.addr.clone();
        let c = Conn::connect(&self.connector).await.map_err(|e| match e {
            ConnectError::Io(source) => Error::Connection {
                node: node(),
                source,
            },
            ConnectError::Tls(message) => Error::Tls {
                node: node(),
                message,
            },
            ConnectError::Auth(message) => Error::Auth {
                node: node(),
                message,
            },
            ConnectError::Protocol(message) => Error::Protocol {
                node: node(),
                message,
            },
        })?;
        *slot.conn.write().unwrap() = Some(c.clone());
        Ok(c)
    }
}

fn copy_io(io: &std::io::Error) -> std::io::Error {
    std::io::Error::new(io.kind(), io.to_string())
}

/// Why one attempt failed.
enum Failed {
    Conn(std::sync::Arc<ConnError>),
    Timeout,
}

/// A failed pool call: the error, and whether it counts against the node
/// (towards marking it down).
#[derive(Debug)]
pub(crate) struct CallError {
    pub(crate) error: Error,
    pub(crate) node_failure: bool,
}

impl CallError {
    /// Counts against the node if it is a transport failure or garbage.
    fn node(error: Error) -> CallError {
        let node_failure = error.is_transport() || matches!(error, Error::Protocol { .. });
        CallError {
            error,
            node_failure,
        }
    }
}
