//! The password file (`-Y FILE`): memcached's format, one `user:password`
//! a line, plus salted SHA-256 hashes in place of a password.
//!
//! ```text
//! # a comment (corecache; memcached reads it as a user named "# a comment")
//! alice:plain password, everything after the first ':'
//! bob:$sha256$<salt>$<64 hex digits of SHA-256(salt bytes ++ password)>
//! ```
//!
//! A line ends at `\n` (a `\r` before it is dropped); blank lines are
//! skipped. Every comparison is constant time in the password: both sides
//! are hashed to 32 bytes and compared with `subtle`, so neither a
//! password's content nor its length shows in the reply's timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of a hashed password field.
pub const SHA256_PREFIX: &str = "$sha256$";

/// What the file holds for one user.
#[derive(Clone)]
pub enum Secret {
    /// memcached's plain password, kept as its SHA-256 (so a comparison
    /// never depends on its length).
    Plain([u8; 32]),
    /// A salt and SHA-256(salt ++ password).
    Salted {
        /// The salt, as written in the file.
        salt: Vec<u8>,
        /// The digest to match.
        digest: [u8; 32],
    },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret, not even its hash.
        f.write_str(match self {
            Secret::Plain(_) => "Secret::Plain(..)",
            Secret::Salted { .. } => "Secret::Salted(..)",
        })
    }
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let d = |c: u8| (c as char).to_digit(16);
        *o = (d(b[2 * i])? * 16 + d(b[2 * i + 1])?) as u8;
    }
    Some(out)
}

impl Secret {
    /// Reads a password field: `$sha256$SALT$HEX` or a plain password.
    ///
    /// # Errors
    /// A field that starts with `$sha256$` but is not salt, `$` and 64
    /// hex digits (a typo there must not become a plain password).
    pub fn parse(field: &str) -> Result<Secret, String> {
        let Some(rest) = field.strip_prefix(SHA256_PREFIX) else {
            return Ok(Secret::Plain(sha256(&[field.as_bytes()])));
        };
        let (salt, hex) = rest
            .rsplit_once('$')
            .ok_or("a $sha256$ password needs $SALT$HEXDIGEST")?;
        let digest = unhex(hex).ok_or("a $sha256$ digest is 64 hex digits")?;
        Ok(Secret::Salted {
            salt: salt.as_bytes().to_vec(),
            digest,
        })
    }

    /// Whether `password` matches, in time independent of its bytes.
    pub fn matches(&self, password: &[u8]) -> bool {
        match self {
            Secret::Plain(d) => sha256(&[password]).ct_eq(d).into(),
            Secret::Salted { salt, digest } => sha256(&[salt, password]).ct_eq(digest).into(),
        }
    }

    /// The file field for `password` with `salt` (for tests and docs).
    pub fn hash_field(salt: &str, password: &str) -> String {
        let d = sha256(&[salt.as_bytes(), password.as_bytes()]);
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        format!("{SHA256_PREFIX}{salt}${hex}")
    }
}

/// Parses a password file's text into (user, secret) pairs, in file order.
///
/// # Errors
/// The first bad line: one without `:`, with an empty user name, or with
/// a malformed hash; named by its line number.
pub fn parse(text: &str) -> Result<Vec<(String, Secret)>, String> {
    let mut users = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, pass) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: expected user:password", n + 1))?;
        if user.is_empty() {
            return Err(format!("line {}: empty user name", n + 1));
        }
        let secret = Secret::parse(pass).map_err(|e| format!("line {}: {e}", n + 1))?;
        users.push((user.to_string(), secret));
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_salted_lines() {
        let f = format!(
            "alice:secret\r\n# note\n\nbob:{}\ncarol:a:b c\n",
            Secret::hash_field("NaCl", "pw2")
        );
        let u = parse(&f).unwrap();
        assert_eq!(u.len(), 3);
        assert!(u[0].1.matches(b"secret"));
        assert!(!u[0].1.matches(b"secret "));
        assert!(!u[0].1.matches(b""));
        assert!(u[1].1.matches(b"pw2"));
        assert!(!u[1].1.matches(b"pw"));
        // Everything after the first ':' is the password, as in memcached.
        assert_eq!(u[2].0, "carol");
        assert!(u[2].1.matches(b"a:b c"));
    }

    #[test]
    fn bad_lines_are_named() {
        assert!(parse("alice\n").unwrap_err().starts_with("line 1"));
        assert!(parse("ok:x\n:pw\n").unwrap_err().starts_with("line 2"));
        assert!(parse("a:$sha256$salt$abc\n").is_err());
        assert!(parse("a:$sha256$nodollar\n").is_err());
    }
}
