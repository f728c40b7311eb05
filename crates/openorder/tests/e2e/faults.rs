//! The faults real machines have, beyond crashes: a disk that fills up under the services'
//! databases and the embedded broker while orders arrive, and a database or broker that is
//! away when a service starts. What must hold: a 202 only for an order that was committed,
//! no order id answered twice, everything accepted decided once space returns (without a
//! restart); a starting service answers at once, says what it waits for, and stops at once.
//!
//! A module per fault: [`disk`], [`startup`] (a dependency away at start), [`postgres`]
//! (connections killed, the database read-only) and [`stall`] (a broker that stops
//! answering). Their helpers are here.

mod disk;
mod postgres;
mod stall;
mod startup;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use crate::support;
use serde_json::Value;
use tokio::task::JoinSet;

async fn post(http: &reqwest::Client, base: &str) -> (u16, Value) {
    let response = http
        .post(format!("{base}/api/orders"))
        .json(&serde_json::json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Waits until order `id` exists and has left PENDING (at most `bound`).
async fn decided(http: &reqwest::Client, base: &str, id: i64, bound: Duration) -> String {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let response = http
            .get(format!("{base}/api/orders/{id}"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() && body["status"] != "PENDING" {
            return body["status"].as_str().unwrap_or_default().to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} answered 202 is {status} {body} after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Four clients posting orders to `base` for `seconds`, one after the other each (the load
/// while a fault is on); each gives back every answer it got.
fn clients_posting(
    http: &reqwest::Client,
    base: &str,
    seconds: Duration,
) -> JoinSet<Vec<(u16, Value)>> {
    let mut clients = JoinSet::new();
    for _ in 0..4 {
        let (http, base) = (http.clone(), base.to_string());
        clients.spawn(async move {
            let mut answers = Vec::new();
            let until = tokio::time::Instant::now() + seconds;
            while tokio::time::Instant::now() < until {
                answers.push(post(&http, &base).await);
            }
            answers
        });
    }
    clients
}

/// Sorts the `answers` to posted orders: the ids of those answered 202 into `accepted`, the
/// kind of each refusal (503, naming the storage fault or saying busy) into `refused`. Any
/// other answer fails.
fn tally(answers: Vec<(u16, Value)>, accepted: &mut Vec<i64>, refused: &mut Vec<String>) {
    for (status, body) in answers {
        match status {
            202 => accepted.push(body["orderId"].as_i64().unwrap()),
            503 => {
                let kind = body["type"].as_str().unwrap_or_default().to_string();
                assert!(
                    kind.starts_with("/problems/storage-") || kind == "/problems/busy",
                    "a refusal names the storage fault: {body}"
                );
                refused.push(kind);
            }
            other => panic!("answered {other} under the fault: {body}"),
        }
    }
}

/// A process killed when the test ends, passed or failed.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// One service alone ([`support::standalone`]), killed when the test ends.
fn standalone(
    service: &str,
    listen: &str,
    bootstrap: &str,
    database: &str,
    log: &Path,
) -> KillOnDrop {
    KillOnDrop(support::standalone(
        service, listen, bootstrap, database, log,
    ))
}

/// A service that started stops within its shutdown bound (it has work to finish); exit 0.
fn stops_at_once_or_in_its_bound(child: &mut Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}
