//! No record holds up more than its own partition: a 1 MB-class record nobody can decode
//! is dead-lettered without its value while the next orders on every partition are
//! decided, and a record being retried holds back neither the other partitions nor the
//! other topics of its consumer. On the embedded broker and on Apache Kafka.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{BrokerKind, DbKind, Stack, StackOptions};

const INVENTORY_CONSUMER: &str = "inventory-order-events";

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

async fn waiting_partitions(stack: &Stack, base: &str) -> Vec<Value> {
    let ready: Value = stack.get_json(format!("{base}/health/ready")).await;
    ready["checks"]["consumers"]["waiting"]
        .as_array()
        .cloned()
        .unwrap_or_default()
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

    // Its partition was set aside (the signal raised) and has rejoined (cleared).
    let set_aside = format!(
        "openorder_consumer_partitions_set_aside_total{{consumer=\"{INVENTORY_CONSUMER}\"}}"
    );
    assert!(stack.metric(&stack.inventory_url, &set_aside).await >= 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !waiting_partitions(&stack, &stack.inventory_url)
        .await
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "partition still waiting"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waiting =
        format!("openorder_consumer_partitions_waiting{{consumer=\"{INVENTORY_CONSUMER}\"}}");
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

async fn a_record_being_retried_holds_back_only_its_own_partition(kind: BrokerKind) {
    // Three tries, 2 s then 4 s apart: the failing order is retried for about 6 s.
    let options = StackOptions {
        retry_attempts: 3,
        retry_backoff_ms: 2_000,
        ..StackOptions::default()
    };
    let Some(stack) = Stack::spawn(kind, DbKind::Sqlite, options).await else {
        return;
    };
    let cancel_me = stack.post_order(1, &[("ABC-002", 1)]).await;
    assert_eq!(stack.settled_order(cancel_me).await["status"], "CONFIRMED");
    let failing = stack.post_order(2, &[("FAIL", 1)]).await;
    // The failing order's partition is set aside and reported while it is retried.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let waiting = loop {
        let waiting = waiting_partitions(&stack, &stack.inventory_url).await;
        if !waiting.is_empty() {
            break waiting;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no partition set aside"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(waiting[0]["consumer"], INVENTORY_CONSUMER);
    assert_eq!(waiting[0]["topic"], stack.topics().order_created());
    assert!(waiting[0]["error"]
        .as_str()
        .unwrap()
        .contains("SimulatedFailure"));
    // Meanwhile orders on the other partitions are decided, and a cancel (another topic)
    // is applied: stock released and the order shows it. Orders behind the failing one on
    // its partition wait for it: per-partition (so per-key) order is kept.
    let failing_partition = support::java_partition(failing.to_string().as_bytes(), 3);
    let mut behind = Vec::new();
    let mut others = Vec::new();
    for user in 0..8 {
        let id = stack.post_order(100 + user, &[("ABC-001", 1)]).await;
        match support::java_partition(id.to_string().as_bytes(), 3) == failing_partition {
            true => behind.push(id),
            false => others.push(id),
        }
    }
    assert!(
        !others.is_empty() && !behind.is_empty(),
        "{others:?} {behind:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    for id in &others {
        while stack.order(*id).await["status"] != "CONFIRMED" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {id} on another partition waited for the failing order"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let cancelled = stack
        .http
        .post(format!("{}/api/orders/{cancel_me}/cancel", stack.order_url))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
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
    for id in &behind {
        assert_eq!(
            stack.order(*id).await["status"],
            "PENDING",
            "order {id} overtook"
        );
    }
    // Then it is dead-lettered, the orders behind it are decided, its partition rejoins.
    assert_eq!(stack.settled_order(failing).await["status"], "FAILED");
    for id in &behind {
        assert_eq!(stack.settled_order(*id).await["status"], "CONFIRMED");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !waiting_partitions(&stack, &stack.inventory_url)
        .await
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "partition still waiting"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And an order after it on any partition is decided as usual.
    orders_are_decided(&stack, 3, Duration::from_secs(10)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_being_retried_holds_back_only_its_own_partition_on_tansu() {
    a_record_being_retried_holds_back_only_its_own_partition(BrokerKind::Tansu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_being_retried_holds_back_only_its_own_partition_on_apache_kafka() {
    a_record_being_retried_holds_back_only_its_own_partition(BrokerKind::Kafka).await;
}
