//! `-Z` and the `-o ssl_*` options, checked into a `crate::tls::TlsConfig`.

use super::extended::SslOptions;
use super::resolve::{absolute, invalid};
use super::ConfigError;
use crate::tls::{TlsConfig, VerifyMode};

/// `-Z` and the `-o ssl_*` options as a `TlsConfig` (files are read at
/// start, `crate::tls::Tls::new`).
pub(super) fn tls_config(x: &SslOptions) -> Result<TlsConfig, ConfigError> {
    let chain = x
        .chain_cert
        .as_deref()
        .ok_or_else(|| invalid("-Z needs -o ssl_chain_cert=FILE (and ssl_key=FILE)"))?;
    let verify_mode = match &x.verify_mode {
        Some(v) => VerifyMode::from_number(v).map_err(invalid)?,
        None => VerifyMode::None,
    };
    if verify_mode != VerifyMode::None && x.ca_cert.is_none() {
        return Err(invalid(
            "-o ssl_verify_mode 1 to 3 needs -o ssl_ca_cert=FILE",
        ));
    }
    Ok(TlsConfig {
        chain_cert: absolute(chain),
        key: absolute(x.key.as_deref().unwrap_or(chain)),
        ca_cert: x.ca_cert.as_deref().map(absolute),
        verify_mode,
        tls13_only: x.tls13_only,
        user_from_cert: x.user_from_cert,
    })
}
