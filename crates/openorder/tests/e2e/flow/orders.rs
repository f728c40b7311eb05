//! Orders decided as they should be: the seed order confirmed and notified once (listed,
//! timed by route), an order out of stock rejected with its shortage, a multi-item order
//! short on one item taking nothing, concurrent retries with one idempotency key making
//! one order, and no backlog or lag once all is quiet.

use std::time::Duration;

use crate::support;
use crate::support::Stack;

pub(super) async fn the_seed_order_is_confirmed_and_notified_once(stack: &Stack) {
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
        .get_json(format!("{}/api/orders?userId=42", stack.order_url))
        .await;
    assert_eq!(listed["orders"][0]["orderId"], id, "newest first");

    // Each request was timed under its route as declared, not under its path.
    let posted = r#"openorder_http_request_duration_seconds_count{method="POST",route="/api/orders",status="202"}"#;
    let read = r#"openorder_http_request_duration_seconds_count{method="GET",route="/api/orders/{id}",status="200"}"#;
    assert!(stack.metric(&stack.order_url, posted).await >= 1);
    assert!(stack.metric(&stack.order_url, read).await >= 1);
}

pub(super) async fn an_out_of_stock_order_is_rejected_with_its_shortage(stack: &Stack) {
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

pub(super) async fn a_multi_item_order_short_on_one_item_takes_nothing(stack: &Stack) {
    let plenty = support::unique_sku("PLENTY");
    let scarce = support::unique_sku("SCARCE");
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

pub(super) async fn concurrent_retries_with_one_idempotency_key_make_one_order(stack: &Stack) {
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

pub(super) async fn status_shows_no_backlog_and_no_lag_once_quiet(stack: &Stack) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut quiet = true;
        let mut seen_groups = Vec::new();
        for base in [
            &stack.order_url,
            &stack.inventory_url,
            &stack.notification_url,
        ] {
            let status: serde_json::Value = stack.get_json(format!("{base}/admin/status")).await;
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
