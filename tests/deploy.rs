//! deploy/: the alert rules and the Grafana dashboard ask only for series
//! corecache exposes, and every dashboard query is valid PromQL (promtool
//! parses it). `promtool check rules` / `test rules` on the alert rules
//! themselves run in scripts/test.sh.

use corecache::admin::cpu::CpuTime;
use corecache::admin::figures::{Figures, WorkerFigures};
use corecache::admin::histogram::Latency;
use corecache::admin::metrics::{openmetrics, to_classic};
use corecache::engine::counters::Counters;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn deploy(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every series name the exposition can hold (histograms on, a worker
/// with a CPU reading).
fn exposed() -> BTreeSet<String> {
    let f = Figures {
        totals: Counters::default(),
        workers: vec![WorkerFigures {
            id: 0,
            counters: Counters::default(),
            cpu: Some(CpuTime::default()),
            serving: true,
        }],
        latency: Some(Latency::default().snapshot()),
        uptime: 0,
        time: 0,
        rusage: CpuTime::default(),
        max_connections: 1,
        version: "0",
        policy: "merge".into(),
        accepting: true,
        admin_conns: Default::default(),
        warm: Some((true, 0, 0, 0, 0)),
    };
    to_classic(&openmetrics(&f))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// Names that look like ours (`memcached_*`, `corecache_*`) in a text.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    for prefix in ["memcached_", "corecache_"] {
        let mut at = 0;
        while let Some(i) = text[at..].find(prefix) {
            let start = at + i;
            let mut end = start;
            while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                end += 1;
            }
            // Skip words that merely contain the prefix (e.g. in prose
            // such as "prometheus/memcached_exporter").
            let before = start.checked_sub(1).map(|j| b[j]);
            let word = &text[start..end];
            let prose =
                matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'/');
            // A bare prefix ("the memcached_* names") is prose too.
            if !prose && !word.ends_with('_') {
                out.insert(word.to_string());
            }
            at = end;
        }
    }
    out
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&deploy("grafana/corecache.json")).expect("dashboard JSON")
}

/// Every PromQL expression of the dashboard's panels.
fn dashboard_exprs() -> Vec<String> {
    let d = dashboard();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            out.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    out
}

#[test]
fn alert_rules_use_only_exposed_series() {
    let have = exposed();
    let used = referenced(&deploy("prometheus/corecache-alerts.yml"));
    assert!(used.len() >= 8, "{used:?}");
    let missing: Vec<_> = used.difference(&have).collect();
    assert!(missing.is_empty(), "not exposed: {missing:?}");
}

#[test]
fn dashboard_uses_only_exposed_series() {
    let have = exposed();
    let used: BTreeSet<String> = dashboard_exprs()
        .iter()
        .flat_map(|e| referenced(e))
        .collect();
    assert!(used.len() >= 20, "{used:?}");
    let missing: Vec<_> = used.difference(&have).collect();
    assert!(missing.is_empty(), "not exposed: {missing:?}");
    // The figures the issue asks a dashboard for are all on it.
    for want in [
        "memcached_commands_total",
        "memcached_current_bytes",
        "memcached_limit_bytes",
        "memcached_items_evicted_total",
        "memcached_current_connections",
        "memcached_read_bytes_total",
        "corecache_worker_cpu_seconds_total",
        "corecache_request_duration_seconds_bucket",
    ] {
        assert!(used.contains(want), "{want} not on the dashboard");
    }
}

#[test]
fn dashboard_layout_is_sound() {
    let d = dashboard();
    assert_eq!(d["uid"], "corecache-overview");
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "instance"]);
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate id");
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(x + w <= 24, "panel {} overflows the grid", p["title"]);
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
}

#[test]
fn dashboard_queries_are_valid_promql() {
    // promtool parses rule expressions: write each query as a recording
    // rule, with Grafana's variables given values, and check the file.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in dashboard_exprs().iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*");
        let quoted = serde_json::to_string(&e).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {quoted}\n"
        ));
    }
    let path = std::env::temp_dir().join(format!("cc-dash-rules-{}.yml", std::process::id()));
    std::fs::write(&path, rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The unit does not restart a start-up that fails the same way every
/// time: the status it lists is the one the binary exits with for a bad
/// value in the conf, and not 71 (a port taken may pass).
#[test]
fn the_unit_does_not_restart_configuration_errors() {
    let unit = deploy("systemd/corecache.service");
    let listed: BTreeSet<i32> = unit
        .lines()
        .find_map(|l| l.strip_prefix("RestartPreventExitStatus="))
        .expect("RestartPreventExitStatus in the unit")
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    let dir = std::env::temp_dir().join(format!("cc-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, "-m lots\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_corecache"))
        .args(["--conf", conf.to_str().unwrap(), "-u", "root", "-p", "0"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let code = out.status.code().unwrap();
    assert!(listed.contains(&code), "exit {code} not in {listed:?}");
    assert_eq!(listed, [64].into_iter().collect(), "{unit}");
}
