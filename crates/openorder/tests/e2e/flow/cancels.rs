//! Cancellations: a cancelled order gives its stock back exactly once (a second cancel is
//! a no-op, a rejected order cannot be cancelled), and a cancel racing the reservation
//! still ends with the stock released.

use std::time::Duration;

use crate::support;
use crate::support::{DltRecord, Stack};

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

pub(super) async fn a_cancelled_order_gives_its_stock_back_exactly_once(stack: &Stack) {
    let sku = support::unique_sku("CANCEL");
    stack.set_stock(&sku, 10).await;
    let id = stack.post_order(11, &[(&sku, 4)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "CONFIRMED");
    assert_eq!(stack.stock(&sku).await["available"], 6);

    let (status, order) = stack.cancel_order(id).await;
    assert_eq!((status, order["status"].as_str()), (200, Some("CANCELLED")));
    let (status, order) = stack.cancel_order(id).await;
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
    let released = releases_of(stack, id).await;
    assert_eq!(released.len(), 1, "released exactly once");

    let rejected = stack.post_order(11, &[("OUT-001", 1)]).await;
    assert_eq!(stack.settled_order(rejected).await["status"], "REJECTED");
    let (status, problem) = stack.cancel_order(rejected).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["type"], "/problems/order-not-cancellable");
}

pub(super) async fn a_cancel_racing_the_reservation_still_ends_with_the_stock_released(
    stack: &Stack,
) {
    // FLAKY fails the first attempt, so the order is still PENDING when it is cancelled and
    // is reserved afterwards; the cancellation must then release it.
    let sku = support::unique_sku("RACE");
    stack.set_stock(&sku, 5).await;
    stack.set_stock("FLAKY", 100).await;
    let id = stack.post_order(12, &[(&sku, 2), ("FLAKY", 1)]).await;
    let (status, order) = stack.cancel_order(id).await;
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

/// Every `inventory.released` of order `id`, without a reading window: once order-service's
/// outbox is empty, each `order.cancelled` of the order is on its topic; once
/// inventory-service has committed past the last of them, it has released the order for
/// each (into its outbox); once that outbox is empty too, each release is on
/// `inventory.released`, which is read to its end.
async fn releases_of(stack: &Stack, id: i64) -> Vec<DltRecord> {
    let topics = stack.topics();
    let key = id.to_string();
    stack.outbox_drained(&stack.order_url).await;
    let cancels = stack
        .records_with_key_to_end(&topics.order_cancelled(), &key)
        .await;
    let last = cancels.last().expect("the order's order.cancelled");
    stack
        .wait_consumed(
            &stack.inventory_url,
            &topics.order_cancelled(),
            (last.partition, last.offset),
        )
        .await;
    stack.outbox_drained(&stack.inventory_url).await;
    stack
        .records_with_key_to_end(&topics.inventory_released(), &key)
        .await
}
