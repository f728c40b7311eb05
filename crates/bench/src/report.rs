//! Turning samples into figures: HDR histograms of POST and end-to-end latency, rates,
//! a per-second series, and the SVG chart of that series.

use std::collections::BTreeMap;
use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

use super::driver::{Decisions, Sample};

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// With clients that learn their orders' decisions (`--client prefer-wait` or `poll`): when
/// they knew, from sending, and the requests that took per order.
pub fn client_line(
    rate: f64,
    samples: &[Sample],
    client: super::driver::ClientMode,
) -> Option<String> {
    if client == super::driver::ClientMode::Fire {
        return None;
    }
    let mut knew = Histogram::<u64>::new(3).expect("3 significant figures is valid");
    let (mut accepted, mut requests) = (0usize, 0u64);
    for sample in samples.iter().filter(|s| s.order_id.is_some()) {
        accepted += 1;
        requests += u64::from(sample.requests);
        if let Some(learned) = sample.learned {
            let _ = knew.record(micros(sample.sent, learned));
        }
    }
    let p = percentiles(&knew);
    Some(format!(
        "{rate:>9.0} client {client:?}: knew the decision p50 / p99 {:.1} / {:.1} ms after sending ({} of {accepted} within 10 s), {:.2} requests per order",
        p.p50_ms,
        p.p99_ms,
        knew.len(),
        requests as f64 / accepted.max(1) as f64
    ))
}

/// Microseconds from `from` to `to`, at least 1 (what the histograms record).
fn micros(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_micros().max(1) as u64
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// One second of the run (by scheduled send time).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub second: u64,
    pub sent: u64,
    pub completed: u64,
    pub post_p99_ms: f64,
    pub e2e_p50_ms: f64,
    pub e2e_p99_ms: f64,
}

/// The figures of one open-loop run at one rate.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub offered_rate: f64,
    pub sent: usize,
    pub accepted: usize,
    /// Requests not accepted: refused, failed or timed out.
    pub errors: usize,
    /// Of the errors, those the service refused as overloaded (503).
    pub refused: usize,
    pub completed: usize,
    /// Accepted orders whose decision never arrived.
    pub lost: usize,
    pub accepted_per_second: f64,
    pub completed_per_second: f64,
    pub post: Percentiles,
    /// How late the client sent requests after their scheduled time (its timer and
    /// scheduling, on the same cores as the system): part of the POST latency that is the
    /// load generator's, not the service's.
    pub send_lag: Percentiles,
    pub end_to_end: Percentiles,
    /// The end-to-end time by hop, when the bench ran with `--hops`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hops: Option<Hops>,
    pub series: Vec<Point>,
}

/// Where the end-to-end time goes, hop by hop (see [`super::driver`]); the producer
/// timestamps are 1 ms granular.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hops {
    /// Scheduled POST → order-service's relay produced `order.created` (the POST, its
    /// commit, the relay's wake-up and read).
    pub to_created_produced: Percentiles,
    /// → inventory-service's relay produced the decision (the broker's write and fetch,
    /// inventory's transaction, its relay).
    pub to_decision_produced: Percentiles,
    /// → the decision reached a consumer (the broker's write and fetch).
    pub to_decision_seen: Percentiles,
}

pub fn summarize(rate: f64, samples: &[Sample], decisions: &Decisions) -> RunResult {
    let start = samples
        .iter()
        .map(|s| s.scheduled)
        .min()
        .unwrap_or_else(Instant::now);
    let mut post = histogram();
    let mut send_lag = histogram();
    let mut e2e = histogram();
    let mut hops = [histogram(), histogram(), histogram()];
    let mut per_second: BTreeMap<u64, (u64, Histogram<u64>, Histogram<u64>)> = BTreeMap::new();
    let mut completed_at: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut accepted, mut completed, mut last_answer, mut last_decision) = (0, 0, start, start);
    for s in samples {
        let second = (s.scheduled - start).as_secs();
        let entry = per_second
            .entry(second)
            .or_insert_with(|| (0, histogram(), histogram()));
        entry.0 += 1;
        let post_us = micros(s.scheduled, s.answered);
        let _ = post.record(post_us);
        let _ = entry.1.record(post_us);
        let _ = send_lag.record(micros(s.scheduled, s.sent));
        last_answer = last_answer.max(s.answered);
        let Some(id) = s.order_id else { continue };
        accepted += 1;
        let trace = decisions.trace(id);
        if let (Some(created), Some(decision), Some(seen)) = (
            trace.created_produced,
            trace.decision_produced,
            trace.decided,
        ) {
            let steps = [s.scheduled, created, decision, seen];
            for (hop, pair) in hops.iter_mut().zip(steps.windows(2)) {
                let _ = hop.record(micros(pair[0], pair[1]));
            }
        }
        if let Some(at) = trace.decided {
            completed += 1;
            let us = micros(s.scheduled, at);
            let _ = e2e.record(us);
            let _ = entry.2.record(us);
            last_decision = last_decision.max(at);
            *completed_at.entry((at - start).as_secs()).or_default() += 1;
        }
    }
    let series = per_second
        .iter()
        .map(|(second, (sent, p, e))| Point {
            second: *second,
            sent: *sent,
            completed: completed_at.get(second).copied().unwrap_or(0),
            post_p99_ms: percentiles(p).p99_ms,
            e2e_p50_ms: percentiles(e).p50_ms,
            e2e_p99_ms: percentiles(e).p99_ms,
        })
        .collect();
    let per_second = |n: usize, until: Instant| {
        let secs = (until - start).as_secs_f64();
        if secs > 0.0 {
            n as f64 / secs
        } else {
            0.0
        }
    };
    RunResult {
        offered_rate: rate,
        sent: samples.len(),
        accepted,
        errors: samples.len() - accepted,
        refused: samples.iter().filter(|s| s.refused).count(),
        completed,
        lost: accepted - completed,
        accepted_per_second: per_second(accepted, last_answer),
        completed_per_second: per_second(completed, last_decision),
        post: percentiles(&post),
        send_lag: percentiles(&send_lag),
        end_to_end: percentiles(&e2e),
        hops: (!hops[0].is_empty()).then(|| Hops {
            to_created_produced: percentiles(&hops[0]),
            to_decision_produced: percentiles(&hops[1]),
            to_decision_seen: percentiles(&hops[2]),
        }),
        series,
    }
}

/// Throughput (top) and latency percentiles (bottom) per second, as SVG.
pub fn chart(run: &RunResult, title: &str) -> String {
    let series = |f: fn(&Point) -> f64| run.series.iter().map(f).collect::<Vec<f64>>();
    panels(
        title,
        &[
            (
                "orders per second (by second of the run)",
                vec![
                    ("sent/s", "#1f77b4", series(|p| p.sent as f64)),
                    ("completed/s", "#2ca02c", series(|p| p.completed as f64)),
                ],
            ),
            (
                "latency, ms (from scheduled send)",
                vec![
                    ("POST p99", "#ff7f0e", series(|p| p.post_p99_ms)),
                    ("end-to-end p50", "#9467bd", series(|p| p.e2e_p50_ms)),
                    ("end-to-end p99", "#d62728", series(|p| p.e2e_p99_ms)),
                ],
            ),
        ],
    )
}

/// A line of a chart: its name, colour and values (one per step of the x axis).
pub type Line<'a> = (&'a str, &'a str, Vec<f64>);

/// An SVG chart of panels stacked one above the other, each its label and lines, on one
/// x axis; each panel scaled from 0 to its largest value.
pub fn panels(title: &str, panels: &[(&str, Vec<Line<'_>>)]) -> String {
    let count = panels.len().max(1) as f64;
    let (w, pad) = (900.0, 60.0);
    let panel = 220.0;
    let h = pad + count * (panel + pad);
    let n = panels
        .iter()
        .flat_map(|(_, lines)| lines.iter().map(|(_, _, v)| v.len()))
        .max()
        .unwrap_or(0)
        .max(2) as f64;
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / (n - 1.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{pad}" y="24" font-size="15">{title}</text>"#
    );
    for (index, (label, lines)) in panels.iter().enumerate() {
        let top = pad + index as f64 * (panel + pad);
        let max = lines
            .iter()
            .flat_map(|(_, _, v)| v.iter().copied())
            .fold(1.0_f64, f64::max);
        let y = |v: f64| top + panel - panel * v / max;
        let _ = writeln!(
            svg,
            r##"<rect x="{pad}" y="{top}" width="{}" height="{panel}" fill="none" stroke="#999"/><text x="6" y="{}">{max:.0}</text><text x="6" y="{}">0</text><text x="{pad}" y="{}">{label}</text>"##,
            w - 2.0 * pad,
            top + 10.0,
            top + panel,
            top - 6.0
        );
        for (k, (name, color, values)) in lines.iter().enumerate() {
            let points: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/><text x="{}" y="{}" fill="{color}">{name}</text>"#,
                points.join(" "),
                w - pad - 220.0,
                top + 16.0 + 14.0 * k as f64
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}
