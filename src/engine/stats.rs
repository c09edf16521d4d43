//! `stats`: memcached's general statistics, summed over shards.

pub use super::stats_settings::settings;

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
    let t = totals;
    let n = |x: u64| x.to_string();
    let zero = || "0".to_string();
    let workers = shared.mesh.n as u64;
    let read_bufs = workers * u64::from(super::worker::RECV_BUFS);
    let read_buf_bytes = read_bufs * super::worker::RECV_BUF_SIZE as u64;
    let hash_power = 63 - t.hash_buckets.max(1).leading_zeros();
    let mc = [
        ("curr_connections", n(t.curr_connections)),
        ("total_connections", n(t.total_connections)),
        ("rejected_connections", n(t.rejected_connections)),
        ("connection_structures", n(t.connection_structures)),
        // No response objects: replies are written into the connection's
        // output buffer, which has its own cap (engine/conn.rs).
        ("response_obj_oom", zero()),
        ("response_obj_count", zero()),
        ("response_obj_bytes", zero()),
        // The workers' io_uring receive buffer rings. A buffer goes back
        // to its ring within the loop turn it filled, so between turns,
        // when stats are read, every one is free.
        ("read_buf_count", n(read_bufs)),
        ("read_buf_bytes", n(read_buf_bytes)),
        ("read_buf_bytes_free", n(read_buf_bytes)),
        ("read_buf_oom", n(t.read_buf_oom)),
        ("incoming_bytes", n(t.incoming_bytes)),
        ("incoming_refused", n(t.incoming_refused)),
        ("stalled_bytes", n(t.stalled_bytes)),
        // Descriptors are not set aside: running short pauses accepting
        // (listen_disabled_num) instead.
        ("reserved_fds", zero()),
        ("cmd_get", n(t.cmd_get)),
        ("cmd_set", n(t.cmd_set)),
        ("cmd_flush", n(t.cmd_flush)),
        ("cmd_touch", n(t.cmd_touch)),
        ("cmd_meta", n(t.cmd_meta)),
        ("get_hits", n(t.get_hits)),
        ("get_misses", n(t.get_misses)),
        ("get_expired", n(t.get_expired)),
        ("get_flushed", n(t.get_flushed)),
        ("delete_misses", n(t.delete_misses)),
        ("delete_hits", n(t.delete_hits)),
        ("incr_misses", n(t.incr_misses)),
        ("incr_hits", n(t.incr_hits)),
        ("decr_misses", n(t.decr_misses)),
        ("decr_hits", n(t.decr_hits)),
        ("cas_misses", n(t.cas_misses)),
        ("cas_hits", n(t.cas_hits)),
        ("cas_badval", n(t.cas_badval)),
        ("touch_hits", n(t.touch_hits)),
        ("touch_misses", n(t.touch_misses)),
        ("store_too_large", n(t.store_too_large)),
        ("store_no_memory", n(t.store_no_memory)),
        ("auth_cmds", n(t.auth_cmds)),
        ("auth_errors", n(t.auth_errors)),
        ("bytes_read", n(t.bytes_read)),
        ("bytes_written", n(t.bytes_written)),
        ("limit_maxbytes", n(t.limit_maxbytes)),
        ("accepting_conns", n(t.accepting_conns)),
        ("listen_disabled_num", n(t.listen_disabled_num)),
        (
            "time_in_listen_disabled_us",
            n(t.time_in_listen_disabled_us),
        ),
        ("threads", n(workers)),
        // No -R: a connection never yields to others mid-batch.
        ("conn_yields", zero()),
        // The index's primary buckets over all shards as a power of two
        // (each bucket holds several items, not one chain).
        ("hash_power_level", hash_power.to_string()),
        ("hash_bytes", n(t.hash_bytes)),
        ("hash_is_expanding", n(u64::from(t.hash_expanding > 0))),
        // No slabs to reassign: segments hold items of any size.
        ("slab_reassign_rescues", zero()),
        ("slab_reassign_chunk_rescues", zero()),
        ("slab_reassign_evictions_nomem", zero()),
        ("slab_reassign_inline_reclaim", zero()),
        ("slab_reassign_busy_items", zero()),
        ("slab_reassign_busy_deletes", zero()),
        ("slab_reassign_running", zero()),
        ("slabs_moved", zero()),
        // The crawler runs in bounded steps inside a worker's turn, so it
        // is never running while stats are read.
        ("lru_crawler_running", zero()),
        ("lru_crawler_starts", n(t.lru_crawler_starts)),
        // No LRU maintainer thread.
        ("lru_maintainer_juggles", zero()),
        // An allocation that fails aborts the process (Rust's default).
        ("malloc_fails", zero()),
        // memcached's logger figures: lines written, and dropped rather
        // than block a worker (admin/log_writer.rs).
        ("log_worker_dropped", n(crate::admin::log_writer::dropped())),
        ("log_worker_written", n(crate::admin::log_writer::written())),
        ("log_watcher_skipped", n(super::watch::skipped())),
        ("log_watcher_sent", n(super::watch::sent())),
        ("log_watchers", n(super::watch::watchers())),
        // -N has no effect: no NAPI ids to meet.
        ("unexpected_napi_ids", zero()),
        ("round_robin_fallback", zero()),
        ("bytes", n(t.bytes)),
        ("curr_items", n(t.curr_items)),
        ("total_items", n(t.total_items)),
        // No slab pages to pool.
        ("slab_global_page_pool", zero()),
        ("expired_unfetched", n(t.expired_unfetched)),
        ("evicted_unfetched", n(t.evicted_unfetched)),
        // No LRU to rescue an active item from its tail.
        ("evicted_active", zero()),
        ("evictions", n(t.evictions)),
        ("reclaimed", n(t.reclaimed)),
        ("crawler_reclaimed", n(t.crawler_reclaimed)),
        ("crawler_items_checked", n(t.crawler_items_checked)),
        // The segmented LRU's figures: no such LRU here.
        ("lrutail_reflocked", zero()),
        ("moves_to_cold", zero()),
        ("moves_to_warm", zero()),
        ("moves_within_lru", zero()),
        ("direct_reclaims", zero()),
        ("lru_bumps_dropped", zero()),
    ];
    let named: Vec<&str> = mc.iter().map(|(k, _)| *k).collect();
    v.extend(mc);
    // corecache's own counters, after memcached's.
    let internal = ["hash_buckets", "hash_expanding"];
    for (k, x) in t.fields() {
        if !named.contains(&k) && !internal.contains(&k) {
            v.push((k, n(x)));
        }
    }
    v.extend(shared.restored.stats());
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
                incoming_limit: 0,
                worker_ports: None,
                foreign_reads: false,
                borrow_shards: false,
                pin_workers: false,
                steer_connections: false,
                shutdown_enabled: false,
                cas_enabled: true,
                verbosity: 0,
                introspection: Default::default(),
            };
            assert_eq!(s.eviction_name(), n);
        }
    }
}
