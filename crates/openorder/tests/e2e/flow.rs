//! The whole flow, end to end, on real brokers and databases: every combination of
//! {embedded Tansu, Apache Kafka} × {SQLite, PostgreSQL} runs the same scenarios on one
//! fresh stack (fresh topics, groups and databases), and `openorder up` is restarted with
//! its state kept.

use std::time::Duration;

use crate::support;
use crate::support::{BrokerKind, DbKind, Stack, StackOptions, UpPorts, UpProcess};
use contracts::headers;
use platform::dead_letters::write::be_int;

fn unique_sku(label: &str) -> String {
    format!(
        "{label}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

async fn the_seed_order_is_confirmed_and_notified_once(stack: &Stack) {
    let before = stack.stock("ABC-001").await["available"].as_i64().unwrap();
    let id = stack.post_order(42, &[("ABC-001", 2)]).await;
    let order = stack.settled_order(id).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    let after = stack.stock("ABC-001").await;
    assert_eq!(after["available"].as_i64().unwrap(), before - 2);
    let notes = stack.wait_notifications(id).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["eventType"], "inventory.reserved");
    assert_eq!(notes[0]["deliveries"][0]["channel"], "log", "{notes:?}");

    let listed: serde_json::Value = stack
        .http
        .get(format!("{}/api/orders?userId=42", stack.order_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["orders"][0]["orderId"], id, "newest first");

    // Each request was timed under its route as declared, not under its path.
    let posted = r#"openorder_http_request_duration_seconds_count{method="POST",route="/api/orders",status="202"}"#;
    let read = r#"openorder_http_request_duration_seconds_count{method="GET",route="/api/orders/{id}",status="200"}"#;
    assert!(stack.metric(&stack.order_url, posted).await >= 1);
    assert!(stack.metric(&stack.order_url, read).await >= 1);
}

async fn an_out_of_stock_order_is_rejected_with_its_shortage(stack: &Stack) {
    let id = stack.post_order(7, &[("OUT-001", 1)]).await;
    let order = stack.settled_order(id).await;
    assert_eq!(order["status"], "REJECTED", "{order}");
    assert_eq!(order["reason"], "OUT_OF_STOCK");
    assert_eq!(
        order["shortages"],
        serde_json::json!([{"sku": "OUT-001", "requested": 1, "available": 0}])
    );
    let notes = stack.wait_notifications(id).await;
    assert_eq!(notes[0]["eventType"], "inventory.rejected");
}

async fn a_multi_item_order_short_on_one_item_takes_nothing(stack: &Stack) {
    let plenty = unique_sku("PLENTY");
    let scarce = unique_sku("SCARCE");
    stack.set_stock(&plenty, 10).await;
    stack.set_stock(&scarce, 1).await;
    let id = stack.post_order(7, &[(&plenty, 3), (&scarce, 2)]).await;
    let order = stack.settled_order(id).await;
    assert_eq!(order["status"], "REJECTED", "{order}");
    assert_eq!(
        order["shortages"],
        serde_json::json!([{"sku": scarce, "requested": 2, "available": 1}])
    );
    let untouched = stack.stock(&plenty).await;
    assert_eq!(
        (
            untouched["available"].as_i64(),
            untouched["reserved"].as_i64()
        ),
        (Some(10), Some(0))
    );
    let scarce_now = stack.stock(&scarce).await;
    assert_eq!(scarce_now["available"], 1);
}

async fn a_fail_order_is_tried_three_times_then_dead_lettered_and_failed(stack: &Stack) {
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

    let one = stack
        .records_with_key(
            &topics.order_created_dlt(),
            &id.to_string(),
            Duration::from_secs(2),
            2,
        )
        .await;
    assert_eq!(one.len(), 1, "dead-lettered exactly once");
}

async fn a_flaky_order_is_retried_and_confirmed_with_nothing_dead_lettered(stack: &Stack) {
    let topics = stack.topics();
    stack.set_stock("FLAKY", 5).await;
    let id = stack.post_order(9, &[("ABC-001", 1), ("FLAKY", 1)]).await;
    let order = stack.settled_order(id).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    let dead = stack
        .records_with_key(
            &topics.order_created_dlt(),
            &id.to_string(),
            Duration::from_secs(2),
            1,
        )
        .await;
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

async fn cancel(stack: &Stack, id: i64) -> (u16, serde_json::Value) {
    let response = stack
        .http
        .post(format!("{}/api/orders/{id}/cancel", stack.order_url))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn wait_released(stack: &Stack, id: i64) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let order = stack.order(id).await;
        if order["releasedAt"].is_string() {
            return order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} not released: {order}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_cancelled_order_gives_its_stock_back_exactly_once(stack: &Stack) {
    let sku = unique_sku("CANCEL");
    stack.set_stock(&sku, 10).await;
    let id = stack.post_order(11, &[(&sku, 4)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "CONFIRMED");
    assert_eq!(stack.stock(&sku).await["available"], 6);

    let (status, order) = cancel(stack, id).await;
    assert_eq!((status, order["status"].as_str()), (200, Some("CANCELLED")));
    let (status, order) = cancel(stack, id).await;
    assert_eq!(
        (status, order["status"].as_str()),
        (200, Some("CANCELLED")),
        "twice is a no-op"
    );
    wait_released(stack, id).await;
    let stock = stack.stock(&sku).await;
    assert_eq!(
        (stock["available"].as_i64(), stock["reserved"].as_i64()),
        (Some(10), Some(0))
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !stack
        .notifications(id)
        .await
        .iter()
        .any(|n| n["eventType"] == "inventory.released")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no release notification"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let released = stack
        .records_with_key(
            &stack.topics().inventory_released(),
            &id.to_string(),
            Duration::from_secs(2),
            2,
        )
        .await;
    assert_eq!(released.len(), 1, "released exactly once");

    let rejected = stack.post_order(11, &[("OUT-001", 1)]).await;
    assert_eq!(stack.settled_order(rejected).await["status"], "REJECTED");
    let (status, problem) = cancel(stack, rejected).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["type"], "/problems/order-not-cancellable");
}

async fn a_cancel_racing_the_reservation_still_ends_with_the_stock_released(stack: &Stack) {
    // FLAKY fails the first attempt, so the order is still PENDING when it is cancelled and
    // is reserved afterwards; the cancellation must then release it.
    let sku = unique_sku("RACE");
    stack.set_stock(&sku, 5).await;
    stack.set_stock("FLAKY", 100).await;
    let id = stack.post_order(12, &[(&sku, 2), ("FLAKY", 1)]).await;
    let (status, order) = cancel(stack, id).await;
    assert_eq!(
        (status, order["status"].as_str()),
        (200, Some("CANCELLED")),
        "{order}"
    );
    wait_released(stack, id).await;
    // The order's own record, set aside after FLAKY's first failure, may be applied after
    // the release: sentinels behind it, followed through to order-service, show that what
    // inventory-service decided on it (nothing: the order is cancelled) reached everyone.
    stack.decision_sentinel(&id.to_string()).await;
    let stock = stack.stock(&sku).await;
    assert_eq!(
        (stock["available"].as_i64(), stock["reserved"].as_i64()),
        (Some(5), Some(0)),
        "{stock}"
    );
    assert_eq!(
        stack.order(id).await["status"],
        "CANCELLED",
        "a late reservation does not revive it"
    );
}

async fn concurrent_retries_with_one_idempotency_key_make_one_order(stack: &Stack) {
    let key = format!("key-{}", uuid::Uuid::new_v4());
    let body = serde_json::json!({"userId": 77, "items": [{"sku": "ABC-001", "qty": 1}]});
    let posts = (0..10).map(|_| {
        stack
            .http
            .post(format!("{}/api/orders", stack.order_url))
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
    });
    let mut ids = Vec::new();
    for response in futures_join(posts.collect()).await {
        let response = response.unwrap();
        assert_eq!(response.status(), 202);
        ids.push(
            response.json::<serde_json::Value>().await.unwrap()["orderId"]
                .as_i64()
                .unwrap(),
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order for one key: {ids:?}");
}

/// Runs futures concurrently on the test's runtime and collects their results in order.
async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn status_shows_no_backlog_and_no_lag_once_quiet(stack: &Stack) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut quiet = true;
        let mut seen_groups = Vec::new();
        for base in [
            &stack.order_url,
            &stack.inventory_url,
            &stack.notification_url,
        ] {
            let status: serde_json::Value = stack
                .http
                .get(format!("{base}/admin/status"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            quiet &= status["outbox"]["pending"] == 0;
            for consumer in status["consumers"].as_array().unwrap() {
                seen_groups.push(consumer["group"].as_str().unwrap().to_string());
                quiet &= consumer["error"].is_null();
                quiet &= consumer["partitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|p| p["lag"] == 0);
            }
        }
        assert_eq!(seen_groups.len(), 4, "{seen_groups:?}");
        if quiet {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still a backlog or lag after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn order_created_json(order_id: i64, event_id: uuid::Uuid, sku: &str, qty: i64) -> Vec<u8> {
    serde_json::to_vec(&contracts::OrderCreated {
        event_id,
        order_id,
        user_id: 5,
        items: vec![contracts::LineItem {
            sku: sku.to_string(),
            qty,
        }],
        created_at: chrono::Utc::now(),
        contact: None,
    })
    .unwrap()
}

fn synthetic_order_id() -> i64 {
    900_000_000 + rand::random_range(0..99_999_999)
}

async fn a_malformed_record_is_dead_lettered_at_once_and_the_partition_flows_on(stack: &Stack) {
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
    let sku = unique_sku("NEXT");
    stack.set_stock(&sku, 5).await;
    let next = order_created_json(key, uuid::Uuid::new_v4(), &sku, 1);
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

async fn a_poison_record_in_a_batch_fails_alone_and_the_rest_is_applied_once(stack: &Stack) {
    let topics = stack.topics();
    let key = synthetic_order_id().to_string();
    let sku = unique_sku("BATCH");
    stack.set_stock(&sku, 100).await;
    // Ten orders, each keyed by its own id (as the contract says), all on the partition of
    // the poison record's key.
    let orders: Vec<i64> = (0..10).map(|_| stack.order_id_beside(&key)).collect();
    let mut records: Vec<(String, Vec<u8>)> = orders
        .iter()
        .map(|&id| {
            let value = order_created_json(id, uuid::Uuid::new_v4(), &sku, 1);
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
    let dead = stack
        .records_with_key(&topics.order_created_dlt(), &key, Duration::from_secs(3), 3)
        .await;
    let mut groups: Vec<String> = dead
        .iter()
        .map(|d| {
            assert_eq!(d.payload, b"{poison");
            d.header_text(headers::DLT_ORIGINAL_CONSUMER_GROUP)
                .unwrap_or_default()
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            topics.group(inventory_service::GROUP),
            topics.group(notification_service::GROUP)
        ]
    );
    let after = stack.metric(&stack.inventory_url, rolled_back).await;
    assert!(
        after > before,
        "the eleven records came as one batch, which the poison record rolled back"
    );
}

async fn a_record_delivered_twice_reserves_once_and_notifies_once(stack: &Stack) {
    let topics = stack.topics();
    let order_id = synthetic_order_id();
    let sku = unique_sku("TWICE");
    stack.set_stock(&sku, 10).await;
    let event_id = uuid::Uuid::new_v4();
    let record = order_created_json(order_id, event_id, &sku, 2);
    let key = order_id.to_string();
    stack
        .produce_keyed(&topics.order_created(), &key, &record, &[])
        .await;
    stack
        .produce_keyed(&topics.order_created(), &key, &record, &[])
        .await;
    // The same order again under a new event id (a republished copy): still one decision.
    let copy = order_created_json(order_id, uuid::Uuid::new_v4(), &sku, 2);
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

async fn the_order_flow_holds(broker: BrokerKind, db: DbKind) {
    let Some(stack) = Stack::spawn(broker, db, StackOptions::default()).await else {
        eprintln!("skipped: {broker:?} with {db:?} (OPENORDER_TEST_SKIP_EXTERNAL=1)");
        return;
    };
    the_seed_order_is_confirmed_and_notified_once(&stack).await;
    an_out_of_stock_order_is_rejected_with_its_shortage(&stack).await;
    a_multi_item_order_short_on_one_item_takes_nothing(&stack).await;
    a_fail_order_is_tried_three_times_then_dead_lettered_and_failed(&stack).await;
    a_flaky_order_is_retried_and_confirmed_with_nothing_dead_lettered(&stack).await;
    a_malformed_record_is_dead_lettered_at_once_and_the_partition_flows_on(&stack).await;
    a_poison_record_in_a_batch_fails_alone_and_the_rest_is_applied_once(&stack).await;
    a_record_delivered_twice_reserves_once_and_notifies_once(&stack).await;
    concurrent_retries_with_one_idempotency_key_make_one_order(&stack).await;
    a_cancelled_order_gives_its_stock_back_exactly_once(&stack).await;
    a_cancel_racing_the_reservation_still_ends_with_the_stock_released(&stack).await;
    status_shows_no_backlog_and_no_lag_once_quiet(&stack).await;
    stack.stop().await;
}

crate::backends!(the_order_flow_holds {
    the_order_flow_holds_on_tansu_with_sqlite => (Tansu, Sqlite),
    the_order_flow_holds_on_tansu_with_postgres => (Tansu, Postgres),
    the_order_flow_holds_on_apache_kafka_with_postgres => (Kafka, Postgres),
    the_order_flow_holds_on_apache_kafka_with_sqlite => (Kafka, Sqlite),
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_accepted_while_the_broker_is_down_is_confirmed_when_it_returns() {
    let mut stack = Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, StackOptions::default())
        .await
        .expect("the embedded broker needs nothing external");
    let warm = stack.post_order(42, &[("ABC-001", 1)]).await;
    assert_eq!(stack.settled_order(warm).await["status"], "CONFIRMED");

    stack.broker.kill();
    let ready = stack
        .http
        .get(format!("{}/health/ready", stack.order_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "not ready without a broker");
    let id = stack.post_order(42, &[("ABC-001", 2)]).await;
    // No sentinel can pass a broker that is gone, so this one wait is bounded by time: a
    // GET that waits for the order's decision (`Prefer: wait`) answers at once if it is
    // decided, and still PENDING after 2 s.
    let waited: serde_json::Value = stack
        .http
        .get(format!("{}/api/orders/{id}", stack.order_url))
        .header("prefer", "wait=2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(waited["status"], "PENDING", "{waited}");

    stack.broker.restart().await;
    let order = stack.settled_order(id).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(stack.wait_notifications(id).await.len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_up_keeps_orders_stock_notifications_and_broker_data() {
    let data_dir = support::temp_dir("up");
    let ports = UpPorts::free().expect("free ports");
    let http = reqwest::Client::new();

    let up = UpProcess::start(&data_dir, &ports).await;
    let id: i64 = {
        let response = http
            .post(format!("{}/api/orders", up.order_url))
            .json(&serde_json::json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 2}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        response.json::<serde_json::Value>().await.unwrap()["orderId"]
            .as_i64()
            .unwrap()
    };
    let get_json = |url: String| {
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    // Settled before the stop: CONFIRMED in order-service and notified.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let order = get_json(format!("{}/api/orders/{id}", up.order_url)).await;
        let notes = get_json(format!(
            "{}/api/notifications?orderId={id}",
            up.notification_url
        ))
        .await;
        if order["status"] == "CONFIRMED" && !notes.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} not settled in 60 s: {order}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Operator routes need the token `up` made in its data directory (readable by its
    // owner only); a fault switched off with it stays off after the restart.
    let token_file = data_dir.join("operator-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the token file is private: {mode:o}");
    let switch_off = || {
        http.put(format!("{}/admin/faults", up.inventory_url))
            .json(&serde_json::json!({"failSku": ""}))
    };
    let refused = switch_off().send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let refused = switch_off()
        .bearer_auth("oo_not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let switched = switch_off().bearer_auth(&token).send().await.unwrap();
    assert_eq!(switched.status(), 200);
    up.stop();

    let up = UpProcess::start(&data_dir, &ports).await;
    let order = get_json(format!("{}/api/orders/{id}", up.order_url)).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        token,
        "the token is kept across restarts"
    );
    let faults = http
        .get(format!("{}/admin/faults", up.inventory_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        faults,
        serde_json::json!({"failSku": "", "flakySku": "FLAKY"})
    );
    let stock = get_json(format!("{}/api/inventory/ABC-001", up.inventory_url)).await;
    assert_eq!(
        (stock["available"].as_i64(), stock["reserved"].as_i64()),
        (Some(98), Some(2))
    );
    // The broker kept its data and the consumer offsets: nothing is re-notified. And the
    // restarted system still takes orders: placed until one shares the first order's
    // partition (of as many as `up` makes), that one is a sentinel. notification-service
    // reads a partition of inventory.reserved in order, so once it has told the sentinel,
    // a replay of the first order's event would have been read before it.
    let partitions =
        platform::kafka::KafkaArgs::with_defaults(&format!("127.0.0.1:{}", ports.broker), "")
            .topic_partitions;
    let partition = support::java_partition(id.to_string().as_bytes(), partitions);
    let mut later = Vec::new();
    let sentinel = loop {
        let response = http
            .post(format!("{}/api/orders", up.order_url))
            .json(&serde_json::json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 1}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let next = response.json::<serde_json::Value>().await.unwrap()["orderId"]
            .as_i64()
            .unwrap();
        later.push(next);
        if support::java_partition(next.to_string().as_bytes(), partitions) == partition {
            break next;
        }
        assert!(
            later.len() < 50,
            "none of {later:?} is on partition {partition} of {partitions}"
        );
    };
    let second = later[0];
    assert!(second > id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for next in &later {
        loop {
            let order = get_json(format!("{}/api/orders/{next}", up.order_url)).await;
            if order["status"] == "CONFIRMED" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {next} after the restart not confirmed: {order}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    loop {
        let told = get_json(format!(
            "{}/api/notifications?orderId={sentinel}",
            up.notification_url
        ))
        .await;
        if !told.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sentinel order {sentinel} was not notified"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let notes = get_json(format!(
        "{}/api/notifications?orderId={id}",
        up.notification_url
    ))
    .await;
    assert_eq!(notes.as_array().unwrap().len(), 1, "{notes}");
    up.stop();
}
