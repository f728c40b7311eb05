//! A service starting while what it needs is away: it answers at once (live; not ready,
//! naming what it waits for; orders refused 503 with `Retry-After`), logs why, becomes
//! ready once its broker appears and stops at once on SIGTERM; bound beyond loopback without
//! authentication it is refused before anything is contacted; and `up` whose broker's port
//! is taken exits with the broker's own reason.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use super::{standalone, stops_at_once_or_in_its_bound};
use crate::support;
use crate::support::{free_port, temp_dir, UpPorts};
use serde_json::Value;

/// What a starting service must do while `waits_for` is away: live at once, ready 503
/// naming it, a log line saying so within 5 s.
async fn answers_while_waiting(base: &str, log: &Path, waits_for: &str) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let live = loop {
        if let Ok(r) = http.get(format!("{base}/health/live")).send().await {
            break r.status().as_u16();
        }
        assert!(started.elapsed() < Duration::from_secs(3), "no answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(live, 200);
    // Ready is 503 throughout; it names what start-up waits for once it got that far
    // (connecting a SQLite file comes first, and is quick).
    loop {
        let ready = http
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status().as_u16(), 503);
        let body: Value = ready.json().await.unwrap();
        let waiting = body["checks"]["startup"]["waiting"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if waiting.contains(waits_for) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not waiting for {waits_for} after 5 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let order = http
        .post(format!("{base}/api/orders"))
        .json(&serde_json::json!({"userId": 1, "items": [{"sku": "ABC-001", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status().as_u16(), 503);
    assert!(order.headers().contains_key("retry-after"));
    let deadline = started + Duration::from_secs(5);
    loop {
        let said = std::fs::read_to_string(log).unwrap_or_default();
        if said.contains(&format!("waiting for {waits_for}")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line about {waits_for} within 5 s:\n{said}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM: exit 0 within a second.
fn stops_at_once(child: &mut Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("still running 5 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?} to stop",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_broker_is_away_at_start_answers_at_once_says_why_and_is_ready_once_it_appears(
) {
    let dir = temp_dir("broker-away");
    let broker = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.join("order-service.log");
    let database = format!("sqlite://{}/order.db", dir.display());
    let mut service = standalone(
        "order-service",
        &format!("127.0.0.1:{port}"),
        &broker,
        &database,
        &log,
    );
    answers_while_waiting(&base, &log, "the Kafka brokers").await;
    // The broker appears: the service becomes ready by itself.
    let mut broker = support::TestBroker::start_tansu_at(&broker).await;
    support::wait_ready(&reqwest::Client::new(), &base).await;
    stops_at_once_or_in_its_bound(&mut service.0);
    broker.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_broker_is_away_at_start_stops_at_once_on_sigterm() {
    let dir = temp_dir("broker-away-stop");
    let port = free_port();
    let log = dir.join("order-service.log");
    let mut service = standalone(
        "order-service",
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", free_port()),
        &format!("sqlite://{}/order.db", dir.display()),
        &log,
    );
    answers_while_waiting(
        &format!("http://127.0.0.1:{port}"),
        &log,
        "the Kafka brokers",
    )
    .await;
    stops_at_once(&mut service.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_postgres_is_away_at_start_answers_at_once_says_why_and_stops_at_once() {
    let dir = temp_dir("postgres-away");
    let port = free_port();
    let log = dir.join("inventory-service.log");
    let mut service = standalone(
        "inventory-service",
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", free_port()),
        &format!(
            "postgres://openorder:openorder@127.0.0.1:{}/postgres",
            free_port()
        ),
        &log,
    );
    answers_while_waiting(&format!("http://127.0.0.1:{port}"), &log, "the database").await;
    stops_at_once(&mut service.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_bound_beyond_loopback_without_authentication_is_refused_before_anything_is_contacted(
) {
    let dir = temp_dir("open-bind");
    let log = dir.join("order-service.log");
    let mut service = standalone(
        "order-service",
        &format!("0.0.0.0:{}", free_port()),
        // Neither of these answers: the refusal must not wait for them.
        &format!("127.0.0.1:{}", free_port()),
        &format!(
            "postgres://openorder:openorder@127.0.0.1:{}/postgres",
            free_port()
        ),
        &log,
    );
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = service.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running: it waited for a dependency before refusing"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("beyond loopback"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_its_broker_port_taken_exits_non_zero_with_the_brokers_own_reason() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut ports = UpPorts::free().expect("free ports");
    ports.broker = taken.local_addr().unwrap().port();
    let data = temp_dir("port-taken");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::from(support::up_command(&data, &ports)).output(),
    )
    .await
    .expect("up gives up within a minute")
    .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("cannot listen on") && said.contains(&ports.broker.to_string()),
        "up says why the broker could not start: {said}"
    );
    drop(taken);
}
