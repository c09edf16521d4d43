//! TLS settings and the server's certificate, key and client CAs as one
//! rustls `ServerConfig`, replaced whole on SIGHUP (as the password file
//! is). The record layer itself runs on the workers (`engine/tls.rs`);
//! this module knows nothing of sockets.
//!
//! memcached's flags: `-Z` turns TLS on for every TCP listener except
//! those given as `-l notls:ADDR[:PORT]`; `-o ssl_chain_cert=FILE` (PEM,
//! the server's certificate first), `ssl_key=FILE` (PEM; default: the
//! chain file), `ssl_ca_cert=FILE` (PEM, the CAs client certificates are
//! verified against), `ssl_verify_mode=0..3`, `ssl_min_version`.

#![warn(missing_docs)]

pub mod subject;

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

/// `-o ssl_verify_mode`, memcached's meanings (OpenSSL's verify flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyMode {
    /// 0: no client certificate is asked for (the default).
    None,
    /// 1: a client certificate is asked for; a client without one is
    /// served, one with a certificate that does not verify is refused.
    Request,
    /// 2: a client certificate that verifies is required.
    Require,
    /// 3: as 2, checked once per connection (OpenSSL's
    /// VERIFY_CLIENT_ONCE; rustls never renegotiates, so this is 2).
    Once,
}

impl VerifyMode {
    /// The mode by its number.
    ///
    /// # Errors
    /// Anything but 0 to 3.
    pub fn from_number(v: &str) -> Result<VerifyMode, String> {
        Ok(match v {
            "0" => VerifyMode::None,
            "1" => VerifyMode::Request,
            "2" => VerifyMode::Require,
            "3" => VerifyMode::Once,
            _ => return Err(format!("invalid -o ssl_verify_mode={v}: 0 to 3")),
        })
    }

    /// memcached's number for it (`stats settings`).
    pub fn number(self) -> u8 {
        match self {
            VerifyMode::None => 0,
            VerifyMode::Request => 1,
            VerifyMode::Require => 2,
            VerifyMode::Once => 3,
        }
    }
}

/// Where the certificates come from and what is asked of clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// `ssl_chain_cert`: PEM certificates, the server's first.
    pub chain_cert: PathBuf,
    /// `ssl_key`: the PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// `ssl_ca_cert`: PEM CA certificates client certificates must chain to.
    pub ca_cert: Option<PathBuf>,
    /// `ssl_verify_mode`.
    pub verify_mode: VerifyMode,
    /// `ssl_min_version=tlsv1.3`: TLS 1.3 only; otherwise 1.2 and 1.3
    /// (rustls has nothing older; memcached's tlsv1 and tlsv1.1 mean 1.2).
    pub tls13_only: bool,
    /// `ssl_user_from_cert` (corecache's own): a verified client
    /// certificate whose subject CN names a user of the password file
    /// authenticates the connection as that user.
    pub user_from_cert: bool,
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// Builds the rustls configuration the files describe (ring provider).
///
/// # Errors
/// A file that cannot be read or holds no certificate or key, a key that
/// does not match the certificate, a CA file rustls refuses.
pub fn build(cfg: &TlsConfig) -> Result<ServerConfig, String> {
    let provider = Arc::new(default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if cfg.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let chain = read_certs(&cfg.chain_cert)?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key)
        .map_err(|e| format!("{}: no private key: {e}", cfg.key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match (cfg.verify_mode, &cfg.ca_cert) {
        (VerifyMode::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err("ssl_verify_mode 1 to 3 needs -o ssl_ca_cert=FILE".into()),
        (mode, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca)? {
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if mode == VerifyMode::Request {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", cfg.chain_cert.display()))?;
    // Replies are sealed as they are queued (engine/tls.rs), never held.
    config.max_fragment_size = None;
    Ok(config)
}

/// The configuration in force, shared by every worker and replaced on
/// reload; a worker takes the current one for each connection it accepts
/// on a TLS listener (connections keep the one they started with).
#[derive(Debug)]
pub struct Tls {
    /// Where the files are.
    pub config: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    reloads: AtomicU64,
}

impl Tls {
    /// Loads the files `config` names.
    ///
    /// # Errors
    /// As `build`.
    pub fn new(config: TlsConfig) -> Result<Tls, String> {
        let c = build(&config)?;
        Ok(Tls {
            config,
            current: RwLock::new(Arc::new(c)),
            reloads: AtomicU64::new(0),
        })
    }

    /// The configuration new connections get.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the files again and, if they make a configuration, puts it
    /// in force for connections accepted from now on.
    ///
    /// # Errors
    /// As `build`; the configuration in force is then kept.
    pub fn reload(&self) -> Result<(), String> {
        let c = build(&self.config)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(c);
        self.reloads.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Successful reloads so far.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Relaxed)
    }
}
