//! order-service's database: orders, their items, processed event ids, and the outbox.
//!
//! The queries by what they serve, each re-exported here:
//! - `intake`: placing orders (idempotency keys, group commit, ids drawn ahead);
//! - `outcomes`: moving orders as the lifecycle's table allows (decisions, cancels,
//!   released stock);
//! - `reads`: an order, and a user's orders;
//! - `stuck`: PENDING orders: the gauges, the admin list, the counts by status, expiry.

use platform::db::Schema;

use crate::domain::OrderStatus;

pub const SCHEMA: Schema = Schema(&[
    "CREATE TABLE IF NOT EXISTS orders (
        id {id},
        user_id {int} NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        shortages TEXT,
        error TEXT,
        released_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, id)",
    "CREATE TABLE IF NOT EXISTS order_items (
        order_id {int} NOT NULL REFERENCES orders (id),
        line {int} NOT NULL,
        sku TEXT NOT NULL,
        qty {int} NOT NULL,
        PRIMARY KEY (order_id, line)
    )",
    "CREATE TABLE IF NOT EXISTS idempotency_keys (
        key TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        order_id {int} NOT NULL,
        created_at TEXT NOT NULL
    )",
    platform::dedupe::TABLE,
    platform::outbox::TABLE,
    platform::dedupe::DEAD_LETTERED_TABLE,
    // For pruning keys by age (platform::retention).
    "CREATE INDEX IF NOT EXISTS idempotency_keys_by_time ON idempotency_keys (created_at)",
    // What was applied under each event id, and dead-lettered under it (platform::dedupe).
    platform::dedupe::BODY_HASH_COLUMN,
    platform::dedupe::DEAD_LETTERED_BODY_HASH_COLUMN,
    // PENDING orders by age, for the stuck-order gauges, `/admin/orders/stuck` and expiry
    // ([`crate::stuck`]): a partial index holds only the orders in flight, so it stays
    // small, and those reads cost a few index pages whatever the table's size. (Queries
    // must say `status = 'PENDING'` literally for SQLite to use it.)
    "CREATE INDEX IF NOT EXISTS orders_pending_by_age ON orders (created_at) WHERE status = 'PENDING'",
]);

/// `reason` of an order cancelled because it stayed PENDING past `--expire-pending-after`.
pub const TIMEOUT: &str = "TIMEOUT";

// An order as the API shows it: in `contracts::api`, where the console reads it too.
pub use contracts::api::OrderView;

mod intake;
mod outcomes;
mod reads;
mod stuck;

pub use intake::{create_orders_alone, create_orders_in, Created, IdReserve, NewOrder};
pub use outcomes::{
    apply_outcome, apply_outcome_to, cancel_order, mark_released, status_of, CancelOutcome, Outcome,
};
pub use reads::{get_order, list_orders};
pub use stuck::{
    age_seconds, count_by_status, expire_pending, pending_summary, stuck_orders, StuckOrder,
};

/// `'A', 'B'` for SQL: the names are our own constants, so inlining them is safe. With no
/// status, `''`: `IN ('')` matches nothing.
fn status_list(statuses: &[OrderStatus]) -> String {
    if statuses.is_empty() {
        return "''".to_string();
    }
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A status as stored; one this version does not know is a decode error.
fn parse_status(status: &str) -> Result<OrderStatus, sqlx::Error> {
    OrderStatus::parse(status)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown status {status}").into()))
}
