//! `stats`: memcached's general statistics, summed over shards.

use super::counters::Counters;
use super::shard::VERSION;
use super::Shared;

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
    v.push((
        "page_kind",
        shared
            .page_kind
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default(),
    ));
    v
}

pub fn settings(shared: &Shared) -> Vec<(&'static str, String)> {
    let s = &shared.settings;
    vec![
        ("maxbytes", s.memory.to_string()),
        ("maxconns", s.max_conns.to_string()),
        ("tcpport", s.port.to_string()),
        ("num_threads", shared.mesh.n.to_string()),
        ("item_size_max", s.item_max.to_string()),
        ("evictions", if s.evict { "on" } else { "off" }.to_string()),
        ("eviction_policy", s.policy.clone()),
        ("segment_size", s.segment_size.to_string()),
        ("binding_protocol", "auto-negotiate".to_string()),
        (
            "flush_enabled",
            if s.flush_enabled { "yes" } else { "no" }.to_string(),
        ),
    ]
}
