//! PENDING orders: how many are stuck and the oldest's age (the gauges), the list of the
//! stuck ones, the count of orders by status, and the expiry of those PENDING too long.

use chrono::Utc;
use contracts::lifecycle::{self, Trigger};
use contracts::Topics;
use platform::db::Database;
use platform::outbox::Outgoing;
use sqlx::Row;

use super::{parse_status, status_list, TIMEOUT};
use crate::domain::OrderStatus;
use crate::waits::Waits;

/// `CREATE INDEX … WHERE status = 'PENDING'` ([`SCHEMA`](super::SCHEMA)) serves only queries
/// that say so.
const PENDING: &str = "'PENDING'";

/// Cancels, with the reason [`TIMEOUT`], up to `limit` orders PENDING since before
/// `cutoff` (RFC 3339 text, as `created_at` is kept), oldest first, as the lifecycle's
/// [`Trigger::Expired`] moves them, each with its `order.cancelled` event, in one
/// transaction; returns the orders it expired. Instances that expire at once each move an
/// order at most once: the UPDATE is conditional, and only the rows it moved get events.
pub async fn expire_pending(
    db: &Database,
    topics: &Topics,
    cutoff: &str,
    limit: i64,
    waits: &Waits,
) -> Result<Vec<i64>, sqlx::Error> {
    debug_assert_eq!(format!("'{}'", OrderStatus::Pending.as_str()), PENDING);
    let sources = status_list(&lifecycle::sources(Trigger::Expired));
    let sql = format!(
        "UPDATE orders SET status = $1, reason = $2, updated_at = $3
         WHERE id IN (SELECT id FROM orders WHERE status = {PENDING} AND created_at < $4 ORDER BY created_at LIMIT $5)
           AND status IN ({sources})
         RETURNING id, user_id"
    );
    let mut tx = db.begin().await?;
    let rows = sqlx::query(&sql)
        .bind(lifecycle::target(Trigger::Expired).as_str())
        .bind(TIMEOUT)
        .bind(platform::now_text())
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok(Vec::new());
    }
    let mut expired = Vec::with_capacity(rows.len());
    let mut events = Vec::with_capacity(rows.len());
    let topic = topics.order_cancelled();
    for row in &rows {
        let order_id: i64 = row.try_get("id")?;
        let event = crate::domain::cancelled(order_id, row.try_get("user_id")?);
        events.push(Outgoing::new(&topic, &event));
        expired.push(order_id);
    }
    platform::outbox::enqueue_all(&mut tx, &events).await?;
    waits.announce(&mut tx, &expired).await?;
    tx.commit().await?;
    Ok(expired)
}

/// The PENDING orders: how many were placed before `cutoff` (stuck), and when the oldest
/// was placed (None: none is PENDING). One read of the partial index.
pub async fn pending_summary(
    db: &Database,
    cutoff: &str,
) -> Result<(i64, Option<String>), sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT COUNT(CASE WHEN created_at < $1 THEN 1 END) AS stuck, MIN(created_at) AS oldest
         FROM orders WHERE status = {PENDING}"
    ))
    .bind(cutoff)
    .fetch_one(&db.pool)
    .await?;
    Ok((row.try_get("stuck")?, row.try_get("oldest")?))
}

/// How many orders are in each status of the lifecycle, every one of
/// [`OrderStatus::ALL`] in its order (0 when no order is in it), and how many PENDING ones
/// were placed before `cutoff` (stuck, as [`pending_summary`] counts them). One statement,
/// `GROUP BY status`, the same on SQLite and PostgreSQL; it reads the whole table (no index
/// holds every status), so it is for an operator's page, not for polling. A status this
/// version does not know is an error, as when an order is read ([`get_order`](super::get_order)).
pub async fn count_by_status(
    db: &Database,
    cutoff: &str,
) -> Result<(Vec<(OrderStatus, i64)>, i64), sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT status, COUNT(*) AS orders,
                COUNT(CASE WHEN status = {PENDING} AND created_at < $1 THEN 1 END) AS stuck
         FROM orders GROUP BY status"
    ))
    .bind(cutoff)
    .fetch_all(&db.pool)
    .await?;
    let mut counts: Vec<(OrderStatus, i64)> = OrderStatus::ALL
        .into_iter()
        .map(|status| (status, 0))
        .collect();
    let mut stuck = 0;
    for row in &rows {
        let status: String = row.try_get("status")?;
        let status = parse_status(&status)?;
        let orders: i64 = row.try_get("orders")?;
        if let Some((_, count)) = counts.iter_mut().find(|(s, _)| *s == status) {
            *count += orders;
        }
        let stuck_here: i64 = row.try_get("stuck")?;
        stuck += stuck_here;
    }
    Ok((counts, stuck))
}

// An order PENDING longer than `--stuck-after`, as `/admin/orders/stuck` lists it: in
// `contracts::api`, where the console reads it too.
pub use contracts::api::StuckOrder;

/// Whole seconds from `created_at` (RFC 3339) to now; 0 if it does not parse.
pub fn age_seconds(created_at: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(created_at)
        .map(|at| (Utc::now() - at.with_timezone(&Utc)).num_seconds().max(0))
        .unwrap_or(0)
}

/// Up to `limit` orders PENDING since before `cutoff`, oldest first, and whether more are.
pub async fn stuck_orders(
    db: &Database,
    cutoff: &str,
    limit: i64,
) -> Result<(Vec<StuckOrder>, bool), sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT id, user_id, created_at FROM orders
         WHERE status = {PENDING} AND created_at < $1 ORDER BY created_at, id LIMIT $2"
    ))
    .bind(cutoff)
    .bind(limit + 1)
    .fetch_all(&db.pool)
    .await?;
    let has_more = rows.len() as i64 > limit;
    let orders = rows
        .iter()
        .take(limit as usize)
        .map(|row| -> Result<StuckOrder, sqlx::Error> {
            let created_at: String = row.try_get("created_at")?;
            Ok(StuckOrder {
                order_id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                age_seconds: age_seconds(&created_at),
                created_at,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((orders, has_more))
}
