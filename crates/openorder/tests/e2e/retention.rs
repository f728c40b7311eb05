//! Retention with windows of seconds, on SQLite and on PostgreSQL: inside its window an
//! event redelivered is still applied once and an Idempotency-Key replay still replays;
//! past it the rows are pruned (and counted), so a key used again makes a new order, as
//! documented, and the order's notifications are gone.

use std::time::Duration;

use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use platform::retention::RetentionArgs;
use serde_json::{json, Value};

async fn post_with_key(stack: &Stack, key: &str, sku: &str) -> (u16, i64) {
    let response = stack
        .http
        .post(format!("{}/api/orders", stack.order_url))
        .header("Idempotency-Key", key)
        .json(&json!({"userId": 42, "items": [{"sku": sku, "qty": 1}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["orderId"].as_i64().unwrap_or(-1))
}

/// Waits (at most 60 s) until `service`'s consumers have read everything.
async fn caught_up(stack: &Stack, service: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status: Value = stack.get_json(format!("{service}/admin/status")).await;
        let behind: i64 = status["consumers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["partitions"].as_array().unwrap().iter())
            .map(|p| p["lag"].as_i64().unwrap())
            .sum();
        if behind == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {behind} behind: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most 60 s) until `service` has pruned rows of `table`.
async fn pruned(stack: &Stack, service: &str, table: &str) {
    let series = format!("openorder_rows_pruned_total{{table=\"{table}\"}}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stack.metric(service, &series).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service} pruned no {table} in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn retention_keeps_what_its_window_holds_and_prunes_the_rest(db: DbKind) {
    // Dedupe marks long enough for the copy below to arrive inside their window.
    let options = StackOptions {
        retention: RetentionArgs {
            retain_dedupe: Duration::from_secs(10),
            retain_idempotency_keys: Duration::from_secs(3),
            retain_notifications: Duration::from_secs(3),
            prune_every: Duration::from_millis(500),
            ..Default::default()
        },
        ..Default::default()
    };
    let Some(stack) = Stack::spawn(BrokerKind::Tansu, db, options).await else {
        return;
    };
    stack.set_stock("RET-1", 100).await;

    // Inside the window: the key replays.
    let (status, id) = post_with_key(&stack, "retention-key", "RET-1").await;
    assert_eq!(status, 202);
    assert_eq!(
        post_with_key(&stack, "retention-key", "RET-1").await.1,
        id,
        "a replay inside the window gives the same order"
    );
    assert_eq!(stack.settled_order(id).await["status"], "CONFIRMED");
    stack.wait_notifications(id).await;

    // Inside the window: the order's event, delivered again, is applied once.
    let topic = stack.topics().order_created();
    let record = stack.wait_record(&topic, &id.to_string()).await;
    stack.produce_again(&topic, &id.to_string(), &record).await;
    caught_up(&stack, &stack.inventory_url).await;
    assert_eq!(stack.stock("RET-1").await["available"], 99, "applied once");

    // Past the window: pruned, and counted.
    pruned(&stack, &stack.inventory_url, "processed_events").await;
    pruned(&stack, &stack.order_url, "idempotency_keys").await;
    pruned(&stack, &stack.notification_url, "notifications").await;
    let (status, again) = post_with_key(&stack, "retention-key", "RET-1").await;
    assert_eq!(status, 202);
    assert_ne!(
        again, id,
        "a key used again after its window makes a new order"
    );
    assert!(
        stack.notifications(id).await.is_empty(),
        "the old order's notifications are pruned"
    );
    assert_eq!(
        stack.order(id).await["status"],
        "CONFIRMED",
        "orders are kept"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_retention_keeps_what_its_window_holds_and_prunes_the_rest() {
    retention_keeps_what_its_window_holds_and_prunes_the_rest(DbKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_retention_keeps_what_its_window_holds_and_prunes_the_rest() {
    retention_keeps_what_its_window_holds_and_prunes_the_rest(DbKind::Postgres).await;
}

/// The configuration `topic` has on the broker, entry by entry.
async fn topic_config(stack: &Stack, topic: &str) -> std::collections::BTreeMap<String, String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        platform::kafka::base(&stack.kafka.broker, "retention-test")
            .unwrap()
            .create()
            .unwrap();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
        .await
        .unwrap();
    let resource = results
        .into_iter()
        .next()
        .unwrap()
        .unwrap_or_else(|err| panic!("describing {topic}: {err:?}"));
    resource
        .entries
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect()
}

async fn the_topics_the_services_create_carry_their_retention_and_segment_roll(broker: BrokerKind) {
    let Some(stack) = Stack::spawn(broker, DbKind::Sqlite, StackOptions::default()).await else {
        return;
    };
    let topics = stack.topics();
    for (name, kept) in [
        (
            contracts::topics::ORDER_CREATED,
            Duration::from_secs(7 * 86_400),
        ),
        (
            contracts::topics::ORDER_CREATED_DLT,
            Duration::from_secs(14 * 86_400),
        ),
        // The parking lot: records that failed again after a replay wait for a person.
        ("order.created.PARKED", Duration::from_secs(30 * 86_400)),
    ] {
        let topic = topics.name(name);
        let config = topic_config(&stack, &topic).await;
        let entry = |key: &str| config.get(key).map(String::as_str);
        assert_eq!(
            entry("cleanup.policy"),
            Some("delete"),
            "{topic}: {config:?}"
        );
        assert_eq!(
            entry("retention.ms"),
            Some(kept.as_millis().to_string().as_str()),
            "{topic}: {config:?}"
        );
        // A quarter of the retention: a record outlives its window by at most that.
        assert_eq!(
            entry("segment.ms"),
            Some((kept / 4).as_millis().to_string().as_str()),
            "{topic}: {config:?}"
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topics_the_services_create_on_the_embedded_broker_carry_their_retention_and_segment_roll(
) {
    the_topics_the_services_create_carry_their_retention_and_segment_roll(BrokerKind::Tansu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topics_the_services_create_on_kafka_carry_their_retention_and_segment_roll() {
    the_topics_the_services_create_carry_their_retention_and_segment_roll(BrokerKind::Kafka).await;
}
