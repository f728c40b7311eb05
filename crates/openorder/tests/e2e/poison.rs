//! No record holds up more than the records of its own key: a 1 MB-class record nobody can
//! decode is dead-lettered without its value while the next orders on every partition are
//! decided, and a record being retried holds back only the later records of its key, not
//! the other keys of its partition nor the other topics of its consumer. On the embedded
//! broker and on Apache Kafka.

use std::time::Duration;

use crate::support;
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use serde_json::Value;

const INVENTORY_CONSUMER: &str = "inventory-order-events";

async fn reserved(stack: &Stack) -> i64 {
    stack.stock("XYZ-100").await["reserved"].as_i64().unwrap()
}

/// Posts `n` orders and waits until every one is decided (CONFIRMED) within `within`.
async fn orders_are_decided(stack: &Stack, n: usize, within: Duration) -> Vec<i64> {
    let mut ids = Vec::new();
    for user in 0..n {
        ids.push(stack.post_order(100 + user as i64, &[("ABC-001", 1)]).await);
    }
    let deadline = tokio::time::Instant::now() + within;
    for id in &ids {
        loop {
            let order = stack.order(*id).await;
            if order["status"] == "CONFIRMED" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {id} still {} after {within:?}",
                order["status"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    ids
}

/// The keys inventory-service's consumers wait on, as `/health/ready` reports them.
async fn waiting_keys(stack: &Stack) -> Vec<Value> {
    let ready: Value = stack
        .get_json(format!("{}/health/ready", stack.inventory_url))
        .await;
    ready["checks"]["consumers"]["waiting"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until inventory-service waits on no key, for at most `within`.
async fn no_key_waits_within(stack: &Stack, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while !waiting_keys(stack).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a key still waits after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_record_of_a_megabyte_is_dead_lettered_without_blocking_anything(kind: BrokerKind) {
    let Some(stack) = Stack::spawn(kind, DbKind::Sqlite, StackOptions::default()).await else {
        return;
    };
    let topic = stack.topics().order_created();
    // What kcat or a Java client with a raised max.request.size can produce: not JSON.
    let poison = vec![b'x'; 999_800];
    stack
        .produce_with(
            &topic,
            Some("poison"),
            &poison,
            &[],
            &[("message.max.bytes", "2000000")],
        )
        .await;
    // Orders on every partition (ids 1..=9 spread over the three) are decided meanwhile.
    orders_are_decided(&stack, 9, Duration::from_secs(20)).await;

    let dead = stack
        .wait_record(&stack.topics().order_created_dlt(), "poison")
        .await;
    assert!(dead.payload.is_empty(), "written without its value");
    assert!(
        dead.header_text("openorder-dlt-value-omitted")
            .is_some_and(|why| why.contains("limit")),
        "says why"
    );
    assert_eq!(
        dead.header_text("openorder-dlt-original-value-bytes")
            .as_deref(),
        Some("999800")
    );
    assert_eq!(
        dead.header_text("kafka_dlt-exception-fqcn").as_deref(),
        Some("openorder.UndecodableRecord")
    );

    // Its key was set aside (the signal raised) and has rejoined (cleared).
    let set_aside =
        format!("openorder_consumer_keys_set_aside_total{{consumer=\"{INVENTORY_CONSUMER}\"}}");
    assert!(stack.metric(&stack.inventory_url, &set_aside).await >= 1);
    no_key_waits_within(&stack, Duration::from_secs(20)).await;
    let waiting = format!("openorder_consumer_keys_waiting{{consumer=\"{INVENTORY_CONSUMER}\"}}");
    assert_eq!(stack.metric(&stack.inventory_url, &waiting).await, 0);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_a_megabyte_is_dead_lettered_without_blocking_anything_on_tansu() {
    a_record_of_a_megabyte_is_dead_lettered_without_blocking_anything(BrokerKind::Tansu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_a_megabyte_is_dead_lettered_without_blocking_anything_on_apache_kafka() {
    a_record_of_a_megabyte_is_dead_lettered_without_blocking_anything(BrokerKind::Kafka).await;
}

async fn a_record_being_retried_holds_back_only_its_own_key(kind: BrokerKind) {
    // Three tries, 10 s then 20 s apart (±20 %): the failing order is retried for 24 s at
    // least, longer than the checks below take on a loaded machine (with 3 s and 6 s, and
    // then with 6 s and 12 s, its retries ran out before them in loaded CI runs).
    let options = StackOptions {
        retry_attempts: 3,
        retry_backoff_ms: 10_000,
        ..StackOptions::default()
    };
    let Some(stack) = Stack::spawn(kind, DbKind::Sqlite, options).await else {
        return;
    };
    let cancel_me = stack.post_order(1, &[("ABC-002", 1)]).await;
    assert_eq!(stack.settled_order(cancel_me).await["status"], "CONFIRMED");
    let reserved_before = reserved(&stack).await;
    let failing = stack.post_order(2, &[("FAIL", 1)]).await;
    a_copy_behind_it(&stack, failing).await;
    its_key_waits_while_it_is_retried(&stack, failing).await;
    // Meanwhile orders on every partition, its own included, are decided, and a cancel
    // (another topic) is applied: stock released and the order shows it.
    let failing_partition = support::java_partition(failing.to_string().as_bytes(), 3);
    let ids = orders_are_decided(&stack, 8, Duration::from_secs(3)).await;
    assert!(
        ids.iter()
            .any(|id| support::java_partition(id.to_string().as_bytes(), 3) == failing_partition),
        "an order on the failing order's partition was decided too: {ids:?}"
    );
    let (status, cancelled) = stack.cancel_order(cancel_me).await;
    assert_eq!(status, 200, "{cancelled}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while stack.order(cancel_me).await["releasedAt"].is_null() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cancel waited for the failing order"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stack.order(failing).await["status"],
        "PENDING",
        "the failing order is still being retried: the others did not wait for it"
    );
    assert_eq!(
        reserved(&stack).await,
        reserved_before,
        "the copy behind the failing record has not overtaken it"
    );
    // Then it is dead-lettered, and the copy behind it is applied (it reserves XYZ-100):
    // its retries end 36 s after its first try at the latest.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while reserved(&stack).await != reserved_before + 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy was not applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    no_key_waits_within(&stack, Duration::from_secs(10)).await;
    let dead = stack
        .wait_record(&stack.topics().order_created_dlt(), &failing.to_string())
        .await;
    assert_eq!(dead.header_text("openorder-attempts").as_deref(), Some("3"));
    // And orders after it on any partition are decided as usual.
    orders_are_decided(&stack, 3, Duration::from_secs(10)).await;
    stack.stop().await;
}

/// A later record of order `failing`'s key (a copy of the order with other items, as a
/// second producer could write): it must wait for the failing record.
async fn a_copy_behind_it(stack: &Stack, failing: i64) {
    let copy = contracts::OrderCreated {
        event_id: contracts::new_event_id(),
        order_id: failing,
        user_id: 2,
        items: vec![contracts::LineItem {
            sku: "XYZ-100".into(),
            qty: 1,
        }],
        created_at: chrono::Utc::now(),
        contact: None,
    };
    let copy_id = copy.event_id.to_string();
    stack
        .produce_with(
            &stack.topics().order_created(),
            Some(&failing.to_string()),
            &serde_json::to_vec(&copy).unwrap(),
            &[("event-id", &copy_id), ("event-type", "order.created")],
            // Where the services' and Java's producers put the key.
            &[("partitioner", platform::kafka::PARTITIONER)],
        )
        .await;
}

/// The failing order's key is set aside and reported while it is retried.
async fn its_key_waits_while_it_is_retried(stack: &Stack, failing: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let waiting = loop {
        let waiting = waiting_keys(stack).await;
        if !waiting.is_empty() {
            break waiting;
        }
        assert!(tokio::time::Instant::now() < deadline, "no key set aside");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(waiting[0]["consumer"], INVENTORY_CONSUMER);
    assert_eq!(waiting[0]["topic"], stack.topics().order_created());
    assert_eq!(waiting[0]["key"], failing.to_string());
    assert!(waiting[0]["error"]
        .as_str()
        .unwrap()
        .contains("SimulatedFailure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_being_retried_holds_back_only_its_own_key_on_tansu() {
    a_record_being_retried_holds_back_only_its_own_key(BrokerKind::Tansu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_being_retried_holds_back_only_its_own_key_on_apache_kafka() {
    a_record_being_retried_holds_back_only_its_own_key(BrokerKind::Kafka).await;
}
