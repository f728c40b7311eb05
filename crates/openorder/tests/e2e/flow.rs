//! The whole flow, end to end, on real brokers and databases: every combination of
//! {embedded Tansu, Apache Kafka} × {SQLite, PostgreSQL} runs the same scenarios on one
//! fresh stack (fresh topics, groups and databases), and `openorder up` is restarted with
//! its state kept.
//!
//! A module per part of the scenario: [`orders`], [`failures`] and [`cancels`] run in turn
//! on one stack per backend ([`the_order_flow_holds`]); [`restarts`] stops the broker or
//! `up` and starts them again.

mod cancels;
mod failures;
mod orders;
mod restarts;

use crate::support::{BrokerKind, DbKind, Stack, StackOptions};

/// A fresh order id (900,000,000 and up, never one order-service gives).
fn synthetic_order_id() -> i64 {
    900_000_000 + rand::random_range(0..99_999_999)
}

async fn the_order_flow_holds(broker: BrokerKind, db: DbKind) {
    let Some(stack) = Stack::spawn(broker, db, StackOptions::default()).await else {
        eprintln!("skipped: {broker:?} with {db:?} (OPENORDER_TEST_SKIP_EXTERNAL=1)");
        return;
    };
    orders::the_seed_order_is_confirmed_and_notified_once(&stack).await;
    orders::an_out_of_stock_order_is_rejected_with_its_shortage(&stack).await;
    orders::a_multi_item_order_short_on_one_item_takes_nothing(&stack).await;
    failures::a_fail_order_is_tried_three_times_then_dead_lettered_and_failed(&stack).await;
    failures::a_flaky_order_is_retried_and_confirmed_with_nothing_dead_lettered(&stack).await;
    failures::a_malformed_record_is_dead_lettered_at_once_and_the_partition_flows_on(&stack).await;
    failures::a_poison_record_in_a_batch_fails_alone_and_the_rest_is_applied_once(&stack).await;
    failures::a_record_delivered_twice_reserves_once_and_notifies_once(&stack).await;
    orders::concurrent_retries_with_one_idempotency_key_make_one_order(&stack).await;
    cancels::a_cancelled_order_gives_its_stock_back_exactly_once(&stack).await;
    cancels::a_cancel_racing_the_reservation_still_ends_with_the_stock_released(&stack).await;
    orders::status_shows_no_backlog_and_no_lag_once_quiet(&stack).await;
    stack.stop().await;
}

crate::backends!(the_order_flow_holds {
    the_order_flow_holds_on_tansu_with_sqlite => (Tansu, Sqlite),
    the_order_flow_holds_on_tansu_with_postgres => (Tansu, Postgres),
    the_order_flow_holds_on_apache_kafka_with_postgres => (Kafka, Postgres),
    the_order_flow_holds_on_apache_kafka_with_sqlite => (Kafka, Sqlite),
});
