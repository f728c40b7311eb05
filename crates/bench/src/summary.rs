//! What a bench run leaves: `report.json`, `chart.svg` (and `soak.svg`), and a summary
//! table on standard output.

use std::path::Path;

use crate::measure::Report;
use crate::{report, soak};

/// Writes `report.json` and the charts into `out` (created if missing); `rate` is the soak's
/// offered rate, for its chart's title.
pub(crate) fn write(out: &Path, report: &Report, rate: f64) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    if let Some(main) = report.runs.last() {
        let title = format!(
            "openorder bench, {}: {:.0} orders/s offered",
            report.backend, main.offered_rate
        );
        std::fs::write(out.join("chart.svg"), report::chart(main, &title))?;
    }
    if let Some(soaked) = &report.soak {
        let title = format!(
            "openorder bench --soak, {}: {:.0} orders/s, retention windows {} s",
            report.backend, rate, soaked.window_seconds
        );
        std::fs::write(out.join("soak.svg"), soak::chart(soaked, &title))?;
        println!(
            "soak: rows pruned {}, bytes on disk per order retained {}",
            soaked.rows_pruned,
            soaked
                .bytes_per_order_retained
                .map_or_else(|| "-".into(), |b| format!("{b:.0}"))
        );
        for (topic, partition, low, high) in &soaked.watermarks {
            println!("soak: {topic}[{partition}] low {low} high {high}");
        }
    }
    Ok(())
}

/// The summary table: each run, its hops and send lag, the processes, the limits.
pub(crate) fn print_summary(r: &Report) {
    println!("\n{} on {}", r.backend, r.machine);
    println!(
        "{:>9} {:>7} {:>7} {:>7} {:>5} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9}",
        "OFFERED/s",
        "SENT",
        "ERRORS",
        "REFUSED",
        "LOST",
        "ACCEPTED/s",
        "COMPLETED/s",
        "POST p50",
        "POST p99",
        "E2E p50",
        "E2E p99"
    );
    for run in &r.runs {
        println!(
            "{:>9.0} {:>7} {:>7} {:>7} {:>5} {:>10.0} {:>11.0} {:>7.2}ms {:>7.2}ms {:>7.1}ms {:>7.1}ms",
            run.offered_rate,
            run.sent,
            run.errors,
            run.refused,
            run.lost,
            run.accepted_per_second,
            run.completed_per_second,
            run.post.p50_ms,
            run.post.p99_ms,
            run.end_to_end.p50_ms,
            run.end_to_end.p99_ms
        );
    }
    for (run, hops) in r
        .runs
        .iter()
        .filter_map(|run| Some((run, run.hops.as_ref()?)))
    {
        println!(
            "{:>9.0} by hop, p50 / p99: POST → order.created produced {:.1} / {:.1} ms; → decision produced {:.1} / {:.1} ms; → decision seen {:.1} / {:.1} ms",
            run.offered_rate,
            hops.to_created_produced.p50_ms,
            hops.to_created_produced.p99_ms,
            hops.to_decision_produced.p50_ms,
            hops.to_decision_produced.p99_ms,
            hops.to_decision_seen.p50_ms,
            hops.to_decision_seen.p99_ms,
        );
    }
    for run in &r.runs {
        println!(
            "{:>9.0} client send lag (scheduled → sent, included in POST): p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            run.offered_rate, run.send_lag.p50_ms, run.send_lag.p99_ms, run.send_lag.max_ms
        );
    }
    if let Some(rate) = r.sustained_rate {
        println!("highest rate sustained: {rate:.0} orders/s");
    }
    for p in &r.processes {
        println!(
            "process {:<32} peak RSS {:>7.1} MiB, CPU {:>6.1} s ({:>5.1} % of a core, {:.2} s per 1,000 orders)",
            p.name, p.peak_rss_mib, p.cpu_seconds, p.cpu_percent, p.cpu_seconds_per_1000_orders
        );
    }
    println!(
        "broker raw: {:.0} records/s produced, {:.0} consumed ({} B records) → broker-limited {:.0} orders/s",
        r.broker_limit.produced_per_second,
        r.broker_limit.consumed_per_second,
        r.broker_limit.record_bytes,
        r.broker_limit.orders_per_second
    );
    println!(
        "HTTP no-op ceiling: {:.0} requests/s",
        r.http_limit.requests_per_second
    );
    println!(
        "ratios: completed ÷ broker-limited = {:.3}; accepted ÷ HTTP ceiling = {:.3}",
        r.completed_vs_broker, r.accepted_vs_http
    );
}
