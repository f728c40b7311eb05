//! The automatic redrive policy: a transient failure is redriven from the DLT, then from
//! the parking lot, until its replay count reaches the cap, where it waits for a person; a
//! permanent failure is not redriven.

use std::time::Duration;

use super::{dead_letters_of, parked_of};
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automatic_redrive_policy_redrives_transient_failures_and_stops_at_its_cap() {
    let options = StackOptions {
        auto_redrive: inventory_service::AutoRedriveArgs {
            auto_redrive: true,
            auto_redrive_after: Duration::from_secs(1),
            auto_redrive_max_replays: 2,
            auto_redrive_per_minute: 60,
            auto_redrive_classes: Vec::new(),
        },
        ..Default::default()
    };
    let stack = Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, options)
        .await
        .expect("the embedded broker needs nothing external");
    let id = stack.post_order(8, &[("FAIL", 1)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "FAILED");
    // Redriven from the DLT (it fails again: parked, count 1), then from the parking lot
    // (parked again, count 2), then no more: 2 is the cap.
    let parked = parked_of(&stack, id, 2).await;
    let mut counts: Vec<i64> = parked
        .iter()
        .map(|d| d["replayCount"].as_i64().unwrap())
        .collect();
    counts.sort();
    assert_eq!(counts, [1, 2], "{parked:?}");
    // A permanent failure is not redriven.
    let value = json!({"orderId": 990_002_001, "note": "undecodable"}).to_string();
    stack
        .produce_with(
            &stack.topics().order_created(),
            Some("990002001"),
            value.as_bytes(),
            &[],
            &[],
        )
        .await;
    let letters = dead_letters_of(&stack, 990_002_001, 1).await;
    assert_eq!(letters[0]["failureKind"], "permanent", "{letters:?}");

    a_later_failure_is_redriven_twice(&stack).await;
    let parked = parked_of(&stack, id, 2).await;
    assert_eq!(parked.len(), 2, "stopped at the cap: {parked:?}");
    let last = parked.iter().find(|d| d["replayCount"] == 2).unwrap();
    assert_eq!(last["replayed"], 0, "the last one waits for a person");
    let history = last["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{last}");
    assert!(history.iter().all(|h| h["by"] == "auto-redrive"), "{last}");
    assert_eq!(dead_letters_of(&stack, id, 1).await.len(), 1);
    // Two redrives of the order and two of the sentinel, each counted once its pass ended.
    let redriven = format!(
        "openorder_records_auto_redriven_total{{topic=\"{}\"}}",
        stack.topics().order_created()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut count = stack.metric(&stack.inventory_url, &redriven).await;
    while count < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} redrives counted in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        count = stack.metric(&stack.inventory_url, &redriven).await;
    }
    assert_eq!(count, 4, "the order's two and the sentinel's two");
    assert_eq!(
        dead_letters_of(&stack, 990_002_001, 1).await[0]["replayed"],
        0
    );
    stack.stop().await;
}

/// A sentinel: a transient failure dead-lettered after everything before, followed until
/// the policy has redriven it twice (from the DLT, then from the parking lot, where it
/// failed again). The policy's passes run one after another, each reading every dead letter
/// and parked record there is and sending what is due: the pass that first took the
/// sentinel read whatever was dead-lettered or parked before it (older, so due as early),
/// and it was over before the next pass took the sentinel again.
async fn a_later_failure_is_redriven_twice(stack: &Stack) {
    let sentinel = stack.post_order(8, &[("FAIL", 1)]).await;
    assert_eq!(stack.settled_order(sentinel).await["status"], "FAILED");
    parked_of(stack, sentinel, 2).await;
}
