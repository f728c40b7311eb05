//! `/metrics` as Prometheus reads it, from outside: `openorder up` takes a few orders (one
//! rejected for stock), then Prometheus' own `promtool check metrics`
//! lints each service's exposition (its format, help texts, types, names and units by the
//! Prometheus conventions) and finds nothing to say. Each serves its process's CPU and memory;
//! order-service times each decision from the order's acceptance.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support;
use crate::support::{UpPorts, UpProcess};

/// The decision of an order posted with `Prefer: wait` (its status, or the HTTP status when
/// it was refused).
async fn place(http: &reqwest::Client, order_url: &str, sku: &str, qty: i64) -> String {
    let response = http
        .post(format!("{order_url}/api/orders"))
        .header("Prefer", "wait=10")
        .json(&serde_json::json!({"userId": 42, "items": [{"sku": sku, "qty": qty}]}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body["status"]
        .as_str()
        .map_or_else(|| status.to_string(), str::to_string)
}

/// `base`'s `/metrics` once its lag, backlog and readiness gauges are served (their task
/// made its first pass), within 30 s.
async fn exposition(http: &reqwest::Client, base: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = support::metrics_text(http, base).await;
        if text.contains("\nopenorder_ready 1\n") {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{base}/metrics has no openorder_ready 1 after 30 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What `promtool check metrics` says of `text` (its exit status and its output).
async fn promtool_check(promtool: &str, text: String) -> (bool, String) {
    let promtool = promtool.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), said)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_nothing_to_say_of_any_services_metrics_after_a_few_orders() {
    let Some(promtool) = support::external("OPENORDER_TEST_PROMTOOL") else {
        return;
    };
    let data = support::temp_dir("metrics");
    let ports = UpPorts::free().expect("free ports");
    let up = UpProcess::start(&data, &ports).await;
    let http = reqwest::Client::new();
    assert_eq!(place(&http, &up.order_url, "ABC-001", 1).await, "CONFIRMED");
    assert_eq!(place(&http, &up.order_url, "OUT-001", 1).await, "REJECTED");
    let mut said = Vec::new();
    for base in [&up.order_url, &up.inventory_url, &up.notification_url] {
        let text = exposition(&http, base).await;
        for series in [
            "openorder_http_request_duration_seconds_count",
            "openorder_consumer_lag_seconds",
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(series)),
                "{base}/metrics serves no {series}:\n{text}"
            );
        }
        if *base == up.order_url {
            // Each decision is timed from the order's acceptance, by status.
            for status in ["CONFIRMED", "REJECTED"] {
                let count =
                    format!("openorder_order_decision_seconds_count{{status=\"{status}\"}} 1");
                assert!(text.contains(&count), "no {count} in:\n{text}");
            }
        }
        let (passed, output) = promtool_check(&promtool, text).await;
        if !passed || !output.trim().is_empty() {
            said.push(format!("{base}/metrics:\n{output}"));
        }
    }
    up.stop();
    assert!(
        said.is_empty(),
        "promtool check metrics:\n{}",
        said.join("\n")
    );
}
