//! `stats reset` and the admin port's counters on the real binary: `stats`
//! counts from the reset, as memcached's, while every Prometheus counter
//! (`*_total`) on /metrics and every count in /stats goes on from where it
//! was, so `rate()` never sees a counter go back.

mod common;

use common::{admin_addr, admin_get as get, exchange, stat, Server};
use std::collections::HashMap;
use std::io::Write;

/// Every counter sample of a classic scrape: `name{labels}` to value.
fn counters(scrape: &str) -> HashMap<String, f64> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(k, _)| k.split('{').next().unwrap().ends_with("_total"))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

fn workload(srv: &Server) {
    let mut s = srv.connect();
    for i in 0..10 {
        write!(s, "set k{i} 0 0 1\r\nv\r\nget k{i} miss{i}\r\n").unwrap();
        common::read_until(&mut s, b"END\r\n");
    }
}

#[test]
fn prometheus_counters_stay_monotonic_across_stats_reset() {
    let srv = Server::start(&["-t", "2", "--admin", "127.0.0.1:0"]);
    let admin = admin_addr(&srv);
    workload(&srv);
    let before = counters(&get(&admin, "/metrics"));
    let hits = r#"memcached_commands_total{command="get",status="hit"}"#;
    assert_eq!(before[hits], 10.0);
    let json: serde_json::Value = serde_json::from_str(&get(&admin, "/stats")).unwrap();
    let json_hits = json["stats"]["get_hits"].as_u64();
    assert_eq!(
        exchange(&srv, b"stats reset\r\n", b"RESET\r\n"),
        b"RESET\r\n"
    );
    // The text protocol's view starts again; the levels stay.
    let st = exchange(&srv, b"stats\r\n", b"END\r\n");
    for row in [
        "cmd_get",
        "get_hits",
        "get_misses",
        "cmd_set",
        "total_items",
    ] {
        assert_eq!(stat(&st, row), Some(0), "{row}");
    }
    assert_eq!(stat(&st, "curr_items"), Some(10));
    // The admin port's counters go on.
    let after = counters(&get(&admin, "/metrics"));
    assert!(before.len() > 20, "{before:?}");
    for (k, v) in &before {
        let now = after.get(k).unwrap_or_else(|| panic!("{k} gone"));
        assert!(now >= v, "{k} went back from {v} to {now}");
    }
    assert_eq!(after[hits], 10.0);
    assert_eq!(after["memcached_items_total"], 10.0);
    let json: serde_json::Value = serde_json::from_str(&get(&admin, "/stats")).unwrap();
    assert_eq!(json["stats"]["get_hits"].as_u64(), json_hits);
    // And both go on counting: one more hit.
    workload(&srv);
    let st = exchange(&srv, b"stats\r\n", b"END\r\n");
    assert_eq!(stat(&st, "get_hits"), Some(10));
    let again = counters(&get(&admin, "/metrics"));
    assert_eq!(again[hits], 20.0);
}
