//! Records that fail and records that come twice: an order tried three times then
//! dead-lettered (once) and FAILED, a flaky one retried and confirmed with nothing
//! dead-lettered, a malformed record dead-lettered at once while its partition flows on, a
//! poison record in a batch failing alone, and a record delivered twice applied once.

use super::synthetic_order_id;
use crate::support;
use crate::support::Stack;
use contracts::headers;
use platform::dead_letters::write::be_int;

pub(super) async fn a_fail_order_is_tried_three_times_then_dead_lettered_and_failed(stack: &Stack) {
    let topics = stack.topics();
    let id = stack.post_order(9, &[("ABC-001", 1), ("FAIL", 1)]).await;
    let order = stack.settled_order(id).await;
    assert_eq!(order["status"], "FAILED", "{order}");
    assert!(
        order["error"]
            .as_str()
            .unwrap()
            .contains("SimulatedFailure"),
        "{order}"
    );

    let dlt = stack
        .wait_record(&topics.order_created_dlt(), &id.to_string())
        .await;
    let original: contracts::OrderCreated = serde_json::from_slice(&dlt.payload).unwrap();
    assert_eq!(original.order_id, id, "the original value is kept");
    assert_eq!(
        dlt.header_text(headers::EVENT_ID),
        Some(original.event_id.to_string()),
        "original headers kept"
    );
    assert_eq!(
        dlt.header_text(headers::DLT_ORIGINAL_TOPIC),
        Some(topics.order_created())
    );
    assert_eq!(
        dlt.header_text(headers::DLT_ORIGINAL_CONSUMER_GROUP),
        Some(topics.group(inventory_service::GROUP))
    );
    assert_eq!(
        dlt.header_text(headers::DLT_EXCEPTION_FQCN).as_deref(),
        Some("openorder.SimulatedFailure")
    );
    assert!(dlt
        .header_text(headers::DLT_EXCEPTION_MESSAGE)
        .unwrap()
        .contains("FAIL"));
    assert!(be_int(dlt.header(headers::DLT_ORIGINAL_PARTITION).unwrap()).unwrap() >= 0);
    assert!(be_int(dlt.header(headers::DLT_ORIGINAL_OFFSET).unwrap()).unwrap() >= 0);
    assert!(be_int(dlt.header(headers::DLT_ORIGINAL_TIMESTAMP).unwrap()).unwrap() > 0);
    assert_eq!(dlt.header_text(headers::ATTEMPTS).as_deref(), Some("3"));

    // Every dead letter of the order is on the DLT once both groups that read
    // order.created are past a sentinel behind it.
    let one = stack.dead_letters_keyed(&id.to_string()).await;
    assert_eq!(one.len(), 1, "dead-lettered exactly once");
}

pub(super) async fn a_flaky_order_is_retried_and_confirmed_with_nothing_dead_lettered(
    stack: &Stack,
) {
    let topics = stack.topics();
    stack.set_stock("FLAKY", 5).await;
    let id = stack.post_order(9, &[("ABC-001", 1), ("FLAKY", 1)]).await;
    let order = stack.settled_order(id).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    let dead = stack.dead_letters_keyed(&id.to_string()).await;
    assert!(dead.is_empty(), "a flaky order is not dead-lettered");
    let retried = format!(
        "openorder_records_retried_total{{class=\"openorder.SimulatedFlakiness\",topic=\"{}\"}}",
        topics.order_created()
    );
    assert!(stack.metric(&stack.inventory_url, &retried).await >= 1);
    let dead_lettered = format!(
        "openorder_records_dead_lettered_total{{class=\"openorder.SimulatedFailure\",topic=\"{}\"}}",
        topics.order_created()
    );
    assert_eq!(stack.metric(&stack.inventory_url, &dead_lettered).await, 1);
}

pub(super) async fn a_malformed_record_is_dead_lettered_at_once_and_the_partition_flows_on(
    stack: &Stack,
) {
    let topics = stack.topics();
    let key = synthetic_order_id();
    stack
        .produce_raw(
            &topics.order_created(),
            &key.to_string(),
            b"{this is not json",
            &[],
        )
        .await;
    // The next record on the same partition (same key) must still be processed.
    let sku = support::unique_sku("NEXT");
    stack.set_stock(&sku, 5).await;
    let next = support::order_created_json(key, uuid::Uuid::new_v4(), &sku, 1);
    stack
        .produce_raw(&topics.order_created(), &key.to_string(), &next, &[])
        .await;

    let dlt = stack
        .wait_record(&topics.order_created_dlt(), &key.to_string())
        .await;
    assert_eq!(dlt.payload, b"{this is not json");
    assert_eq!(
        dlt.header_text(headers::ATTEMPTS).as_deref(),
        Some("1"),
        "no retries"
    );
    assert_eq!(
        dlt.header_text(headers::DLT_EXCEPTION_FQCN).as_deref(),
        Some("openorder.UndecodableRecord")
    );
    let notes = stack.wait_notifications(key).await;
    assert_eq!(notes[0]["eventType"], "inventory.reserved");
    assert_eq!(stack.stock(&sku).await["available"], 4);
}

pub(super) async fn a_poison_record_in_a_batch_fails_alone_and_the_rest_is_applied_once(
    stack: &Stack,
) {
    let topics = stack.topics();
    let key = synthetic_order_id().to_string();
    let sku = support::unique_sku("BATCH");
    stack.set_stock(&sku, 100).await;
    // Ten orders, each keyed by its own id (as the contract says), all on the partition of
    // the poison record's key.
    let orders: Vec<i64> = (0..10).map(|_| stack.order_id_beside(&key)).collect();
    let mut records: Vec<(String, Vec<u8>)> = orders
        .iter()
        .map(|&id| {
            let value = support::order_created_json(id, uuid::Uuid::new_v4(), &sku, 1);
            (id.to_string(), value)
        })
        .collect();
    records.insert(5, (key.clone(), b"{poison".to_vec()));
    let rolled_back =
        "openorder_consumer_batches_rolled_back_total{consumer=\"inventory-order-events\"}";
    let before = stack.metric(&stack.inventory_url, rolled_back).await;

    stack
        .produce_raw_together(&topics.order_created(), stack.partition_of(&key), &records)
        .await;

    for &id in &orders {
        stack.wait_notifications(id).await;
    }
    let stock = stack.stock(&sku).await;
    assert_eq!(
        (stock["available"].as_i64(), stock["reserved"].as_i64()),
        (Some(90), Some(10)),
        "each of the ten orders reserved exactly once: {stock}"
    );
    // Each group that reads order.created dead-letters the poison record once, nothing else.
    let dead = stack.dead_letters_keyed(&key).await;
    for d in &dead {
        assert_eq!(d.payload, b"{poison");
    }
    assert_eq!(support::groups_of(&dead), stack.order_created_groups());
    let after = stack.metric(&stack.inventory_url, rolled_back).await;
    assert!(
        after > before,
        "the eleven records came as one batch, which the poison record rolled back"
    );
}

pub(super) async fn a_record_delivered_twice_reserves_once_and_notifies_once(stack: &Stack) {
    let topics = stack.topics();
    let order_id = synthetic_order_id();
    let sku = support::unique_sku("TWICE");
    stack.set_stock(&sku, 10).await;
    let event_id = uuid::Uuid::new_v4();
    let record = support::order_created_json(order_id, event_id, &sku, 2);
    let key = order_id.to_string();
    stack
        .produce_keyed(&topics.order_created(), &key, &record, &[])
        .await;
    stack
        .produce_keyed(&topics.order_created(), &key, &record, &[])
        .await;
    // The same order again under a new event id (a republished copy): still one decision.
    let copy = support::order_created_json(order_id, uuid::Uuid::new_v4(), &sku, 2);
    stack
        .produce_keyed(&topics.order_created(), &key, &copy, &[])
        .await;
    // Sentinels on the same partition, for other orders (each keyed by its own id), the
    // last followed until order-service and notification-service applied its decision:
    // every copy before them was processed by inventory-service, and whatever it decided on
    // them was processed downstream too.
    let sentinel_id = stack.decision_sentinel(&key).await;
    stack.wait_notifications(sentinel_id).await;
    stack.wait_notifications(order_id).await;

    let stock = stack.stock(&sku).await;
    assert_eq!(
        (stock["available"].as_i64(), stock["reserved"].as_i64()),
        (Some(8), Some(2)),
        "{stock}"
    );
    assert_eq!(stack.notifications(order_id).await.len(), 1);
    // Every decision on the copies is on inventory.reserved before the sentinel's.
    let reserved = stack
        .records_with_key_before(&topics.inventory_reserved(), &key, &sentinel_id.to_string())
        .await;
    assert_eq!(
        reserved.len(),
        1,
        "one inventory.reserved event for the order"
    );
}
