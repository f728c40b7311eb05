//! Records from producers other than the services (another team's service, a script, a
//! tool) that break the contract are dead-lettered with the reason, never applied and never
//! dropped without a trace: an event id reused for another body (`openorder.EventIdReused`),
//! a key that is not the event's `orderId` (`openorder.KeyMismatch`). A genuine redelivery
//! (the same bytes again) stays a silent duplicate. And the dead letter of an order the
//! customer was already told the decision of sends no "could not be processed"; the other
//! way round (dead letter first, the decision after a replay), the decision is told.
//!
//! The foreign records are written with rdkafka (`Stack::produce_keyed`, `produce_with`):
//! the services' client library, though none of their producer code. The suite has no
//! kcat or Python producer to write them with.
//!
//! Negative outcomes (no dead letter, no notice) are proven with sentinels, not sleeps: a
//! consumer applies a partition in order, so a later record on the same partition whose
//! effect shows proves the earlier one was processed.

use std::time::Duration;

use crate::support;
use crate::support::{BrokerKind, DbKind, DltRecord, Stack, StackOptions};
use contracts::headers;
use serde_json::{json, Value};

const INVENTORY_CONSUMER: &str = "inventory-order-events";

/// [`support::order_created_json`] with a fresh event id.
fn order_created_json(order_id: i64, sku: &str, qty: i64) -> Vec<u8> {
    support::order_created_json(order_id, contracts::new_event_id(), sku, qty)
}

/// A record's headers as text, to produce it again.
fn headers_of(record: &DltRecord) -> Vec<(String, String)> {
    record
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

fn as_strs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// (available, reserved) of `sku`.
async fn stock_of(stack: &Stack, sku: &str) -> (i64, i64) {
    let stock = stack.stock(sku).await;
    (
        stock["available"].as_i64().unwrap(),
        stock["reserved"].as_i64().unwrap(),
    )
}

/// Posts an order of `qty` of a fresh SKU (stock 10) and waits until it is CONFIRMED and
/// the customer was told; returns its id, its SKU and its `order.created` record.
async fn a_confirmed_order(stack: &Stack, label: &str, qty: i64) -> (i64, String, DltRecord) {
    let sku = support::unique_sku(label);
    stack.set_stock(&sku, 10).await;
    let id = stack.post_order(11, &[(&sku, qty)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "CONFIRMED");
    let notes = stack.wait_notifications(id).await;
    assert_eq!(notes[0]["kind"], "order.confirmed", "{notes:?}");
    let created = stack
        .wait_record(&stack.topics().order_created(), &id.to_string())
        .await;
    (id, sku, created)
}

/// The dead letters keyed `key` in `order.created.DLT`, waiting for `n` of them.
async fn wait_dead_letters(stack: &Stack, key: &str, n: usize) -> Vec<DltRecord> {
    let dead = stack
        .records_with_key(
            &stack.topics().order_created_dlt(),
            key,
            Duration::from_secs(60),
            n,
        )
        .await;
    assert_eq!(dead.len(), n, "dead letters keyed {key}");
    dead
}

/// Waits until notification-service has told the failure of an order beside `key` on
/// `order.created.DLT` (a dead letter of the inventory group): every dead letter keyed
/// `key` before it was processed by then.
async fn dead_letter_sentinel(stack: &Stack, key: &str) {
    let topics = stack.topics();
    let id = stack.order_id_beside(key);
    let inventory = topics.group(inventory_service::GROUP);
    let original = topics.order_created();
    stack
        .produce_keyed(
            &topics.order_created_dlt(),
            &id.to_string(),
            &order_created_json(id, "ABC-001", 1),
            &[
                (headers::DLT_ORIGINAL_TOPIC, &original),
                (headers::DLT_ORIGINAL_CONSUMER_GROUP, &inventory),
                (headers::DLT_EXCEPTION_FQCN, "openorder.SimulatedFailure"),
                (headers::DLT_EXCEPTION_MESSAGE, "the sentinel"),
            ],
        )
        .await;
    let notes = stack.wait_notifications(id).await;
    assert_eq!(notes[0]["kind"], "order.failed", "{notes:?}");
}

/// The kinds of the order's notifications, oldest first.
async fn kinds(stack: &Stack, id: i64) -> Vec<String> {
    stack
        .notifications(id)
        .await
        .iter()
        .map(|n| n["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn an_event_id_reused_with_another_body_is_dead_lettered_and_the_order_keeps_its_state(
    stack: &Stack,
) {
    let topics = stack.topics();
    let (id, sku, created) = a_confirmed_order(stack, "REUSED", 2).await;
    let key = id.to_string();
    // Another body under the order's event id and key: other items.
    let mut changed: Value = serde_json::from_slice(&created.payload).unwrap();
    changed["items"] = json!([{"sku": sku, "qty": 7}]);
    let event_id = changed["eventId"].as_str().unwrap().to_string();
    let changed = changed.to_string().into_bytes();
    stack
        .produce_keyed(
            &topics.order_created(),
            &key,
            &changed,
            &[("event-id", &event_id), ("event-type", "order.created")],
        )
        .await;

    let dead = wait_dead_letters(stack, &key, 1).await;
    let dead = &dead[0];
    assert_eq!(
        dead.header_text(headers::DLT_EXCEPTION_FQCN).as_deref(),
        Some("openorder.EventIdReused")
    );
    let message = dead.header_text(headers::DLT_EXCEPTION_MESSAGE).unwrap();
    assert!(
        message.contains(&format!(
            "event id {event_id} was applied before with a different body"
        )),
        "{message}"
    );
    assert_eq!(
        dead.header_text(headers::DLT_ORIGINAL_CONSUMER_GROUP),
        Some(topics.group(inventory_service::GROUP))
    );
    assert_eq!(
        dead.header_text(headers::ATTEMPTS).as_deref(),
        Some("1"),
        "permanent: not retried"
    );
    assert_eq!(dead.payload, changed, "the foreign record as it came");
    assert_eq!(
        stock_of(stack, &sku).await,
        (8, 2),
        "nothing of the second body was reserved"
    );

    // notification-service read that dead letter (the sentinel behind it on its partition
    // was told) and, the customer having been told the order is confirmed, said nothing.
    dead_letter_sentinel(stack, &key).await;
    assert_eq!(kinds(stack, id).await, ["order.confirmed"]);
    let order = stack.order(id).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(order["items"], json!([{"sku": sku, "qty": 2}]), "{order}");
}

async fn the_same_event_again_is_a_silent_duplicate(stack: &Stack) {
    let topics = stack.topics();
    let (id, sku, created) = a_confirmed_order(stack, "AGAIN", 1).await;
    let key = id.to_string();
    let set_aside =
        format!("openorder_consumer_keys_set_aside_total{{consumer=\"{INVENTORY_CONSUMER}\"}}");
    let before = stack.metric(&stack.inventory_url, &set_aside).await;
    // The order's own record again, byte for byte, headers and all: a redelivery.
    let again = headers_of(&created);
    stack
        .produce_keyed(
            &topics.order_created(),
            &key,
            &created.payload,
            &as_strs(&again),
        )
        .await;
    stack.order_created_sentinel(&key).await;

    // Had it failed, its key would have been set aside before the sentinel behind it was
    // applied; it was not, and nothing reached the dead letters.
    assert_eq!(
        stack.metric(&stack.inventory_url, &set_aside).await,
        before,
        "the redelivery did not fail"
    );
    let dead = stack.dead_letters_keyed(&key).await;
    assert!(dead.is_empty(), "no dead letter for a redelivery");
    assert_eq!(stock_of(stack, &sku).await, (9, 1), "reserved once");
    assert_eq!(kinds(stack, id).await, ["order.confirmed"]);
}

async fn a_record_keyed_by_another_order_or_by_nothing_is_dead_lettered_as_a_key_mismatch(
    stack: &Stack,
) {
    let topics = stack.topics();
    let sku = support::unique_sku("KEYED");
    stack.set_stock(&sku, 5).await;
    let order_id = 900_000_000 + rand::random_range(0..99_999_999i64);
    let key = stack.order_id_beside(&order_id.to_string()).to_string();
    stack
        .produce_keyed(
            &topics.order_created(),
            &key,
            &order_created_json(order_id, &sku, 1),
            &[("event-type", "order.created")],
        )
        .await;
    // Every group that reads order.created refuses it, each with the reason.
    let dead = wait_dead_letters(stack, &key, 2).await;
    for d in &dead {
        assert_eq!(
            d.header_text(headers::DLT_EXCEPTION_FQCN).as_deref(),
            Some("openorder.KeyMismatch")
        );
        let message = d.header_text(headers::DLT_EXCEPTION_MESSAGE).unwrap();
        assert!(
            message.contains(&format!("key \"{key}\""))
                && message.contains(&format!("orderId {order_id}")),
            "names both: {message}"
        );
    }
    assert_eq!(support::groups_of(&dead), stack.order_created_groups());
    assert_eq!(stock_of(stack, &sku).await, (5, 0), "not applied");

    // Without a key: refused too (found by the orderId of its value).
    let keyless_id = 900_000_000 + rand::random_range(0..99_999_999i64);
    stack
        .produce_with(
            &topics.order_created(),
            None,
            &order_created_json(keyless_id, &sku, 1),
            &[("event-type", "order.created")],
            &[],
        )
        .await;
    let dlt = topics.order_created_dlt();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let letters = loop {
        let all: Value = stack
            .get_json(format!("{}/admin/dlt?topic={dlt}", stack.inventory_url))
            .await;
        let mine: Vec<Value> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["orderId"] == keyless_id)
            .cloned()
            .collect();
        if mine.len() >= 2 {
            break mine;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the keyless record has {} dead letters, want 2",
            mine.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for letter in &letters {
        assert_eq!(letter["key"], Value::Null);
        let error = letter["error"].as_str().unwrap();
        assert!(
            error.starts_with("openorder.KeyMismatch: ") && error.contains("no key"),
            "{error}"
        );
    }
    assert_eq!(stock_of(stack, &sku).await, (5, 0), "not applied");
}

async fn a_dead_letter_for_a_confirmed_order_tells_the_customer_nothing(stack: &Stack) {
    let topics = stack.topics();
    let (id, _, created) = a_confirmed_order(stack, "TOLD", 1).await;
    let key = id.to_string();
    // The inventory group's dead letter of the order (as a foreign copy of it would make).
    let inventory = topics.group(inventory_service::GROUP);
    let original = topics.order_created();
    let mut letter = headers_of(&created);
    letter.extend([
        (headers::DLT_ORIGINAL_TOPIC.to_string(), original),
        (headers::DLT_ORIGINAL_CONSUMER_GROUP.to_string(), inventory),
        (
            headers::DLT_EXCEPTION_FQCN.to_string(),
            "openorder.SimulatedFailure".to_string(),
        ),
        (
            headers::DLT_EXCEPTION_MESSAGE.to_string(),
            "late trouble".to_string(),
        ),
    ]);
    stack
        .produce_keyed(
            &topics.order_created_dlt(),
            &key,
            &created.payload,
            &as_strs(&letter),
        )
        .await;
    dead_letter_sentinel(stack, &key).await;
    assert_eq!(
        kinds(stack, id).await,
        ["order.confirmed"],
        "no \"could not be processed\" after \"confirmed\""
    );
    assert_eq!(stack.order(id).await["status"], "CONFIRMED");
}

async fn set_fail_sku(stack: &Stack, sku: &str) {
    let response = stack
        .http
        .put(format!("{}/admin/faults", stack.inventory_url))
        .json(&json!({ "failSku": sku }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn a_failed_order_replayed_is_told_its_decision_after_its_failure(stack: &Stack) {
    let dlt = stack.topics().order_created_dlt();
    let sku = support::unique_sku("LATER");
    stack.set_stock(&sku, 3).await;
    set_fail_sku(stack, &sku).await;
    let id = stack.post_order(12, &[(&sku, 1)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "FAILED");
    let notes = stack.wait_notifications(id).await;
    assert_eq!(notes[0]["kind"], "order.failed", "{notes:?}");

    set_fail_sku(stack, "FAIL").await;
    let replayed: Value = support::json_of(
        stack
            .http
            .post(format!("{}/admin/dlt/replay", stack.inventory_url))
            .json(&json!({"topic": dlt, "orderId": id, "by": "test"})),
    )
    .await;
    assert_eq!(replayed[0]["outcome"], "replayed", "{replayed}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let told = kinds(stack, id).await;
        if told.len() >= 2 {
            assert_eq!(told, ["order.failed", "order.confirmed"]);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replayed order's decision was not told: {told:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stack.order(id).await["status"], "CONFIRMED");
}

async fn foreign_records_breaking_the_contract_are_dead_lettered_with_the_reason(
    broker: BrokerKind,
    db: DbKind,
) {
    let Some(stack) = Stack::spawn(broker, db, StackOptions::default()).await else {
        eprintln!("skipped: {broker:?} with {db:?} (OPENORDER_TEST_SKIP_EXTERNAL=1)");
        return;
    };
    an_event_id_reused_with_another_body_is_dead_lettered_and_the_order_keeps_its_state(&stack)
        .await;
    the_same_event_again_is_a_silent_duplicate(&stack).await;
    a_record_keyed_by_another_order_or_by_nothing_is_dead_lettered_as_a_key_mismatch(&stack).await;
    a_dead_letter_for_a_confirmed_order_tells_the_customer_nothing(&stack).await;
    a_failed_order_replayed_is_told_its_decision_after_its_failure(&stack).await;
    stack.stop().await;
}

crate::backends!(foreign_records_breaking_the_contract_are_dead_lettered_with_the_reason {
    foreign_records_breaking_the_contract_are_dead_lettered_with_the_reason_on_tansu_with_sqlite
        => (Tansu, Sqlite),
    foreign_records_breaking_the_contract_are_dead_lettered_with_the_reason_on_apache_kafka_with_postgres
        => (Kafka, Postgres),
});
