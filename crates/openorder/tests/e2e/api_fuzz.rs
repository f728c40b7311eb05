//! Schemathesis, from outside, against `openorder up`: for each service it generates
//! requests from the service's OpenAPI document (examples, boundaries, random and
//! schema-violating data, sequences of calls) with the operator token, and checks every
//! answer: no 5xx, only documented statuses and content types, bodies that match their
//! schemas, invalid data refused. Bounded: 30 examples per operation.
//!
//! Left out: Schemathesis's check that every schema-valid request is accepted, because
//! some refusals are rules no schema states (a webhook must point at a public address, a
//! reused Idempotency-Key with another body is a 422, an unknown dead letter is a 404).
//! And order-service's event stream (`GET /api/orders/{id}/events`): a stream open until
//! the order's status is terminal, which a request with a timeout cannot check
//! (`tests/waits.rs` in order-service does).

use std::process::Command;

use crate::support;
use crate::support::{UpPorts, UpProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_every_service_matches_its_openapi_document_under_fuzzing() {
    let Some(st) = support::external("OPENORDER_TEST_SCHEMATHESIS") else {
        return;
    };
    let data = support::temp_dir("fuzz");
    let ports = UpPorts::free().expect("free ports");
    let up = UpProcess::start(&data, &ports).await;
    let token = std::fs::read_to_string(data.join("operator-token")).unwrap();
    let mut failed = Vec::new();
    for base in [&up.order_url, &up.inventory_url, &up.notification_url] {
        let run = tokio::task::spawn_blocking({
            let (st, base, token) = (st.clone(), base.clone(), token.trim().to_string());
            move || {
                Command::new(st)
                    .args(["run", &format!("{base}/openapi.json")])
                    .args(["--max-examples", "30", "--request-timeout", "10"])
                    .args([
                        "--checks",
                        "all",
                        "--exclude-checks",
                        "positive_data_acceptance",
                    ])
                    .args(["--seed", "20261201"])
                    .args(["--exclude-path-regex", "/events$"])
                    .args(["-H", &format!("Authorization: Bearer {token}")])
                    .env("NO_COLOR", "1")
                    .output()
                    .expect("schemathesis runs")
            }
        });
        let output = run.await.unwrap();
        if !output.status.success() {
            failed.push(format!(
                "{base}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    up.stop();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
