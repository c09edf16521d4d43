//! TLS to servers started with `-Z` (feature `tls`): rustls with the ring
//! provider, TLS 1.2 and 1.3, the server's certificate checked against the
//! CAs given, and optionally a client certificate for servers that verify
//! them (`-o ssl_ca_cert=...,ssl_verify_mode=1..3`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};
use crate::stream::{tls_failure, ConnectError};

/// How a client's connections speak TLS: the rustls client configuration
/// and, optionally, the name every server's certificate must carry.
///
/// Build one with [`TlsConfig::builder`] from a CA (PEM), or wrap a
/// `rustls::ClientConfig` of one's own with [`TlsConfig::from_rustls`];
/// hand it to [`ClientBuilder::tls`](crate::ClientBuilder::tls). Without a
/// server name set, each node's certificate is checked against the node's
/// host as given in [`Node::new`](crate::Node::new) (a DNS name, or an IP
/// address, which the certificate must then list as an IP SAN).
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for TlsConfig {
    // rustls' configuration holds the client's private key: not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server_name", &self.server_name)
            .field(
                "client_certificate",
                &self.config.client_auth_cert_resolver.has_certs(),
            )
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Starts a [`TlsConfigBuilder`] with no trusted CA.
    pub fn builder() -> TlsConfigBuilder {
        TlsConfigBuilder {
            roots: RootCertStore::empty(),
            client: None,
            server_name: None,
        }
    }

    /// Uses a rustls configuration as it is (its own roots, verifier,
    /// client certificate, versions).
    pub fn from_rustls(config: Arc<ClientConfig>) -> TlsConfig {
        TlsConfig {
            config,
            server_name: None,
        }
    }

    /// Checks every server's certificate against `name` instead of the
    /// node's host (for nodes listed by IP address whose certificates
    /// carry a DNS name).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `name` is neither a DNS name nor an IP address.
    pub fn server_name(mut self, name: &str) -> Result<TlsConfig> {
        self.server_name = Some(parse_name(name)?);
        Ok(self)
    }

    /// Runs the handshake over `tcp` with the node at `host`.
    pub(crate) async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => parse_name(host).map_err(|e| ConnectError::Tls(e.to_string()))?,
        };
        TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| match tls_failure(&e) {
                Some(m) => ConnectError::Tls(m),
                None => ConnectError::Io(e),
            })
    }
}

fn parse_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_string())
        .map_err(|e| Error::Config(format!("TLS server name {name:?}: {e}")))
}

/// Builds a [`TlsConfig`]: trusted CAs, an optional client certificate,
/// an optional server name.
pub struct TlsConfigBuilder {
    roots: RootCertStore,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for TlsConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfigBuilder")
            .field("roots", &self.roots.len())
            .field("client_certificate", &self.client.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsConfigBuilder {
    /// Trusts every certificate of `pem` (PEM `CERTIFICATE` blocks), as
    /// the CAs that sign servers' certificates.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `pem` holds no certificate, or one that does
    /// not parse.
    pub fn ca_pem(mut self, pem: &[u8]) -> Result<Self> {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
            self.roots
                .add(cert)
                .map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
            n += 1;
        }
        if n == 0 {
            return Err(Error::Config("no CA certificate in the PEM".into()));
        }
        Ok(self)
    }

    /// [`ca_pem`](Self::ca_pem) with the contents of the file at `path`
    /// (the server's `ssl_ca_cert`-style bundle).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the file does not read, or as `ca_pem`.
    pub fn ca_file(self, path: impl AsRef<Path>) -> Result<Self> {
        let pem = read(path.as_ref())?;
        self.ca_pem(&pem)
    }

    /// Trusts one CA certificate given in DER.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if it does not parse as a trust anchor.
    pub fn root_certificate(mut self, der: CertificateDer<'static>) -> Result<Self> {
        self.roots
            .add(der)
            .map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
        Ok(self)
    }

    /// Presents a client certificate (mutual TLS, for a server started
    /// with `ssl_verify_mode` 1 to 3 and `ssl_ca_cert`): `chain_pem` holds
    /// the client's certificate first, then any intermediates; `key_pem`
    /// its private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if no certificate or no key parses.
    pub fn client_cert_pem(mut self, chain_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(format!("client certificate: {e}")))?;
        if chain.is_empty() {
            return Err(Error::Config("no client certificate in the PEM".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| Error::Config(format!("client key: {e}")))?;
        self.client = Some((chain, key));
        Ok(self)
    }

    /// [`client_cert_pem`](Self::client_cert_pem) from files.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if a file does not read, or as `client_cert_pem`.
    pub fn client_cert_files(self, chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self> {
        let (chain, key) = (read(chain.as_ref())?, read(key.as_ref())?);
        self.client_cert_pem(&chain, &key)
    }

    /// See [`TlsConfig::server_name`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `name` is neither a DNS name nor an IP address.
    pub fn server_name(mut self, name: &str) -> Result<Self> {
        self.server_name = Some(parse_name(name)?);
        Ok(self)
    }

    /// Builds the configuration: TLS 1.2 and 1.3 with rustls' safe
    /// defaults and the ring provider.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if no CA was given (nothing could be trusted), or
    /// rustls refuses the client key.
    pub fn build(self) -> Result<TlsConfig> {
        if self.roots.is_empty() {
            return Err(Error::Config("TLS needs at least one trusted CA".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_root_certificates(self.roots);
        let config = match self.client {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Config(format!("client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(TlsConfig {
            config: Arc::new(config),
            server_name: self.server_name,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}
