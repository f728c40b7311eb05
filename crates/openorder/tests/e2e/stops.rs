//! Every way of stopping stops within `--shutdown-timeout` (10 s by default), with exit
//! status 0, and loses nothing: real processes, real signals, as a terminal, systemd,
//! Docker or Kubernetes send them; the embedded broker dying first; a standalone
//! service whose Apache Kafka or PostgreSQL is gone.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support;
use crate::support::{UpPorts, UpProcess};
use serde_json::Value;

/// The default `--shutdown-timeout`: a stop that takes longer has failed (the process
/// exits 1 at that point).
const BOUND: Duration = Duration::from_secs(10);

async fn post_orders(http: &reqwest::Client, base: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for user in 0..n {
        let body =
            serde_json::json!({"userId": 500 + user, "items": [{"sku": "ABC-001", "qty": 1}]});
        let response = http
            .post(format!("{base}/api/orders"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let accepted: Value = response.json().await.unwrap();
        ids.push(accepted["orderId"].as_i64().unwrap());
    }
    ids
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Waits until every order in `ids` is CONFIRMED.
async fn all_confirmed(http: &reqwest::Client, base: &str, ids: &[i64]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for id in ids {
        loop {
            let order = get(http, format!("{base}/api/orders/{id}")).await;
            if order["status"] == "CONFIRMED" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {id} is {} after a restart",
                order["status"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Starts `up`, places orders, stops it by `how`, checks the stop's time and status,
/// starts it again and checks that every order was decided once (the stock of ABC-001
/// reserved exactly once per order).
async fn a_stop_by(how: impl Fn(&mut UpProcess)) {
    let dir = support::temp_dir("stops");
    let ports = UpPorts::free().expect("free ports");
    let http = reqwest::Client::new();
    let mut up = UpProcess::start(&dir, &ports).await;
    let stock_before = get(&http, format!("{}/api/inventory/ABC-001", up.inventory_url)).await;
    let ids = post_orders(&http, &up.order_url, 5).await;
    how(&mut up);
    let (status, took) = up.wait_exit(BOUND);
    assert!(status.success(), "exit status {status} after {took:?}");

    let up = UpProcess::start(&dir, &ports).await;
    all_confirmed(&http, &up.order_url, &ids).await;
    let stock = get(&http, format!("{}/api/inventory/ABC-001", up.inventory_url)).await;
    assert_eq!(
        stock["reserved"].as_i64().unwrap() - stock_before["reserved"].as_i64().unwrap(),
        ids.len() as i64,
        "each order reserved once: {stock}"
    );
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_process_group_stops_up_in_time() {
    a_stop_by(|up| up.signal("TERM", true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_to_the_process_group_stops_up_in_time() {
    a_stop_by(|up| up.signal("INT", true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_stops_up_in_time() {
    a_stop_by(|up| up.signal("HUP", false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_up_alone_stops_it_and_its_broker_in_time() {
    a_stop_by(|up| {
        let broker = up.broker_pid().expect("up has a broker child");
        up.signal("TERM", false);
        let _ = up.wait_exit(BOUND);
        assert!(
            !PathBuf::from(format!("/proc/{broker}")).exists(),
            "the broker was stopped and reaped"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_restarts_a_broker_that_died_and_stops_in_time_when_it_dies_during_the_stop() {
    let dir = support::temp_dir("stops-broker");
    let ports = UpPorts::free().expect("free ports");
    let http = reqwest::Client::new();
    let mut up = UpProcess::start(&dir, &ports).await;
    let first = up.broker_pid().expect("up has a broker child");
    Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    // `up` starts it again (after half a second) and orders go through it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if up.broker_pid().is_some_and(|pid| pid != first) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker was not started again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !PathBuf::from(format!("/proc/{first}")).exists(),
        "the dead broker was reaped, not left a zombie"
    );
    let ids = post_orders(&http, &up.order_url, 3).await;
    all_confirmed(&http, &up.order_url, &ids).await;
    let log = std::fs::read_to_string(dir.with_extension("log")).unwrap();
    assert!(
        log.contains("the embedded broker exited; starting it again"),
        "logged"
    );

    // The broker dies again, and the stop comes while it is down.
    let second = up.broker_pid().unwrap();
    Command::new("kill")
        .args(["-KILL", &second.to_string()])
        .status()
        .unwrap();
    up.signal("TERM", true);
    let (status, took) = up.wait_exit(BOUND);
    assert!(status.success(), "exit status {status} after {took:?}");
}

/// A private Apache Kafka and PostgreSQL (own ports and data) that this test stops.
struct PrivateServers;

impl PrivateServers {
    const KAFKA_PORT: &str = "29292";
    const PG_PORT: &str = "25632";

    fn run(script: &str, action: &str) -> bool {
        Command::new(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../scripts")
                .join(script),
        )
        .arg(action)
        .env("KAFKA_PORT", Self::KAFKA_PORT)
        .env("PG_PORT", Self::PG_PORT)
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    }
}

impl Drop for PrivateServers {
    fn drop(&mut self) {
        Self::run("kafka.sh", "reset");
        Self::run("postgres.sh", "reset");
    }
}

fn term_and_wait(child: &mut Child) -> (std::process::ExitStatus, Duration) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, started.elapsed());
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            panic!("the service still ran {BOUND:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_kafka_or_postgres_is_gone_stops_in_time() {
    if std::env::var("OPENORDER_TEST_SKIP_EXTERNAL").as_deref() == Ok("1") {
        eprintln!("skipped: OPENORDER_TEST_SKIP_EXTERNAL=1");
        return;
    }
    assert!(
        PrivateServers::run("kafka.sh", "start"),
        "private Kafka starts"
    );
    let servers = PrivateServers;
    assert!(
        PrivateServers::run("postgres.sh", "start"),
        "private PostgreSQL starts"
    );
    let bootstrap = format!("127.0.0.1:{}", PrivateServers::KAFKA_PORT);
    let database = format!(
        "postgres://openorder:openorder@127.0.0.1:{}/postgres",
        PrivateServers::PG_PORT
    );
    let http = reqwest::Client::new();
    let log = support::temp_dir("stops-standalone").join("order-service.log");
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");

    // Kafka goes away under a running service (its outbox then holds an event it cannot send).
    let mut service = support::standalone("order-service", &listen, &bootstrap, &database, &log);
    support::wait_ready(&http, &base).await;
    let ids = post_orders(&http, &base, 2).await;
    assert!(PrivateServers::run("kafka.sh", "stop"));
    post_orders(&http, &base, 1).await;
    let (status, took) = term_and_wait(&mut service);
    assert!(
        status.success(),
        "with Kafka gone: exit {status} after {took:?}"
    );

    // PostgreSQL goes away under a running service.
    assert!(PrivateServers::run("kafka.sh", "start"));
    let mut service = support::standalone("order-service", &listen, &bootstrap, &database, &log);
    support::wait_ready(&http, &base).await;
    let order = get(&http, format!("{base}/api/orders/{}", ids[0])).await;
    assert_eq!(order["orderId"], ids[0], "the orders are kept");
    assert!(PrivateServers::run("postgres.sh", "stop"));
    let (status, took) = term_and_wait(&mut service);
    assert!(
        status.success(),
        "with PostgreSQL gone: exit {status} after {took:?}"
    );
    drop(servers);
}
