//! `/stats`: the figures `stats` and `/metrics` give, as one JSON object
//! for scripts. Counts are since start, as on `/metrics`: `stats reset`
//! restarts only the text and binary `stats` (`exec/counters.rs`).
//!
//! ```text
//! { "stats":    { <every row of `stats`, numbers as numbers> },
//!   "settings": { <every row of `stats settings`> },
//!   "workers":  [ { "id", "serving", "cpu_user_seconds",
//!                   "cpu_system_seconds", <that worker's counters> } ],
//!   "latency":  { <family>: { "count", "sum_seconds",
//!                             "buckets": [[le_seconds, cumulative], ...] } }
//!                 (null when the histograms are off) }
//! ```

use super::figures::Figures;
use super::histogram::Family;
use crate::engine::{stats, Shared};
use serde_json::{json, Map, Value};

/// A `stats` value as JSON: a number when it is one, else a string.
fn value(s: &str) -> Value {
    if let Ok(n) = s.parse::<u64>() {
        return Value::from(n);
    }
    if let Ok(x) = s.parse::<f64>() {
        if x.is_finite() {
            return Value::from(x);
        }
    }
    Value::from(s)
}

fn rows(rows: Vec<(&'static str, String)>) -> Value {
    Value::Object(
        rows.into_iter()
            .map(|(k, v)| {
                // A version such as "2.0" reads as a number but is not one.
                let v = if k == "version" { v.into() } else { value(&v) };
                (k.into(), v)
            })
            .collect(),
    )
}

/// The JSON document for `/stats`.
pub fn render(shared: &Shared, f: &Figures) -> String {
    let workers: Vec<Value> = f
        .workers
        .iter()
        .map(|w| {
            let mut m = Map::new();
            m.insert("id".into(), w.id.into());
            m.insert("serving".into(), w.serving.into());
            m.insert(
                "cpu_user_seconds".into(),
                w.cpu.map_or(Value::Null, |c| c.user.into()),
            );
            m.insert(
                "cpu_system_seconds".into(),
                w.cpu.map_or(Value::Null, |c| c.system.into()),
            );
            for (k, v) in w.counters.fields() {
                m.insert(k.into(), v.into());
            }
            Value::Object(m)
        })
        .collect();
    let latency = f.latency.as_ref().map_or(Value::Null, |s| {
        Value::Object(
            Family::ALL
                .iter()
                .map(|&fam| {
                    let buckets: Vec<Value> = s
                        .cumulative(fam)
                        .into_iter()
                        .map(|(le, n)| json!([le, n]))
                        .collect();
                    let v = json!({
                        "count": s.count(fam),
                        "sum_seconds": s.sum_seconds(fam),
                        "buckets": buckets,
                    });
                    (fam.name().to_string(), v)
                })
                .collect(),
        )
    });
    let doc = json!({
        "stats": rows(stats::general(shared, &f.totals)),
        "settings": rows(stats::settings(shared, f.totals.limit_maxbytes)),
        "workers": workers,
        "latency": latency,
    });
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_stay_numbers() {
        assert_eq!(value("42"), json!(42));
        assert_eq!(value("0.250000"), json!(0.25));
        assert_eq!(value("1.6.0"), json!("1.6.0"));
        assert_eq!(value("merge"), json!("merge"));
        assert_eq!(value("inf"), json!("inf"));
        assert_eq!(value("18446744073709551615"), json!(u64::MAX));
    }
}
