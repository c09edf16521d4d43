//! `stats`: memcached's general statistics, summed over shards.

use super::counters::Counters;
use super::shard::VERSION;
use super::Shared;
use crate::store::Eviction;

/// Name/value pairs of `stats` with no argument, in memcached's order.
pub fn general(shared: &Shared, totals: &Counters) -> Vec<(&'static str, String)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // SAFETY: getrusage fills the struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| format!("{}.{:06}", t.tv_sec, t.tv_usec);
    let mut v: Vec<(&'static str, String)> = vec![
        ("pid", std::process::id().to_string()),
        ("uptime", shared.started.elapsed().as_secs().to_string()),
        ("time", now.to_string()),
        ("version", VERSION.to_string()),
        ("libevent", "io_uring".to_string()),
        (
            "pointer_size",
            (8 * std::mem::size_of::<usize>()).to_string(),
        ),
        ("rusage_user", tv(ru.ru_utime)),
        ("rusage_system", tv(ru.ru_stime)),
        ("max_connections", shared.settings.max_conns.to_string()),
    ];
    let skip_items = [
        "curr_items",
        "total_items",
        "bytes",
        "evictions",
        "evicted_unfetched",
        "expired_unfetched",
        "reclaimed",
        "limit_maxbytes",
        "hash_bytes",
    ];
    for (k, n) in totals.fields() {
        if !skip_items.contains(&k) {
            v.push((k, n.to_string()));
        }
    }
    v.push(("limit_maxbytes", totals.limit_maxbytes.to_string()));
    v.push(("threads", shared.mesh.n.to_string()));
    v.push(("hash_bytes", totals.hash_bytes.to_string()));
    v.push(("bytes", totals.bytes.to_string()));
    v.push(("curr_items", totals.curr_items.to_string()));
    v.push(("total_items", totals.total_items.to_string()));
    v.push(("expired_unfetched", totals.expired_unfetched.to_string()));
    v.push(("evicted_unfetched", totals.evicted_unfetched.to_string()));
    v.push(("evictions", totals.evictions.to_string()));
    v.push(("reclaimed", totals.reclaimed.to_string()));
    v.extend(shared.restored.stats());
    // memcached's logger figures: lines written, and dropped rather than
    // block a worker (admin/log_writer.rs).
    v.push((
        "log_worker_dropped",
        crate::admin::log_writer::dropped().to_string(),
    ));
    v.push((
        "log_worker_written",
        crate::admin::log_writer::written().to_string(),
    ));
    v.push((
        "page_kind",
        shared
            .page_kind
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default(),
    ));
    // `version` is the memcached release clients parse; this is ours.
    v.push(("corecache_version", crate::version::CORECACHE.to_string()));
    v
}

/// Name/value pairs of `stats ports` (corecache's own group): for the
/// shared TCP port (`-p`, whose requests go to their key's owner) and for
/// each worker's own port (`-o worker_ports`), `<port>:worker` (`all` or
/// the worker's number), `<port>:curr_connections` and
/// `<port>:total_connections` (connections open now, and accepted since
/// start); a worker port also has `<port>:cmds`, the requests it received.
/// `per_worker[i]` is worker *i*'s counters. Nothing without TCP (`-s`).
pub fn ports(shared: &Shared, per_worker: &[Counters]) -> Vec<(String, String)> {
    let s = &shared.settings;
    let mut v = Vec::new();
    if s.port == 0 {
        return v;
    }
    let (mut curr, mut total) = (0, 0);
    for c in per_worker {
        curr += c.curr_connections.saturating_sub(c.worker_port_connections);
        total += c
            .total_connections
            .saturating_sub(c.worker_port_total_connections);
    }
    let p = s.port;
    v.push((format!("{p}:worker"), "all".to_string()));
    v.push((format!("{p}:curr_connections"), curr.to_string()));
    v.push((format!("{p}:total_connections"), total.to_string()));
    if let Some(base) = s.worker_ports {
        for (i, c) in per_worker.iter().enumerate() {
            let p = base as usize + i;
            v.push((format!("{p}:worker"), i.to_string()));
            let conns = c.worker_port_connections.to_string();
            v.push((format!("{p}:curr_connections"), conns));
            let total = c.worker_port_total_connections.to_string();
            v.push((format!("{p}:total_connections"), total));
            v.push((format!("{p}:cmds"), c.worker_port_cmds.to_string()));
        }
    }
    v
}

/// Name/value pairs of `stats settings`: memcached 1.6's fields that
/// have a meaning here, in memcached's order, with corecache's values;
/// then corecache's own. Fields for machinery corecache does not have
/// (slabs, LRU, hash table, extstore) are left out rather than invented.
/// `maxbytes` is the memory limit now (`limit_maxbytes`, which
/// `cache_memlimit` changes, as memcached's `settings.maxbytes`).
pub fn settings(shared: &Shared, maxbytes: u64) -> Vec<(&'static str, String)> {
    let s = &shared.settings;
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    vec![
        ("maxbytes", maxbytes.to_string()),
        ("maxconns", s.max_conns.to_string()),
        ("tcpport", s.port.to_string()),
        // UDP is never served, whatever -U says.
        ("udpport", "0".to_string()),
        ("inter", s.interfaces.clone()),
        // What `verbosity` last set, else -v's count.
        ("verbosity", crate::admin::logging::verbosity().to_string()),
        (
            "evictions",
            if s.eviction == Eviction::None {
                "off"
            } else {
                "on"
            }
            .to_string(),
        ),
        (
            "domain_socket",
            s.unix_socket
                .as_ref()
                .map_or("NULL".to_string(), |p| p.display().to_string()),
        ),
        ("umask", format!("{:o}", s.unix_mask)),
        ("shutdown_command", yes_no(s.shutdown_enabled)),
        ("num_threads", shared.mesh.n.to_string()),
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
            shared
                .auth
                .as_ref()
                .and_then(|a| a.config.ascii.clone())
                .unwrap_or_else(|| "no".to_string()),
        ),
        ("item_size_max", s.item_max.to_string()),
        // Over -c, a connection is told so and closed at once.
        ("maxconns_fast", yes_no(true)),
        ("flush_enabled", yes_no(s.flush_enabled)),
        ("idle_timeout", s.idle_timeout.to_string()),
        ("ssl_enabled", yes_no(shared.tls.is_some())),
        (
            "ssl_verify_mode",
            shared
                .tls
                .as_ref()
                .map_or(0, |t| t.config.verify_mode.number())
                .to_string(),
        ),
        (
            "ssl_min_version",
            match &shared.tls {
                Some(t) if t.config.tls13_only => "tlsv1.3",
                _ => "tlsv1.2",
            }
            .to_string(),
        ),
        ("eviction_policy", s.eviction_name().to_string()),
        ("segment_size", s.segment_size.to_string()),
        (
            "worker_ports",
            s.worker_ports.map_or("off".to_string(), |b| {
                format!("{b}-{}", b as usize + shared.mesh.n - 1)
            }),
        ),
        ("admin", crate::admin::settings_value(&shared.telemetry)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use crate::store::Eviction;

    #[test]
    fn eviction_names_round_trip_through_the_store() {
        for n in ["merge", "fifo", "random", "cte", "util", "volatile", "none"] {
            let s = Settings {
                port: 0,
                interfaces: String::new(),
                unix_socket: None,
                unix_mask: 0o700,
                backlog: 1024,
                memory: 0,
                item_max: 0,
                max_conns: 0,
                segment_size: 0,
                eviction: n.parse::<Eviction>().unwrap(),
                flush_enabled: true,
                idle_timeout: 0,
                worker_ports: None,
                shutdown_enabled: false,
                cas_enabled: true,
                verbosity: 0,
            };
            assert_eq!(s.eviction_name(), n);
        }
    }
}
