//! A broker that stalls (SIGSTOP) under a running service: logged once when it stops
//! answering and when it answers again, `/admin/status` answering within its bound meanwhile
//! and saying what it could not read.

use std::process::Command;
use std::time::Duration;

use super::{standalone, stops_at_once_or_in_its_bound};
use crate::support;
use crate::support::{free_port, temp_dir};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stalls_is_logged_when_it_stops_and_when_it_answers_again_and_status_answers_meanwhile(
) {
    let mut broker = support::TestBroker::start_tansu_with_env(&[]).await;
    let dir = temp_dir("broker-stall");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.join("order-service.log");
    let mut service = standalone(
        "order-service",
        &format!("127.0.0.1:{port}"),
        &broker.bootstrap,
        &format!("sqlite://{}/order.db", dir.display()),
        &log,
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    support::wait_ready(&http, &base).await;
    let pid = broker.pid().expect("the embedded broker's pid").to_string();
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([format!("-{name}"), pid.clone()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("STOP");
    let logged = |text: &str, within: Duration| {
        let (log, text) = (log.clone(), text.to_string());
        async move {
            let deadline = tokio::time::Instant::now() + within;
            loop {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                if said.contains(&text) {
                    return said.matches(&text).count();
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no log line '{text}' within {within:?}:\n{said}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    logged("the Kafka brokers do not answer", Duration::from_secs(15)).await;
    // Status answers within its bound, each time, and says what it could not read (asked
    // again for up to 10 s: a read begun before the stall may still have been answered).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let asked = std::time::Instant::now();
        let status = http
            .get(format!("{base}/admin/status"))
            .send()
            .await
            .unwrap();
        let took = asked.elapsed();
        assert_eq!(status.status().as_u16(), 200);
        assert!(took < Duration::from_secs(4), "/admin/status took {took:?}");
        let body: Value = status.json().await.unwrap();
        let consumers = body["consumers"].as_array().cloned().unwrap_or_default();
        if consumers.iter().any(|c| c["error"].is_string()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a consumer's lag is reported as not read: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    signal("CONT");
    logged("the Kafka brokers answer again", Duration::from_secs(15)).await;
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        said.matches("the Kafka brokers do not answer").count(),
        1,
        "the stall is logged once:\n{said}"
    );
    stops_at_once_or_in_its_bound(&mut service.0);
    broker.kill();
}
