//! `-o` extended options: corecache's own, and every one memcached 1.6
//! accepts, each sorted into what it does here.

use super::{parse_size, ConfigError};
use crate::store::Eviction;

/// memcached `-o` options that ask for what corecache does anyway, so
/// they are accepted without a word.
const SAME_HERE: &[&str] = &[
    // memcached 1.6.18: "currently: nothing".
    "modern",
    // A connection over `-c` is told "ERROR Too many open connections" and
    // closed at once, which is memcached's maxconns_fast.
    "maxconns_fast",
    // corecache installs no seccomp filter, which is what this asks.
    "no_drop_privileges",
];

/// memcached `-o` options for machinery corecache does not have: the slab
/// allocator and its mover, the LRU and its crawler and maintainer, the
/// hash table's sizing, watchers' buffers, extstore, the seccomp sandbox.
/// They start the server with a warning naming them.
const NO_EFFECT: &[&str] = &[
    "hashpower",
    "no_hashexpand",
    "slab_reassign",
    "no_slab_reassign",
    "slab_automove",
    "no_slab_automove",
    "slab_automove_ratio",
    "slab_automove_window",
    "slab_automove_freeratio",
    "slab_sizes",
    "slab_chunk_max",
    "no_chunked_items",
    "tail_repair_time",
    "hash_algorithm",
    "lru_crawler",
    "no_lru_crawler",
    "lru_crawler_sleep",
    "lru_crawler_tocrawl",
    "lru_maintainer",
    "no_lru_maintainer",
    "hot_lru_pct",
    "warm_lru_pct",
    "hot_max_factor",
    "warm_max_factor",
    "temporary_ttl",
    "watcher_logbuf_size",
    "worker_logbuf_size",
    "track_sizes",
    "inline_ascii_resp",
    "no_inline_ascii_resp",
    "no_modern",
    "no_maxconns_fast",
    "drop_privileges",
    "relaxed_privileges",
    "resp_obj_mem_limit",
    "read_buf_mem_limit",
    "sock_cookie_id",
    "ext_path",
    "ext_page_size",
    "ext_wbuf_size",
    "ext_threads",
    "ext_io_depth",
    "ext_item_size",
    "ext_item_age",
    "ext_low_ttl",
    "ext_recache_rate",
    "ext_compact_under",
    "ext_drop_under",
    "ext_max_sleep",
    "ext_max_frag",
    "ext_drop_unread",
];

/// memcached's TLS options that have no effect with rustls: OpenSSL
/// cipher strings (rustls offers only modern AEAD suites), its write
/// buffer size (replies are sealed straight into the send buffer), its
/// session cache switch (rustls keeps a small cache always) and kTLS
/// (this kernel has none; see docs/ARCHITECTURE.md).
const TLS_NO_EFFECT: &[&str] = &[
    "ssl_ciphers",
    "ssl_wbuf_size",
    "ssl_session_cache",
    "ssl_kernel_tls",
];

/// The `-o ssl_*` values (used with `-Z`; see `crate::tls`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslOptions {
    /// `ssl_chain_cert`: PEM certificate chain, the server's first.
    pub chain_cert: Option<String>,
    /// `ssl_key`: PEM private key (default: in the chain file).
    pub key: Option<String>,
    /// `ssl_ca_cert`: PEM CAs that client certificates must chain to.
    pub ca_cert: Option<String>,
    /// `ssl_verify_mode`: 0 to 3 (default 0).
    pub verify_mode: Option<String>,
    /// `ssl_min_version=tlsv1.3`: TLS 1.3 only.
    pub tls13_only: bool,
    /// `ssl_user_from_cert` (corecache's own): a client certificate's
    /// subject CN names the connection's user.
    pub user_from_cert: bool,
    /// Whether any of them was given (without `-Z` they do nothing).
    pub given: bool,
}

/// The `-o` options, with memcached's and corecache's defaults filled in.
#[derive(Debug, Clone)]
pub struct Extended {
    /// `segment_size`: bytes per store segment (before any shrinking to
    /// fit `-m` across the shards).
    pub segment_size: usize,
    /// Whether `segment_size` was given (else `-I` may raise it).
    pub segment_size_given: bool,
    /// `eviction`: which segments go when memory is full.
    pub eviction: Eviction,
    /// `hugepages=on|off`: back item memory with huge pages (also `-L`).
    pub hugepages: bool,
    /// `prefault`: fault all item memory in at start.
    pub prefault: bool,
    /// `fault_ahead=on|off`: fault the next free segments in on a helper
    /// thread before they are written (on by default; store/fault_ahead.rs).
    pub fault_ahead: bool,
    /// `foreign_reads=on|off`: a worker serves reads of keys other
    /// workers own itself, from their memory (on by default;
    /// store/foreign.rs).
    pub foreign_reads: bool,
    /// `borrow_shards=on|off`: a worker runs a request for another
    /// worker's key on that worker's shard itself while the owner sleeps,
    /// instead of the hop (on by default; engine/lend.rs).
    pub borrow_shards: bool,
    /// `pin_workers=on|off`: worker *i* runs only on the *i*-th CPU the
    /// process may use (off by default: the kernel places the workers, as
    /// it places memcached's threads; docs/PERFORMANCE.md "Pinned or
    /// placed workers" has the measurements). corecache's own option.
    pub pin_workers: bool,
    /// `steer_connections=on|off`: a new connection goes to the worker of
    /// the CPU its packets arrive on, while that worker holds no more than
    /// its share (engine/steer.rs, which says why it is off by default).
    /// corecache's own option.
    pub steer_connections: bool,
    /// `backlog`: corecache's older spelling of `-b`; `-b` wins.
    pub backlog: Option<i32>,
    /// `idle_timeout`: close connections idle this many seconds; 0 = never.
    pub idle_timeout: u32,
    /// `incoming_mem_limit=MB`: megabytes all workers together may hold
    /// for requests still arriving (engine/incoming.rs); None = as `-m`,
    /// Some(0) = no limit. corecache's own option.
    pub incoming_mem_limit: Option<usize>,
    /// `acl_file=PATH`: per-user rules for authenticated users
    /// (auth/acl.rs); needs `-Y` or `-S`.
    pub acl_file: Option<String>,
    /// `worker_ports[=BASE]`: worker *i* also listens on its own TCP port
    /// `BASE + i`, served by its shard alone (no routing). `Some(None)`:
    /// given without a base, which is then the port after `-p`.
    /// corecache's own option (memcached has no equivalent).
    pub worker_ports: Option<Option<u16>>,
    /// The TLS options.
    pub ssl: SslOptions,
    /// Options given that have no effect here, as given (`-o name=value`).
    pub no_effect: Vec<String>,
}

impl Default for Extended {
    fn default() -> Self {
        Extended {
            segment_size: 1 << 20,
            segment_size_given: false,
            eviction: Eviction::Merge,
            hugepages: true,
            prefault: false,
            fault_ahead: true,
            foreign_reads: true,
            borrow_shards: true,
            pin_workers: false,
            steer_connections: false,
            backlog: None,
            idle_timeout: 0,
            incoming_mem_limit: None,
            acl_file: None,
            worker_ports: None,
            ssl: SslOptions::default(),
            no_effect: Vec::new(),
        }
    }
}

fn switch(v: &str) -> bool {
    !matches!(v, "off" | "no" | "0" | "false")
}

/// corecache's own on/off options: the bare name or on/yes/true/1 is on,
/// off/no/false/0 is off (any case); anything else is refused, so that
/// `foreign_reads=OFF` cannot leave a switch on unnoticed.
fn on_off(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "" | "on" | "yes" | "true" | "1" => Some(true),
        "off" | "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// Reads every `-o` argument (each a comma separated list of `name` or
/// `name=value`) in order: a later value for the same name wins.
///
/// # Errors
/// `ConfigError::Invalid` for an unknown option or a bad value of one
/// corecache uses (an `ssl_verify_mode` outside 0..3, an
/// `ssl_keyformat` other than PEM, an unknown `ssl_min_version`).
pub fn parse_extended(opts: &[String]) -> Result<Extended, ConfigError> {
    let mut x = Extended::default();
    let invalid = |k: &str, v: &str| ConfigError::Invalid(format!("invalid -o {k}={v}"));
    for arg in opts {
        let parts: Vec<&str> = arg.split(',').collect();
        for (i, o) in parts.iter().enumerate() {
            if o.is_empty() && i + 1 < parts.len() {
                // memcached's getsubopt loop: one trailing comma ends the
                // list, an empty name anywhere else is refused.
                return Err(ConfigError::Invalid("Illegal suboption \"\"".into()));
            }
        }
    }
    for o in opts
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|o| !o.is_empty())
    {
        let (k, value) = o.split_once('=').map_or((o, None), |(k, v)| (k, Some(v)));
        if k.is_empty() {
            return Err(ConfigError::Invalid(format!("Illegal suboption \"{o}\"")));
        }
        let v = value.unwrap_or("");
        match k {
            "segment_size" => {
                let size = parse_size(v).map_err(|_| invalid(k, v))?;
                // What the store takes (`Store::new`); checked here, before
                // start-up divides by it.
                if !crate::store::segment_size_ok(size) {
                    return Err(ConfigError::Invalid(format!(
                        "invalid -o {k}={v}: a segment is a multiple of 8 bytes \
                         from 4k to {} bytes",
                        crate::store::index::MAX_SEGMENT_SIZE
                    )));
                }
                x.segment_size = size;
                x.segment_size_given = true;
            }
            "eviction" => {
                x.eviction = v.parse().map_err(ConfigError::Invalid)?;
            }
            "hugepages" => x.hugepages = on_off(v).ok_or_else(|| invalid(k, v))?,
            "prefault" => x.prefault = on_off(v).ok_or_else(|| invalid(k, v))?,
            "fault_ahead" => x.fault_ahead = on_off(v).ok_or_else(|| invalid(k, v))?,
            "foreign_reads" => x.foreign_reads = on_off(v).ok_or_else(|| invalid(k, v))?,
            "borrow_shards" => x.borrow_shards = on_off(v).ok_or_else(|| invalid(k, v))?,
            "pin_workers" => x.pin_workers = on_off(v).ok_or_else(|| invalid(k, v))?,
            "steer_connections" => x.steer_connections = on_off(v).ok_or_else(|| invalid(k, v))?,
            "backlog" => x.backlog = Some(v.parse().map_err(|_| invalid(k, v))?),
            "idle_timeout" => x.idle_timeout = v.parse().map_err(|_| invalid(k, v))?,
            "incoming_mem_limit" => {
                x.incoming_mem_limit = Some(v.parse().map_err(|_| invalid(k, v))?)
            }
            "acl_file" if !v.is_empty() => x.acl_file = Some(v.to_string()),
            "worker_ports" => {
                x.worker_ports = match v {
                    "" | "on" | "yes" | "true" => Some(None),
                    "off" | "no" | "false" => None,
                    _ => Some(Some(
                        v.parse()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| invalid(k, v))?,
                    )),
                }
            }
            "ssl_chain_cert" | "ssl_key" | "ssl_ca_cert" | "ssl_verify_mode"
            | "ssl_min_version" | "ssl_keyformat" | "ssl_user_from_cert" => {
                ssl_option(&mut x.ssl, k, v).ok_or_else(|| invalid(k, v))?;
            }
            _ if SAME_HERE.contains(&k) => {}
            _ if NO_EFFECT.contains(&k) || TLS_NO_EFFECT.contains(&k) => {
                super::memcached_checks::check_suboption(k, value).map_err(ConfigError::Invalid)?;
                let given = format!("-o {o}");
                x.no_effect.retain(|g| g != &given);
                x.no_effect.push(given);
            }
            _ => return Err(ConfigError::Invalid(format!("unknown -o option '{k}'"))),
        }
    }
    Ok(x)
}

/// Records one `ssl_*` option; None for a value memcached would refuse.
fn ssl_option(s: &mut SslOptions, k: &str, v: &str) -> Option<()> {
    let path = || (!v.is_empty()).then(|| v.to_string());
    s.given = true;
    match k {
        "ssl_chain_cert" => s.chain_cert = Some(path()?),
        "ssl_key" => s.key = Some(path()?),
        "ssl_ca_cert" => s.ca_cert = Some(path()?),
        "ssl_verify_mode" => {
            crate::tls::VerifyMode::from_number(v).ok()?;
            s.verify_mode = Some(v.to_string());
        }
        // memcached's names; rustls has nothing before 1.2.
        "ssl_min_version" => match v {
            "tlsv1" | "tlsv1.0" | "tlsv1.1" | "tlsv1.2" => s.tls13_only = false,
            "tlsv1.3" => s.tls13_only = true,
            _ => return None,
        },
        // OpenSSL's SSL_FILETYPE_PEM; DER (2) is not read.
        "ssl_keyformat" => (v == "1").then_some(())?,
        _ => s.user_from_cert = switch(v),
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_memcached_option_is_known() {
        // memcached 1.6.18's subopts_tokens and storage.c's ext_* options.
        // Known: accepted with a value memcached takes (`=1` is out of
        // range for a few: see `memcached_checks`), never "unknown".
        let known = |k: &str| {
            ["1", "20", "xxh3"]
                .iter()
                .any(|v| parse_extended(&opts(&[&format!("{k}={v}")])).is_ok())
        };
        for k in NO_EFFECT.iter().chain(SAME_HERE).chain(TLS_NO_EFFECT) {
            assert!(known(k), "{k}");
        }
        assert!(!known("bogus"));
    }

    #[test]
    fn later_values_win_and_no_effect_is_listed_once() {
        let x = parse_extended(&opts(&[
            "idle_timeout=5,eviction=fifo,lru_crawler",
            "idle_timeout=7,lru_crawler,hot_lru_pct=20",
        ]))
        .unwrap();
        assert_eq!(x.idle_timeout, 7);
        assert_eq!(x.eviction, Eviction::Fifo);
        assert_eq!(x.no_effect, ["-o lru_crawler", "-o hot_lru_pct=20"]);
        assert!(parse_extended(&opts(&["idle_timeout=x"])).is_err());
        // corecache's switches take on/off in any case, and nothing else.
        let fr = |s: &str| parse_extended(&opts(&[s])).map(|x| x.foreign_reads);
        assert!(!fr("foreign_reads=OFF").unwrap());
        assert!(!fr("foreign_reads=no").unwrap());
        assert!(fr("foreign_reads").unwrap());
        assert!(fr("foreign_reads=On").unwrap());
        assert!(fr("foreign_reads=maybe").is_err());
        assert!(parse_extended(&opts(&["hugepages=maybe"])).is_err());
        assert!(parse_extended(&opts(&["prefault=2"])).is_err());
        assert!(parse_extended(&opts(&["eviction=lru"])).is_err());
    }

    #[test]
    fn worker_ports_takes_an_optional_base() {
        let w = |s: &str| parse_extended(&opts(&[s])).map(|x| x.worker_ports);
        assert_eq!(w("worker_ports").unwrap(), Some(None));
        assert_eq!(w("worker_ports=on").unwrap(), Some(None));
        assert_eq!(w("worker_ports=12000").unwrap(), Some(Some(12000)));
        assert_eq!(w("worker_ports=12000,worker_ports=off").unwrap(), None);
        assert!(w("worker_ports=0").is_err());
        assert!(w("worker_ports=70000").is_err());
        assert!(w("worker_ports=x").is_err());
    }

    #[test]
    fn ssl_options_are_read_and_checked() {
        let x = parse_extended(&opts(&[
            "ssl_chain_cert=/c.pem,ssl_key=/k.pem",
            "ssl_ca_cert=/ca.pem,ssl_verify_mode=2,ssl_min_version=tlsv1.3,ssl_keyformat=1",
        ]))
        .unwrap();
        assert_eq!(x.ssl.chain_cert.as_deref(), Some("/c.pem"));
        assert_eq!(x.ssl.key.as_deref(), Some("/k.pem"));
        assert_eq!(x.ssl.ca_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(x.ssl.verify_mode.as_deref(), Some("2"));
        assert!(x.ssl.tls13_only && x.ssl.given && !x.ssl.user_from_cert);
        assert!(
            parse_extended(&opts(&["ssl_user_from_cert"]))
                .unwrap()
                .ssl
                .user_from_cert
        );
        for bad in [
            "ssl_verify_mode=4",
            "ssl_verify_mode=x",
            "ssl_min_version=sslv3",
            "ssl_keyformat=2",
            "ssl_chain_cert=",
        ] {
            assert!(parse_extended(&opts(&[bad])).is_err(), "{bad}");
        }
        assert!(
            !parse_extended(&opts(&["idle_timeout=1"]))
                .unwrap()
                .ssl
                .given
        );
    }
}
