//! memcached's ASCII authentication (`-Y <authfile>`, protocol.txt
//! "Authentication"), done once on each new connection before any request.
//!
//! A server started with `-Y` answers every command of a connection that
//! has not logged in with `CLIENT_ERROR unauthenticated`; the login is a
//! `set <any key> <any flags> <any exptime> <bytes>` whose data block is
//! `<user> <password>`, answered `STORED`, or `CLIENT_ERROR authentication
//! failure` (wrong user or password) or `CLIENT_ERROR bad authentication
//! token format`.
//!
//! The same `set` sent to a server without `-Y` would store the password as
//! a readable value, so the client first asks `mn`: `MN` means this
//! connection may already run commands (no `-Y`, or corecache's
//! `ssl_user_from_cert` logged it in by its certificate) and nothing is
//! sent; `CLIENT_ERROR unauthenticated` means it must log in.

use std::fmt;
use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};

/// The key of the login `set`: memcached and corecache ignore it.
const LOGIN_KEY: &str = "auth";

/// The largest `<bytes>` corecache accepts in a login `set` (a larger one
/// closes the connection; memcached takes any size).
const DATA_MAX: usize = 4096;

/// Longest reply line read during the login.
const LINE_MAX: u64 = 1024;

/// A user name and password for memcached's ASCII authentication, checked
/// by the server against its `-Y` password file (`user:password` a line).
///
/// Set on the whole client with
/// [`ClientBuilder::credentials`](crate::ClientBuilder::credentials) or on
/// one node with [`Node::credentials`](crate::Node::credentials). Its
/// `Debug` output shows neither the user nor the password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    /// Credentials for `user` with `password`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if either is empty or contains a space, CR or LF:
    /// the server splits the login block on spaces (memcached's
    /// tokenizer), so such a password cannot be sent, even though a
    /// password file may hold one. Also if the login block would exceed
    /// 4096 bytes, corecache's limit.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Result<Credentials> {
        let (user, password) = (user.into(), password.into());
        for (what, s) in [("user", &user), ("password", &password)] {
            if s.is_empty() {
                return Err(Error::Config(format!("empty {what}")));
            }
            if s.bytes().any(|b| matches!(b, b' ' | b'\r' | b'\n')) {
                return Err(Error::Config(format!(
                    "the {what} contains a space, CR or LF, which ASCII authentication cannot send"
                )));
            }
        }
        if user.len() + 1 + password.len() > DATA_MAX {
            return Err(Error::Config(format!(
                "user and password longer than {DATA_MAX} bytes"
            )));
        }
        Ok(Credentials { user, password })
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The login request: `set auth 0 0 <len>\r\n<user> <password>\r\n`.
    fn login_request(&self) -> Vec<u8> {
        let len = self.user.len() + 1 + self.password.len();
        let mut b = format!("set {LOGIN_KEY} 0 0 {len}\r\n").into_bytes();
        b.extend_from_slice(self.user.as_bytes());
        b.push(b' ');
        b.extend_from_slice(self.password.as_bytes());
        b.extend_from_slice(b"\r\n");
        b
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// Why a login did not succeed.
#[derive(Debug)]
pub(crate) enum LoginError {
    /// The socket failed or closed.
    Io(io::Error),
    /// The server refused the credentials; its message.
    Refused(String),
    /// The server answered something neither protocol.txt nor corecache
    /// sends here.
    Protocol(String),
}

/// Logs `stream` in with `cred` if the server asks for it (see the module
/// docs). `stream` is buffered for reading; nothing else may have been
/// sent on it yet.
pub(crate) async fn login<S>(stream: &mut S, cred: &Credentials) -> Result<(), LoginError>
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    stream.write_all(b"mn\r\n").await.map_err(LoginError::Io)?;
    stream.flush().await.map_err(LoginError::Io)?;
    match read_line(stream).await?.as_str() {
        "MN" => return Ok(()),
        "CLIENT_ERROR unauthenticated" => {}
        other => return Err(unexpected("mn", other)),
    }
    stream
        .write_all(&cred.login_request())
        .await
        .map_err(LoginError::Io)?;
    stream.flush().await.map_err(LoginError::Io)?;
    let line = read_line(stream).await?;
    match line.strip_prefix("CLIENT_ERROR ") {
        _ if line == "STORED" => Ok(()),
        Some(message) => Err(LoginError::Refused(message.to_string())),
        None => Err(unexpected("the login set", &line)),
    }
}

fn unexpected(to: &str, line: &str) -> LoginError {
    let shown: String = line.chars().take(80).collect();
    LoginError::Protocol(format!("unexpected reply to {to}: {shown:?}"))
}

async fn read_line<S: AsyncBufRead + Unpin>(stream: &mut S) -> Result<String, LoginError> {
    let mut line = Vec::new();
    let n = (&mut *stream)
        .take(LINE_MAX)
        .read_until(b'\n', &mut line)
        .await
        .map_err(LoginError::Io)?;
    if n == 0 {
        return Err(LoginError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return Err(LoginError::Protocol(
            "login reply not ended by CRLF".to_string(),
        ));
    };
    Ok(String::from_utf8_lossy(line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_cannot_be_sent() {
        for (u, p) in [
            ("", "x"),
            ("a", ""),
            ("a b", "x"),
            ("a", "x y"),
            ("a", "x\r\n"),
        ] {
            assert!(
                matches!(Credentials::new(u, p), Err(Error::Config(_))),
                "{u:?} {p:?}"
            );
        }
        assert!(Credentials::new("a", "p".repeat(DATA_MAX)).is_err());
        assert!(Credentials::new("a", "p\tq").is_ok());
    }

    #[test]
    fn login_request_and_debug() {
        let c = Credentials::new("alice", "s3cret").unwrap();
        assert_eq!(c.login_request(), b"set auth 0 0 12\r\nalice s3cret\r\n");
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret") && !d.contains("alice"), "{d}");
    }

    #[tokio::test]
    async fn logs_in_only_when_asked() {
        let c = Credentials::new("alice", "s3cret").unwrap();
        let run = |server: &'static [u8]| {
            let c = c.clone();
            async move {
                let (client, mut srv) = tokio::io::duplex(4096);
                srv.write_all(server).await.unwrap();
                // The canned replies are all the server says.
                srv.shutdown().await.unwrap();
                let mut client = tokio::io::BufReader::new(client);
                let r = login(&mut client, &c).await;
                drop(client);
                let mut sent = Vec::new();
                srv.read_to_end(&mut sent).await.unwrap();
                (r, sent)
            }
        };
        let (r, sent) = run(b"MN\r\n").await;
        assert!(r.is_ok());
        assert_eq!(sent, b"mn\r\n");
        let (r, sent) = run(b"CLIENT_ERROR unauthenticated\r\nSTORED\r\n").await;
        assert!(r.is_ok());
        assert_eq!(sent, b"mn\r\nset auth 0 0 12\r\nalice s3cret\r\n");
        let (r, _) =
            run(b"CLIENT_ERROR unauthenticated\r\nCLIENT_ERROR authentication failure\r\n").await;
        assert!(matches!(r, Err(LoginError::Refused(m)) if m == "authentication failure"));
        let (r, _) = run(b"HD\r\n").await;
        assert!(matches!(r, Err(LoginError::Protocol(_))));
        let (r, _) = run(b"").await;
        assert!(matches!(r, Err(LoginError::Io(_))));
    }
}
