//! Counters, served as Prometheus text on `GET /metrics` by every service.
//!
//! Deliberately small: a map from series (name and labels) to a count. Counted today:
//! `openorder_records_retried_total` and `openorder_records_dead_lettered_total`
//! (labels `topic`, `class`), `openorder_records_replayed_total` (label `topic`), and per
//! consumer (label `consumer`): `openorder_consumer_batches_total`,
//! `openorder_consumer_batch_records_total` (their quotient is the mean batch size) and
//! `openorder_consumer_batches_rolled_back_total`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// A cheap-to-clone handle on one process's counters.
#[derive(Clone, Debug, Default)]
pub struct Metrics(Arc<Mutex<BTreeMap<(String, String), u64>>>);

impl Metrics {
    /// Adds one to the series `name{labels}`.
    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1);
    }

    pub fn add(&self, name: &str, labels: &[(&str, &str)], n: u64) {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect::<Vec<_>>()
            .join(",");
        let mut map = self
            .0
            .lock()
            .expect("metrics lock is never poisoned: no panics inside");
        *map.entry((name.to_string(), labels)).or_default() += n;
    }

    /// The value of one series (0 if never counted).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect::<Vec<_>>()
            .join(",");
        let map = self
            .0
            .lock()
            .expect("metrics lock is never poisoned: no panics inside");
        map.get(&(name.to_string(), labels)).copied().unwrap_or(0)
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let map = self
            .0
            .lock()
            .expect("metrics lock is never poisoned: no panics inside");
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), value) in map.iter() {
            if name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let m = Metrics::default();
        m.inc(
            "openorder_records_retried_total",
            &[("topic", "order.created"), ("class", "x")],
        );
        m.inc(
            "openorder_records_retried_total",
            &[("topic", "order.created"), ("class", "x")],
        );
        assert_eq!(
            m.render(),
            "# TYPE openorder_records_retried_total counter\nopenorder_records_retried_total{topic=\"order.created\",class=\"x\"} 2\n"
        );
        assert_eq!(
            m.get(
                "openorder_records_retried_total",
                &[("topic", "order.created"), ("class", "x")]
            ),
            2
        );
    }
}
