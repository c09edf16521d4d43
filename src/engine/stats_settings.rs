//! `stats settings`: every field memcached 1.6.18 lists, in its order,
//! then corecache's own.
//!
//! A field with a meaning here has corecache's value. The slab allocator,
//! segmented LRU, hash table sizing, UDP and extstore knobs configure
//! machinery corecache does not have; memcached's defaults are shown for
//! them (memcached lists them whether or not it uses them, extstore's
//! included), each group with why below. Their `-o` options start the
//! server with a warning that they have no effect (config/extended.rs).

use super::Shared;
use crate::store::Eviction;

/// Name/value pairs of `stats settings`. `maxbytes` is the memory limit
/// now (`limit_maxbytes`, which `cache_memlimit` changes, as memcached's
/// `settings.maxbytes`); `oldest` is memcached's `oldest_live`, the store
/// time (seconds) of the last `flush_all` less one (`Shared::oldest_live`).
pub fn settings(shared: &Shared, maxbytes: u64) -> Vec<(&'static str, String)> {
    let oldest = shared
        .oldest_live
        .load(std::sync::atomic::Ordering::Relaxed);
    let s = &shared.settings;
    let intro = &s.introspection;
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let fixed = |v: &str| v.to_string();
    let tls = shared.tls.as_ref().map(|t| &t.config);
    let path = |p: Option<&std::path::PathBuf>, none: &str| {
        p.map_or(none.to_string(), |p| p.display().to_string())
    };
    let threads = shared.mesh.n.to_string();
    vec![
        ("maxbytes", maxbytes.to_string()),
        ("maxconns", s.max_conns.to_string()),
        ("tcpport", s.port.to_string()),
        // UDP is never served, whatever -U says.
        ("udpport", "0".to_string()),
        ("inter", s.interfaces.clone()),
        // What `verbosity` last set, else -v's count.
        ("verbosity", crate::admin::logging::verbosity().to_string()),
        ("oldest", oldest.to_string()),
        (
            "evictions",
            if s.eviction == Eviction::None {
                "off"
            } else {
                "on"
            }
            .to_string(),
        ),
        ("domain_socket", path(s.unix_socket.as_ref(), "NULL")),
        ("umask", format!("{:o}", s.unix_mask)),
        ("shutdown_command", yes_no(s.shutdown_enabled)),
        // The size classes `stats items`/`slabs`/`cachedump` report by
        // are memcached's default ones (store/classes.rs): factor 1.25
        // from 48 bytes, whatever -f and -n say.
        ("growth_factor", fixed("1.25")),
        ("chunk_size", fixed("48")),
        ("num_threads", threads.clone()),
        // memcached's default is one UDP thread per worker; no UDP here.
        ("num_threads_per_udp", threads),
        (
            "stat_key_prefix",
            char::from(intro.prefix_delimiter).to_string(),
        ),
        ("detail_enabled", yes_no(shared.detail.enabled())),
        // -R has no effect: a connection's requests run as they arrive
        // in one io_uring turn. memcached's default.
        ("reqs_per_event", fixed("20")),
        ("cas_enabled", yes_no(s.cas_enabled)),
        ("tcp_backlog", s.backlog.to_string()),
        ("binding_protocol", "auto-negotiate".to_string()),
        (
            "auth_enabled_sasl",
            yes_no(shared.auth.as_ref().is_some_and(|a| a.config.sasl)),
        ),
        // memcached shows the -Y file's name, or "no".
        (
            "auth_enabled_ascii",
            (shared.auth.as_ref())
                .and_then(|a| a.config.ascii.clone())
                .unwrap_or_else(|| "no".to_string()),
        ),
        ("item_size_max", s.item_max.to_string()),
        // Over -c, a connection is told so and closed at once.
        ("maxconns_fast", yes_no(true)),
        // The index grows by itself; -o hashpower has no effect, and 0
        // is memcached's "not given".
        ("hashpower_init", fixed("0")),
        // Segments hold items of any size, so memory moves between sizes
        // as slab reassignment and its automover would move it.
        ("slab_reassign", yes_no(true)),
        ("slab_automove", fixed("1")),
        ("slab_automove_ratio", fixed("0.80")),
        ("slab_automove_window", fixed("30")),
        // memcached's default: half its 1 MiB page.
        ("slab_chunk_max", fixed("524288")),
        // The store's crawler always runs (store/expiry.rs); its pace is
        // its own, so sleep and tocrawl are memcached's defaults.
        ("lru_crawler", yes_no(true)),
        ("lru_crawler_sleep", fixed("100")),
        ("lru_crawler_tocrawl", fixed("0")),
        ("tail_repair_time", fixed("0")),
        ("flush_enabled", yes_no(s.flush_enabled)),
        ("dump_enabled", yes_no(intro.dump_enabled)),
        ("hash_algorithm", fixed("ahash")),
        // No LRU: eviction is by segment (eviction_policy below). The
        // segmented LRU's knobs are memcached's defaults, unused here.
        ("lru_maintainer_thread", yes_no(false)),
        ("lru_segmented", yes_no(false)),
        ("hot_lru_pct", fixed("20")),
        ("warm_lru_pct", fixed("40")),
        ("hot_max_factor", fixed("0.20")),
        ("warm_max_factor", fixed("2.00")),
        ("temp_lru", yes_no(false)),
        ("temporary_ttl", fixed("61")),
        ("idle_timeout", s.idle_timeout.to_string()),
        // A watcher's queue bound (watch.rs); -o watcher_logbuf_size has
        // no effect.
        ("watcher_logbuf_size", super::watch::WATCHER_BUF.to_string()),
        (
            "worker_logbuf_size",
            super::watch::WORKER_LOGBUF.to_string(),
        ),
        // No limit on read buffers' memory (memcached's 0).
        ("read_buf_mem_limit", fixed("0")),
        // `stats sizes` answers as memcached's does without it.
        ("track_sizes", yes_no(false)),
        ("inline_ascii_response", yes_no(false)),
        // No extstore (-e and ext_path are refused or without effect):
        // memcached's defaults, which it lists without extstore too.
        ("ext_item_size", fixed("512")),
        ("ext_item_age", fixed("4294967295")),
        ("ext_low_ttl", fixed("0")),
        ("ext_recache_rate", fixed("2000")),
        ("ext_wbuf_size", fixed("4194304")),
        ("ext_compact_under", fixed("0")),
        ("ext_drop_under", fixed("0")),
        ("ext_max_sleep", fixed("1000000")),
        ("ext_max_frag", fixed("0.80")),
        ("slab_automove_freeratio", fixed("0.010")),
        ("ext_drop_unread", yes_no(false)),
        ("ssl_enabled", yes_no(tls.is_some())),
        // memcached prints C's "(null)" for a file not given.
        ("ssl_chain_cert", path(tls.map(|t| &t.chain_cert), "(null)")),
        ("ssl_key", path(tls.map(|t| &t.key), "(null)")),
        (
            "ssl_verify_mode",
            tls.map_or(0, |t| t.verify_mode.number()).to_string(),
        ),
        // PEM (OpenSSL's SSL_FILETYPE_PEM), the only format read.
        ("ssl_keyformat", fixed("1")),
        // rustls offers its own modern suites; no cipher string.
        ("ssl_ciphers", fixed("NULL")),
        (
            "ssl_ca_cert",
            path(tls.and_then(|t| t.ca_cert.as_ref()), "NULL"),
        ),
        // Records are sealed straight into the send buffer; memcached's
        // default size of its buffer.
        ("ssl_wbuf_size", fixed("16384")),
        ("ssl_session_cache", yes_no(false)),
        ("ssl_kernel_tls", yes_no(false)),
        (
            "ssl_min_version",
            match tls {
                Some(t) if t.tls13_only => "tlsv1.3",
                _ => "tlsv1.2",
            }
            .to_string(),
        ),
        // -N (NAPI ids) has no effect; memcached's "not given".
        ("num_napi_ids", fixed("(null)")),
        // -e is refused at start.
        ("memory_file", fixed("(null)")),
        // corecache's own.
        ("eviction_policy", s.eviction_name().to_string()),
        ("segment_size", s.segment_size.to_string()),
        (
            "worker_ports",
            s.worker_ports.map_or("off".to_string(), |b| {
                format!("{b}-{}", b as usize + shared.mesh.n - 1)
            }),
        ),
        ("foreign_reads", yes_no(s.foreign_reads)),
        ("borrow_shards", yes_no(s.borrow_shards)),
        ("pin_workers", yes_no(s.pin_workers)),
        ("steer_connections", yes_no(s.steer_connections)),
        // Megabytes the workers may hold for requests still arriving, and
        // for replies clients are slow to read (engine/incoming.rs); 0 =
        // no limit.
        ("incoming_mem_limit", (s.incoming_limit >> 20).to_string()),
        ("admin", crate::admin::settings_value(&shared.telemetry)),
    ]
}
