//! Counters, gauges and latency histograms, served as Prometheus text on `GET /metrics` by
//! every service.
//!
//! Deliberately small: a map from series (name and labels) to a count, one to a gauge's
//! value, and one to a histogram with fixed buckets ([`BUCKETS`]); a series may be
//! described (`# HELP`, [`Metrics::describe`]). Every series served, by where it is set:
//!
//! | series | type | labels | set by |
//! |---|---|---|---|
//! | `openorder_http_request_duration_seconds` | histogram | `method`, `route`, `status` | `web::http`: every request to a route, from its arrival to its answer |
//! | `openorder_http_requests_shed_total` | counter | | `web::http`: requests refused at once, over `--max-in-flight-requests` |
//! | `openorder_records_replayed_total` | counter | `topic` | `web::http`: dead letters replayed |
//! | `openorder_records_retried_total` | counter | `topic`, `class` | `messaging::consumer` |
//! | `openorder_records_dead_lettered_total` | counter | `topic`, `class` | `messaging::consumer` |
//! | `openorder_dead_letters_value_omitted_total` | counter | `topic` | `messaging::consumer`: dead letters written without their value |
//! | `openorder_consumer_batches_total` | counter | `consumer` | `messaging::consumer` |
//! | `openorder_consumer_batch_records_total` | counter | `consumer` | `messaging::consumer` (over batches: the mean batch size) |
//! | `openorder_consumer_batches_rolled_back_total` | counter | `consumer` | `messaging::consumer` |
//! | `openorder_consumer_keys_set_aside_total` | counter | `consumer` | `messaging::consumer` |
//! | `openorder_consumer_keys_waiting` | gauge | `consumer` | `messaging::stalls`, as `/metrics` is rendered |
//! | `openorder_consumer_keys_stalled` | gauge | `consumer` | `messaging::stalls`, as `/metrics` is rendered |
//! | `openorder_consumer_lag_records` | gauge | `consumer`, `topic`, `partition` | `runtime::gauges`, every 5 s |
//! | `openorder_consumer_lag_seconds` | gauge | `consumer`, `topic`, `partition` | `runtime::gauges`, every 5 s |
//! | `openorder_outbox_rows` | gauge | | `runtime::gauges`, every 5 s |
//! | `openorder_outbox_oldest_age_seconds` | gauge | | `runtime::gauges`, every 5 s |
//! | `openorder_ready` | gauge | | `runtime::gauges`, every 5 s (1 when `/health/ready` answers 200) |
//! | `openorder_storage_commit_failures_total` | counter | `fault` | `store::storage`, as `/metrics` is rendered |
//! | `openorder_storage_failing` | gauge | | `store::storage`, as `/metrics` is rendered |
//! | `openorder_rows_pruned_total` | counter | `table` | `store::retention` |
//! | `openorder_trace_spans_exported_total` | counter | | `telemetry` (with traces exported), as `/metrics` is rendered |
//! | `openorder_trace_spans_dropped_total` | counter | | `telemetry` (with traces exported), as `/metrics` is rendered |
//! | `openorder_orders_refused_total` | counter | `reason` | order-service's intake (`busy`) |
//! | `openorder_orders_expired_total` | counter | | order-service (`--expire-pending-after`) |
//! | `openorder_orders_stuck` | gauge | | order-service, every 10 s: PENDING longer than `--stuck-after` |
//! | `openorder_orders_pending_oldest_age_seconds` | gauge | | order-service, every 10 s |
//! | `openorder_order_waiters` | gauge | | order-service, every 10 s: requests waiting for a decision |
//! | `openorder_notification_attempts_total` | counter | `channel`, `outcome` | notification-service's deliveries |
//!
//! A counter or a labelled series appears from its first increment or setting on; the
//! gauges set every few seconds appear once their task made its first pass.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, MutexGuard};

/// Upper bounds of the histogram buckets, in seconds: 0.5 ms to 10 s.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// A series: its name and its rendered labels (`k="v",…`).
type Series = (String, String);

/// A cheap-to-clone handle on one process's counters, gauges and histograms.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    counters: Arc<Mutex<BTreeMap<Series, u64>>>,
    gauges: Arc<Mutex<BTreeMap<Series, f64>>>,
    histograms: Arc<Mutex<BTreeMap<Series, Histogram>>>,
    /// `# HELP` text by name, for the series described ([`Metrics::describe`]).
    help: Arc<Mutex<BTreeMap<String, String>>>,
}

#[derive(Debug, Default)]
struct Histogram {
    /// Observations at or under each of [`BUCKETS`] (not cumulative here).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

fn labels_text(labels: &[(&str, &str)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

impl Metrics {
    /// Records one observation of `seconds` in the histogram `name{labels}`.
    pub fn observe(&self, name: &str, labels: &[(&str, &str)], seconds: f64) {
        let mut map = lock(&self.histograms);
        let histogram = map
            .entry((name.to_string(), labels_text(labels)))
            .or_default();
        if let Some(i) = BUCKETS.iter().position(|&le| seconds <= le) {
            histogram.buckets[i] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Adds one to the series `name{labels}`.
    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1);
    }

    pub fn add(&self, name: &str, labels: &[(&str, &str)], n: u64) {
        let labels = labels_text(labels);
        let mut map = lock(&self.counters);
        *map.entry((name.to_string(), labels)).or_default() += n;
    }

    /// Sets the counter `name{labels}` to `value` (a count kept elsewhere, copied in as
    /// `/metrics` is rendered).
    pub fn set_counter(&self, name: &str, labels: &[(&str, &str)], value: u64) {
        let labels = labels_text(labels);
        lock(&self.counters).insert((name.to_string(), labels), value);
    }

    /// Sets the gauge `name{labels}` to `value`.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)], value: i64) {
        self.gauge_f64(name, labels, value as f64);
    }

    /// Sets the gauge `name{labels}` to `value`, a fraction (seconds to the millisecond).
    pub fn gauge_f64(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels = labels_text(labels);
        lock(&self.gauges).insert((name.to_string(), labels), value);
    }

    /// Stops serving the gauge `name{labels}` (a partition no longer assigned, say).
    pub fn forget_gauge(&self, name: &str, labels: &[(&str, &str)]) {
        let labels = labels_text(labels);
        lock(&self.gauges).remove(&(name.to_string(), labels));
    }

    /// Serves `help` as the `# HELP` line of the series `name` (each line break becomes a
    /// space).
    pub fn describe(&self, name: &str, help: &str) {
        lock(&self.help).insert(name.to_string(), help.replace('\n', " "));
    }

    /// The value of one series (0 if never counted).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let labels = labels_text(labels);
        let map = lock(&self.counters);
        map.get(&(name.to_string(), labels)).copied().unwrap_or(0)
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let help = lock(&self.help).clone();
        let counters = lock(&self.counters);
        let mut last = "";
        for ((name, labels), value) in counters.iter() {
            type_line(&mut out, &mut last, name, "counter", &help);
            let _ = writeln!(out, "{name}{} {value}", braced(labels, ""));
        }
        drop(counters);
        let gauges = lock(&self.gauges);
        let mut last = "";
        for ((name, labels), value) in gauges.iter() {
            type_line(&mut out, &mut last, name, "gauge", &help);
            let _ = writeln!(out, "{name}{} {value}", braced(labels, ""));
        }
        drop(gauges);
        let histograms = lock(&self.histograms);
        let mut last = "";
        for ((name, labels), histogram) in histograms.iter() {
            type_line(&mut out, &mut last, name, "histogram", &help);
            let mut cumulative = 0;
            for (le, n) in BUCKETS.iter().zip(histogram.buckets) {
                cumulative += n;
                let le = format!("le=\"{le}\"");
                let _ = writeln!(out, "{name}_bucket{} {cumulative}", braced(labels, &le));
            }
            let inf = "le=\"+Inf\"";
            let _ = writeln!(
                out,
                "{name}_bucket{} {}",
                braced(labels, inf),
                histogram.count
            );
            let _ = writeln!(out, "{name}_sum{} {}", braced(labels, ""), histogram.sum);
            let _ = writeln!(
                out,
                "{name}_count{} {}",
                braced(labels, ""),
                histogram.count
            );
        }
        out
    }
}

/// Every lock here is held for a map update or a render, which cannot panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("metrics lock is never poisoned: no panics inside")
}

/// `# HELP name text` (for a series described) and `# TYPE name kind`, once per name: the
/// maps are sorted, so a name's series are together.
fn type_line<'a>(
    out: &mut String,
    last: &mut &'a str,
    name: &'a str,
    kind: &str,
    help: &BTreeMap<String, String>,
) {
    if name != *last {
        if let Some(text) = help.get(name) {
            let text = text.replace('\\', "\\\\");
            let _ = writeln!(out, "# HELP {name} {text}");
        }
        let _ = writeln!(out, "# TYPE {name} {kind}");
        *last = name;
    }
}

/// `{labels,extra}`, or nothing when both are empty.
fn braced(labels: &str, extra: &str) -> String {
    match (labels.is_empty(), extra.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!("{{{labels}}}"),
        (true, false) => format!("{{{extra}}}"),
        (false, false) => format!("{{{labels},{extra}}}"),
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

    #[test]
    fn a_histogram_renders_cumulative_buckets_a_sum_and_a_count() {
        let m = Metrics::default();
        let labels = [("route", "/api/orders")];
        m.observe("openorder_http_request_duration_seconds", &labels, 0.0015);
        m.observe("openorder_http_request_duration_seconds", &labels, 0.003);
        m.observe("openorder_http_request_duration_seconds", &labels, 30.0);
        let text = m.render();
        let line = |suffix: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with(&format!("openorder_http_request_duration_seconds{suffix}"))
                })
                .unwrap_or_else(|| panic!("no {suffix} line in:\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string()
        };
        assert!(text.contains("# TYPE openorder_http_request_duration_seconds histogram"));
        assert_eq!(line("_bucket{route=\"/api/orders\",le=\"0.001\"}"), "0");
        assert_eq!(line("_bucket{route=\"/api/orders\",le=\"0.002\"}"), "1");
        assert_eq!(line("_bucket{route=\"/api/orders\",le=\"0.005\"}"), "2");
        assert_eq!(line("_bucket{route=\"/api/orders\",le=\"10\"}"), "2");
        assert_eq!(line("_bucket{route=\"/api/orders\",le=\"+Inf\"}"), "3");
        assert_eq!(line("_count{route=\"/api/orders\"}"), "3");
        assert_eq!(line("_sum{route=\"/api/orders\"}"), "30.0045");
    }

    #[test]
    fn gauges_render_whole_values_as_before_and_fractions_to_the_millisecond() {
        let m = Metrics::default();
        m.gauge("openorder_storage_failing", &[], 1);
        m.gauge_f64("openorder_outbox_oldest_age_seconds", &[], 2.345);
        assert_eq!(
            m.render(),
            "# TYPE openorder_outbox_oldest_age_seconds gauge\nopenorder_outbox_oldest_age_seconds 2.345\n\
             # TYPE openorder_storage_failing gauge\nopenorder_storage_failing 1\n"
        );
    }

    #[test]
    fn a_described_series_has_its_help_line_before_its_type_line_once() {
        let m = Metrics::default();
        m.describe("openorder_ready", "1 when ready,\nelse 0.");
        m.gauge("openorder_ready", &[], 1);
        m.gauge_f64("openorder_consumer_lag_seconds", &[("partition", "0")], 0.0);
        m.gauge_f64("openorder_consumer_lag_seconds", &[("partition", "1")], 1.5);
        let text = m.render();
        assert!(
            text.ends_with(
                "# HELP openorder_ready 1 when ready, else 0.\n# TYPE openorder_ready gauge\nopenorder_ready 1\n"
            ),
            "{text}"
        );
        assert_eq!(
            text.matches("# TYPE openorder_consumer_lag_seconds")
                .count(),
            1
        );
        assert!(
            !text.contains("# HELP openorder_consumer_lag_seconds"),
            "not described"
        );
        assert!(text.contains("openorder_consumer_lag_seconds{partition=\"1\"} 1.5\n"));
    }

    #[test]
    fn a_forgotten_gauge_is_no_longer_served() {
        let m = Metrics::default();
        let (one, two) = ([("partition", "1")], [("partition", "2")]);
        m.gauge("openorder_consumer_lag_records", &one, 4);
        m.gauge("openorder_consumer_lag_records", &two, 5);
        m.forget_gauge("openorder_consumer_lag_records", &one);
        assert_eq!(
            m.render(),
            "# TYPE openorder_consumer_lag_records gauge\nopenorder_consumer_lag_records{partition=\"2\"} 5\n"
        );
    }
}
