//! Opening a connection's byte stream: TCP, then TLS over it when
//! configured (feature `tls`), then the ASCII login when the node has
//! credentials; and the stream's two halves for the reader and writer
//! tasks.
//!
//! The halves are enums rather than boxed `AsyncRead`/`AsyncWrite`
//! objects, so the plain TCP path pays one `match` per poll: no allocation
//! and no dynamic call.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::auth::{self, Credentials, LoginError};
#[cfg(feature = "tls")]
use crate::tls::TlsConfig;

#[cfg(feature = "tls")]
type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// The read half of a connection.
pub(crate) enum ReadHalf {
    Tcp(OwnedReadHalf),
    #[cfg(feature = "tls")]
    Tls(tokio::io::ReadHalf<TlsStream>),
}

/// The write half of a connection. TLS buffers what it encrypts: callers
/// flush after each write.
pub(crate) enum WriteHalf {
    Tcp(OwnedWriteHalf),
    #[cfg(feature = "tls")]
    Tls(tokio::io::WriteHalf<TlsStream>),
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// TCP connect, the socket, or the whole opening timed out or failed.
    Io(io::Error),
    /// The TLS handshake failed (rustls' reason).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Tls(String),
    /// The server refused the credentials (its `CLIENT_ERROR` message).
    Auth(String),
    /// The server's login replies made no sense.
    Protocol(String),
}

/// How one ring member's connections are opened.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    /// `host:port`.
    pub(crate) addr: String,
    /// The host, the TLS server name unless the TLS config names one.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) host: String,
    /// Bound on TCP connect, TLS handshake and login together.
    pub(crate) timeout: Duration,
    pub(crate) credentials: Option<Credentials>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsConfig>,
}

impl Connector {
    /// Opens a stream ready for requests, within the connect timeout.
    pub(crate) async fn open(&self) -> Result<(ReadHalf, WriteHalf), ConnectError> {
        tokio::time::timeout(self.timeout, self.open_now())
            .await
            .map_err(|_| {
                ConnectError::Io(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
            })?
    }

    async fn open_now(&self) -> Result<(ReadHalf, WriteHalf), ConnectError> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(ConnectError::Io)?;
        tcp.set_nodelay(true).map_err(ConnectError::Io)?;
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let s = tls.connect(&self.host, tcp).await?;
            let (r, w) = tokio::io::split(self.login(s).await?);
            return Ok((ReadHalf::Tls(r), WriteHalf::Tls(w)));
        }
        let (r, w) = self.login(tcp).await?.into_split();
        Ok((ReadHalf::Tcp(r), WriteHalf::Tcp(w)))
    }

    async fn login<S: AsyncRead + AsyncWrite + Unpin>(&self, s: S) -> Result<S, ConnectError> {
        let Some(cred) = &self.credentials else {
            return Ok(s);
        };
        let mut b = BufReader::with_capacity(512, s);
        auth::login(&mut b, cred).await.map_err(|e| match e {
            LoginError::Io(e) => ConnectError::Io(e),
            LoginError::Refused(m) => ConnectError::Auth(m),
            LoginError::Protocol(m) => ConnectError::Protocol(m),
        })?;
        if !b.buffer().is_empty() {
            return Err(ConnectError::Protocol(
                "bytes after the login reply".to_string(),
            ));
        }
        Ok(b.into_inner())
    }
}

/// rustls' reason if `e` is a TLS failure (a bad certificate, an alert
/// from the peer), as opposed to a plain socket one.
pub(crate) fn tls_failure(e: &io::Error) -> Option<String> {
    #[cfg(feature = "tls")]
    if let Some(r) = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<tokio_rustls::rustls::Error>())
    {
        return Some(r.to_string());
    }
    let _ = e;
    None
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            ReadHalf::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            WriteHalf::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_flush(cx),
            #[cfg(feature = "tls")]
            WriteHalf::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            WriteHalf::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
