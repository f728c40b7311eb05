//! The lag, backlog and readiness gauges on `/metrics`, end to end: while inventory-service's
//! consumer holds an order it retries and orders keep arriving, its lag on `order.created`
//! rises above 0 (in seconds and in records) and in seconds grows with the time it is held; once that order is dead-lettered and the others
//! are applied, it is 0 again. Every service is ready meanwhile, and order-service's outbox
//! drains. On the embedded broker and on Apache Kafka.

use std::time::Duration;

use crate::support::{BrokerKind, DbKind, Stack, StackOptions};

const INVENTORY_CONSUMER: &str = "inventory-order-events";

/// The value of the gauge `series` (its name and labels as rendered) on the `/metrics` of
/// the service at `base` (None when it is not served).
async fn gauge(stack: &Stack, base: &str, series: &str) -> Option<f64> {
    crate::support::metrics_text(&stack.http, base)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

/// The largest value of `series` (a lag gauge) of inventory-service's consumer over the
/// partitions of `topic` (None while none is served).
async fn largest_lag(stack: &Stack, series: &str, topic: &str) -> Option<f64> {
    let text = crate::support::metrics_text(&stack.http, &stack.inventory_url).await;
    // Labels render sorted by name: consumer, partition, topic.
    let prefix = format!("{series}{{consumer=\"{INVENTORY_CONSUMER}\",partition=\"");
    let topic = format!(",topic=\"{topic}\"}}");
    text.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter(|rest| rest.contains(&topic))
        .map(|rest| rest.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .reduce(f64::max)
}

/// Waits until inventory-service's consumer is caught up on every partition of `topic`
/// (both lag gauges served, and 0), for at most `within`.
async fn caught_up_within(stack: &Stack, topic: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seconds = largest_lag(stack, "openorder_consumer_lag_seconds", topic).await;
        let records = largest_lag(stack, "openorder_consumer_lag_records", topic).await;
        if seconds == Some(0.0) && records == Some(0.0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lag on {topic} still {seconds:?} s, {records:?} records after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Posts an order every half second until the lag in seconds on `topic` reads a second or
/// more (within 20 s) while order `failing` is retried; returns the orders posted.
async fn lag_reaches_a_second_while_orders_arrive(
    stack: &Stack,
    topic: &str,
    failing: i64,
) -> Vec<i64> {
    let mut others = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        others.push(stack.post_order(3, &[("ABC-001", 1)]).await);
        let seconds = largest_lag(stack, "openorder_consumer_lag_seconds", topic).await;
        if seconds.is_some_and(|s| s >= 1.0) {
            return others;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lag in seconds on {topic} stayed {seconds:?} while order {failing} was retried"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn lag_in_seconds_rises_while_a_record_is_held_and_returns_to_zero_once_it_drains(
    kind: BrokerKind,
) {
    // Four tries, 2, 4 and 8 s apart (±20 %): the failing order is held for 11 s at least,
    // more than two samples of the gauges (every 5 s).
    let options = StackOptions {
        retry_attempts: 4,
        retry_backoff_ms: 2_000,
        ..StackOptions::default()
    };
    let Some(stack) = Stack::spawn(kind, DbKind::Sqlite, options).await else {
        return;
    };
    let topic = stack.topics().order_created();
    let warm = stack.post_order(1, &[("ABC-001", 1)]).await;
    assert_eq!(stack.settled_order(warm).await["status"], "CONFIRMED");
    caught_up_within(&stack, &topic, Duration::from_secs(20)).await;

    // An order that fails every try is retried while orders keep arriving. A sample taken
    // while it is held dates the lag by its timestamp: at least a second old by the second
    // sample, which no order applied at once reaches.
    let posted = tokio::time::Instant::now();
    let failing = stack.post_order(2, &[("FAIL", 1)]).await;
    let mut others = lag_reaches_a_second_while_orders_arrive(&stack, &topic, failing).await;
    // It grows with the time the record is held: orders keep arriving every half second
    // until it has been held 9 s (its fourth try comes 11 s after its first at the
    // earliest), and the gauge then reads that long, less the time since its last sample
    // (5 s apart, plus a pass that may take up to 2 s), and never more.
    while posted.elapsed() < Duration::from_secs(9) {
        others.push(stack.post_order(3, &[("ABC-001", 1)]).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let held = posted.elapsed().as_secs_f64();
    let seconds = largest_lag(&stack, "openorder_consumer_lag_seconds", &topic)
        .await
        .unwrap_or(0.0);
    assert!(
        seconds >= held - 7.5 && seconds <= held + 1.0,
        "lag in seconds on {topic} is {seconds} s with order {failing} held {held:.1} s"
    );
    let records = largest_lag(&stack, "openorder_consumer_lag_records", &topic).await;
    assert!(
        records.is_some_and(|r| r >= 1.0),
        "the held record is behind in records too: {records:?}"
    );
    assert_eq!(
        stack.order(failing).await["status"],
        "PENDING",
        "the failing order is still being retried"
    );

    // It is dead-lettered (FAILED) and the orders around it were decided: caught up again.
    assert_eq!(stack.settled_order(failing).await["status"], "FAILED");
    for id in &others {
        assert_eq!(stack.settled_order(*id).await["status"], "CONFIRMED");
    }
    caught_up_within(&stack, &topic, Duration::from_secs(20)).await;

    // Every service is ready, and order-service's outbox has drained.
    for base in [
        &stack.order_url,
        &stack.inventory_url,
        &stack.notification_url,
    ] {
        assert_eq!(
            gauge(&stack, base, "openorder_ready").await,
            Some(1.0),
            "{base}"
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows = gauge(&stack, &stack.order_url, "openorder_outbox_rows").await;
        let age = gauge(
            &stack,
            &stack.order_url,
            "openorder_outbox_oldest_age_seconds",
        )
        .await;
        if rows == Some(0.0) && age == Some(0.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order-service's outbox: {rows:?} rows, the oldest {age:?} s old"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_in_seconds_rises_while_a_record_is_held_and_returns_to_zero_once_it_drains_on_tansu() {
    lag_in_seconds_rises_while_a_record_is_held_and_returns_to_zero_once_it_drains(
        BrokerKind::Tansu,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_in_seconds_rises_while_a_record_is_held_and_returns_to_zero_once_it_drains_on_apache_kafka(
) {
    lag_in_seconds_rises_while_a_record_is_held_and_returns_to_zero_once_it_drains(
        BrokerKind::Kafka,
    )
    .await;
}
