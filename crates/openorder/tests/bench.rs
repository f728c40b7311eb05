//! A short smoke run of `openorder bench` on the embedded defaults: the report is
//! well-formed and every accepted order completed; clients that wait with `Prefer: wait`
//! each learn their decision; and a minute of `--soak` with retention
//! windows of seconds, in which the services prune and the broker's log lets records go. It
//! asserts no speed: the machines are shared and noisy, and speed lives in BENCHMARKS.md.

use std::process::Command;

/// Runs `openorder bench` with `args` (and 500 raw records for the broker's limit), which
/// must succeed; gives its output directory, its standard output and its report.
fn bench(args: &[&str]) -> (std::path::PathBuf, String, serde_json::Value) {
    let out = std::env::temp_dir().join(format!(
        "openorder-bench-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let output = Command::new(env!("CARGO_BIN_EXE_openorder"))
        .arg("bench")
        .args(args)
        .args(["--raw-records", "500"])
        .arg("--out")
        .arg(&out)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("openorder bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    (out, stdout, report)
}

#[test]
fn a_short_bench_run_writes_a_well_formed_report_and_loses_no_order() {
    let (out, stdout, report) = bench(&["--rate", "50", "--duration", "2"]);
    assert!(stdout.contains("broker-limited"), "{stdout}");
    let run = &report["runs"][0];
    assert_eq!(run["sent"], 100);
    assert_eq!(run["errors"], 0);
    assert_eq!(run["lost"], 0, "every accepted order completed");
    assert_eq!(run["completed"], 100);
    for field in ["post", "endToEnd"] {
        let p = &run[field];
        assert!(p["p50Ms"].as_f64().unwrap() > 0.0, "{field}: {p}");
        assert!(p["p99Ms"].as_f64().unwrap() >= p["p50Ms"].as_f64().unwrap());
    }
    // The client's own lateness is part of every POST latency, so it cannot exceed it.
    let lag = &run["sendLag"];
    assert!(lag["p50Ms"].as_f64().unwrap() > 0.0, "{lag}");
    assert!(lag["p50Ms"].as_f64().unwrap() <= run["post"]["p50Ms"].as_f64().unwrap());
    assert!(lag["maxMs"].as_f64().unwrap() <= run["post"]["maxMs"].as_f64().unwrap());
    assert!(!run["series"].as_array().unwrap().is_empty());
    assert!(report["brokerLimit"]["ordersPerSecond"].as_f64().unwrap() > 0.0);
    assert!(report["httpLimit"]["requestsPerSecond"].as_f64().unwrap() > 0.0);
    let processes = report["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 2, "up and its broker: {processes:?}");
    assert!(processes
        .iter()
        .all(|p| p["peakRssMib"].as_f64().unwrap() > 1.0));

    let chart = std::fs::read_to_string(out.join("chart.svg")).unwrap();
    assert!(
        chart.starts_with("<svg")
            && chart.contains("polyline")
            && chart.trim_end().ends_with("</svg>")
    );
}

#[test]
fn clients_that_post_with_prefer_wait_each_learn_their_decision_in_their_one_request() {
    let (_, stdout, report) =
        bench(&["--rate", "50", "--duration", "2", "--client", "prefer-wait"]);
    assert_eq!(report["runs"][0]["lost"], 0, "{stdout}");
    assert!(
        stdout.contains("client PreferWait: knew the decision")
            && stdout.contains("(100 of 100 within 10 s), 1.00 requests per order"),
        "{stdout}"
    );
}

#[test]
fn a_minute_of_soak_with_windows_of_seconds_prunes_the_databases_and_the_broker_log() {
    let (out, _, report) = bench(&[
        "--soak",
        "--rate",
        "100",
        "--duration",
        "60",
        "--sample-every",
        "10",
        "--soak-window",
        "10s",
    ]);
    let soak = &report["soak"];
    let samples = soak["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 6, "{soak}");
    for sample in samples {
        assert_eq!(sample["lost"], 0, "{sample}");
        assert!(sample["dataBytes"].as_u64().unwrap() > 0, "{sample}");
        let files = sample["files"].as_array().unwrap();
        assert!(
            files
                .iter()
                .any(|f| f[0].as_str().unwrap().ends_with("broker.db")),
            "{files:?}"
        );
        assert!(sample["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["rssMib"].as_f64().unwrap() > 1.0));
    }
    // The services pruned rows, and the broker let records go: its low watermarks moved.
    assert!(soak["rowsPruned"].as_u64().unwrap() > 0, "{soak}");
    let moved = soak["watermarks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w[0].as_str().unwrap().ends_with("order.created") && w[2].as_i64().unwrap() > 0)
        .count();
    assert!(
        moved > 0,
        "no partition of order.created lost a record: {soak}"
    );
    let chart = std::fs::read_to_string(out.join("soak.svg")).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("polyline"));
}
