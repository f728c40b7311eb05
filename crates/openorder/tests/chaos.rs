//! Short runs of the fault-injection harness (`openorder chaos`), so every change is
//! checked under crashes, broker loss and database loss: a few dozen orders per scenario
//! instead of hundreds. The book's "Faults and storage" page records the latest full run.
//! `kill-notification-held` waits out its notices' quiet hours and digest window (about
//! two minutes) on each backend.

use std::path::PathBuf;
use std::process::Command;

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

/// Runs the harness with `args` on `scenarios`; asserts it passed and that every scenario
/// row has zeros.
fn chaos(args: &[&str], scenarios: &[&str]) -> String {
    let work = std::env::temp_dir().join(format!(
        "openorder-chaos-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let output = Command::new(env!("CARGO_BIN_EXE_openorder"))
        .arg("chaos")
        .args(["--orders", "60", "--fault-seconds", "2"])
        .arg("--work-dir")
        .arg(&work)
        .args(args)
        .args(scenarios.iter().flat_map(|s| ["--scenario", *s]))
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("openorder chaos runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chaos failed (logs in {}):\n{stdout}\n{stderr}",
        work.display()
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    stdout
}

#[test]
fn a_short_chaos_run_on_the_embedded_defaults_loses_and_duplicates_nothing() {
    let report = chaos(
        &[],
        &[
            "kill-inventory",
            "kill-order",
            "kill-notification",
            "kill-notification-held",
            "broker-restart",
            "one-sku-contention",
            "disk-full",
        ],
    );
    assert!(report.contains("7 passed"), "{report}");
}

/// A private Apache Kafka and PostgreSQL (own ports and data), so stopping them does not
/// disturb the other tests; stopped and deleted at the end.
struct PrivateServers;

impl PrivateServers {
    const KAFKA_PORT: &str = "29192";
    const PG_PORT: &str = "25532";

    fn run(script: &str, action: &str) -> bool {
        Command::new(scripts().join(script))
            .arg(action)
            .env("KAFKA_PORT", Self::KAFKA_PORT)
            .env("PG_PORT", Self::PG_PORT)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn command(script: &str, action: &str) -> String {
        format!(
            "KAFKA_PORT={} PG_PORT={} {} {action}",
            Self::KAFKA_PORT,
            Self::PG_PORT,
            scripts().join(script).display()
        )
    }

    fn start() -> Self {
        assert!(Self::run("kafka.sh", "start"), "private Kafka starts");
        assert!(
            Self::run("postgres.sh", "start"),
            "private PostgreSQL starts"
        );
        Self
    }
}

impl Drop for PrivateServers {
    fn drop(&mut self) {
        Self::run("kafka.sh", "reset");
        Self::run("postgres.sh", "reset");
    }
}

#[test]
fn a_short_chaos_run_on_kafka_and_postgres_loses_and_duplicates_nothing() {
    if std::env::var("OPENORDER_TEST_SKIP_EXTERNAL").as_deref() == Ok("1") {
        eprintln!("skipped: OPENORDER_TEST_SKIP_EXTERNAL=1");
        return;
    }
    let _servers = PrivateServers::start();
    let bootstrap = format!("127.0.0.1:{}", PrivateServers::KAFKA_PORT);
    let postgres = format!(
        "postgres://openorder:openorder@127.0.0.1:{}/postgres",
        PrivateServers::PG_PORT
    );
    let report = chaos(
        &[
            "--broker",
            "external",
            "--bootstrap-servers",
            &bootstrap,
            "--postgres-url",
            &postgres,
            "--broker-stop-command",
            &PrivateServers::command("kafka.sh", "stop"),
            "--broker-start-command",
            &PrivateServers::command("kafka.sh", "start"),
            "--database-stop-command",
            &PrivateServers::command("postgres.sh", "stop"),
            "--database-start-command",
            &PrivateServers::command("postgres.sh", "start"),
        ],
        &[
            "kill-inventory",
            "kill-order",
            "kill-notification",
            "kill-notification-held",
            "broker-restart",
            "database-restart",
            "two-inventory-instances",
            "one-sku-contention",
        ],
    );
    assert!(report.contains("8 passed"), "{report}");
}
