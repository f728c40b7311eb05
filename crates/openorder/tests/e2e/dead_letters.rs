//! Dead letters people can act on, on real brokers: list, show and replay over HTTP and the
//! CLI, the replay ledger, the replay cap, and dry runs that change nothing; the redrive
//! workbench: an edited replay (a merge patch checked against the schema), bulk redrives by
//! filter (counted by a dry run, paced by a rate), the parking lot a replay that fails
//! again lands in, and the automatic redrive policy, which stops at its cap.
//!
//! A module per part: [`replays`] (one dead letter replayed, capped, edited), [`redrives`]
//! (bulk redrives, the parking lot, the CLI), [`refusals`] (requests refused, lists
//! bounded) and [`auto_redrive`]; the first two run in turn on one stack per backend
//! ([`dead_letters_can_be_acted_on`]). Their helpers are here.

mod auto_redrive;
mod redrives;
mod refusals;
mod replays;

use std::time::Duration;

use crate::support;
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use serde_json::{json, Value};

async fn admin(
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = stack
        .http
        .request(method, format!("{}{path}", stack.inventory_url));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Switches the FAIL fault alone: a body naming one switch leaves the other as it is.
async fn set_faults(stack: &Stack, fail: &str) {
    let (status, faults) = admin(
        stack,
        reqwest::Method::PUT,
        "/admin/faults",
        Some(json!({"failSku": fail})),
    )
    .await;
    assert_eq!(status, 200, "{faults}");
    assert_eq!(faults, json!({"failSku": fail, "flakySku": "FLAKY"}));
    let (_, now) = admin(stack, reqwest::Method::GET, "/admin/faults", None).await;
    assert_eq!(now, faults);
}

async fn replay(stack: &Stack, body: Value) -> Vec<Value> {
    let (status, results) = admin(
        stack,
        reqwest::Method::POST,
        "/admin/dlt/replay",
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{results}");
    results.as_array().unwrap().clone()
}

/// Waits until `order_id` has `n` dead letters; returns their summaries.
async fn dead_letters_of(stack: &Stack, order_id: i64, n: usize) -> Vec<Value> {
    let topic = stack.topics().order_created_dlt();
    listed_of(stack, &format!("/admin/dlt?topic={topic}"), order_id, n).await
}

/// Waits until `order_id` has `n` records in `order.created`'s parking lot; returns their
/// summaries.
async fn parked_of(stack: &Stack, order_id: i64, n: usize) -> Vec<Value> {
    let topic = parked_topic(stack);
    listed_of(stack, &format!("/admin/dlt?topic={topic}"), order_id, n).await
}

/// `order.created.PARKED` behind the stack's prefix.
fn parked_topic(stack: &Stack) -> String {
    contracts::Topics::parked_of(&stack.topics().order_created())
}

/// Waits until the list at `path` has `n` entries of `order_id`; returns them.
async fn listed_of(stack: &Stack, path: &str, order_id: i64, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, all) = admin(stack, reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "{all}");
        let mine: Vec<Value> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["orderId"] == order_id)
            .cloned()
            .collect();
        if mine.len() >= n {
            return mine;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {order_id} has {} entries in {path}, want {n}",
            mine.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The record of `order.created` that a replay sent for `order_id`: the last one keyed by it.
async fn replayed_record(stack: &Stack, order_id: i64, n: usize) -> support::DltRecord {
    let mut records = stack
        .records_with_key(
            &stack.topics().order_created(),
            &order_id.to_string(),
            Duration::from_secs(60),
            n,
        )
        .await;
    assert_eq!(records.len(), n, "order {order_id}'s records");
    records.pop().unwrap()
}

/// Waits until order `id` is `status`.
async fn order_becomes(stack: &Stack, id: i64, status: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stack.order(id).await["status"] != status {
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} not {status}: {}",
            stack.order(id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Produces `n` dead letters of class `class` to `order.created.DLT`, of orders
/// `first_order..first_order + n`, whose message says `note <i>`; their values are no
/// valid `order.created` (a replay of them fails and is parked).
async fn produce_dead_letters(stack: &Stack, class: &str, note: &str, first_order: i64, n: i64) {
    let dlt_topic = stack.topics().order_created_dlt();
    let original = stack.topics().order_created();
    for i in 0..n {
        let order_id = first_order + i;
        let value = json!({"orderId": order_id, "note": note}).to_string();
        let message = format!("{note} {i}");
        stack
            .produce_with(
                &dlt_topic,
                Some(&order_id.to_string()),
                value.as_bytes(),
                &[
                    ("kafka_dlt-original-topic", &original),
                    ("kafka_dlt-exception-fqcn", class),
                    ("kafka_dlt-exception-message", &message),
                ],
                &[],
            )
            .await;
    }
}

async fn redrive(stack: &Stack, body: Value) -> Value {
    let (status, report) = admin(
        stack,
        reqwest::Method::POST,
        "/admin/dlt/redrive",
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    report
}

/// A dry run of a bulk redrive of what `filter` selects; returns its report.
async fn dry_redrive(stack: &Stack, mut filter: Value) -> Value {
    filter["dryRun"] = json!(true);
    redrive(stack, filter).await
}

/// The `field` of each entry of a problem's `errors` that names one, in order.
fn error_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect()
}

async fn dead_letters_can_be_acted_on(broker: BrokerKind, db: DbKind) {
    let Some(stack) = Stack::spawn(broker, db, StackOptions::default()).await else {
        eprintln!("skipped: {broker:?} with {db:?} (OPENORDER_TEST_SKIP_EXTERNAL=1)");
        return;
    };
    replays::a_failed_order_replayed_after_the_fault_is_off_is_confirmed_once(&stack).await;
    replays::the_replay_cap_refuses_a_record_replayed_too_often(&stack).await;
    replays::a_dead_letter_without_a_key_is_found_and_replayed_by_the_order_id_in_its_value(&stack)
        .await;
    replays::an_edited_replay_of_an_order_whose_sku_was_wrong_confirms_it(&stack).await;
    replays::a_patch_that_breaks_the_schema_is_refused_and_sends_nothing(&stack).await;
    redrives::a_bulk_dry_run_counts_exactly_the_filtered_set(&stack).await;
    redrives::a_redrive_at_50_records_a_second_takes_no_less_than_the_rate_allows(&stack).await;
    redrives::a_replay_that_fails_again_lands_in_the_parking_lot_not_the_dlt(&stack).await;
    redrives::the_cli_lists_and_shows_the_same_dead_letters(&stack).await;
    stack.stop().await;
}

crate::backends!(dead_letters_can_be_acted_on {
    dead_letters_can_be_acted_on_with_tansu_and_sqlite => (Tansu, Sqlite),
    dead_letters_can_be_acted_on_with_apache_kafka_and_postgres => (Kafka, Postgres),
});
