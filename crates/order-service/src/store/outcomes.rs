//! Moving orders as the lifecycle's table allows: inventory's decisions and dead letters
//! ([`Outcome`]), a customer's cancel, and stock given back.

use std::collections::HashSet;

use contracts::lifecycle::{self, Trigger};
use contracts::{Shortage, Topics};
use platform::db::{placeholders, Database, Tx};
use sqlx::Row;

use super::{get_order, parse_status, status_list, OrderView};
use crate::domain::OrderStatus;
use crate::waits::Waits;

/// What an event says happened to an order, and what it tells about it.
pub struct Outcome {
    /// What moves the order, and from which statuses ([`lifecycle::sources`]).
    pub trigger: Trigger,
    pub reason: Option<String>,
    pub shortages: Option<Vec<Shortage>>,
    pub error: Option<String>,
}

impl Outcome {
    /// `trigger`, with no reason, shortages or error.
    pub fn of(trigger: Trigger) -> Self {
        Self {
            trigger,
            reason: None,
            shortages: None,
            error: None,
        }
    }

    /// The status the trigger moves an order to ([`lifecycle::target`]).
    pub fn status(&self) -> OrderStatus {
        lifecycle::target(self.trigger)
    }
}

/// Moves an order as `outcome` says if the lifecycle's table allows it; returns the status
/// it has now (None for an order this database does not know). One conditional UPDATE in
/// the usual case; the status is read only when the update did not apply (a late or
/// repeated event). Whoever waits for the order hears of the move at the commit ([`Waits`]).
pub async fn apply_outcome(
    tx: &mut Tx,
    order_id: i64,
    outcome: &Outcome,
    waits: &Waits,
) -> Result<Option<OrderStatus>, sqlx::Error> {
    if apply_outcome_to(tx, &[order_id], outcome, waits)
        .await?
        .contains(&order_id)
    {
        return Ok(Some(outcome.status()));
    }
    status_of(tx, order_id).await
}

/// Moves each of `order_ids` as `outcome` says where the lifecycle's table allows it, in
/// one conditional UPDATE (of the orders in a status the trigger moves from); returns the
/// orders it moved, whose waiters hear of it at the commit ([`Waits::announce`]).
pub async fn apply_outcome_to(
    tx: &mut Tx,
    order_ids: &[i64],
    outcome: &Outcome,
    waits: &Waits,
) -> Result<HashSet<i64>, sqlx::Error> {
    if order_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let shortages = outcome
        .shortages
        .as_ref()
        .map(|s| serde_json::to_string(s).expect("shortages serialize"));
    let sources = status_list(&lifecycle::sources(outcome.trigger));
    let now = platform::now_text();
    let mut moved = HashSet::with_capacity(order_ids.len());
    let mut created_at: Vec<String> = Vec::with_capacity(order_ids.len());
    for chunk in platform::db::statement_chunks(order_ids, 1) {
        let sql = format!(
            "UPDATE orders SET status = $1, reason = $2, shortages = $3, error = $4, updated_at = $5
             WHERE id IN ({}) AND status IN ({sources}) RETURNING id, created_at",
            placeholders(6, chunk.len())
        );
        let mut query = sqlx::query(&sql)
            .bind(outcome.status().as_str())
            .bind(outcome.reason.clone())
            .bind(shortages.clone())
            .bind(outcome.error.clone())
            .bind(&now);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            moved.insert(row.try_get("id")?);
            created_at.push(row.try_get("created_at")?);
        }
    }
    let told: Vec<i64> = moved.iter().copied().collect();
    waits.announce(tx, &told).await?;
    // The decisions an order waits for, not its cancellation.
    let decided = [
        OrderStatus::Confirmed,
        OrderStatus::Rejected,
        OrderStatus::Failed,
    ];
    if decided.contains(&outcome.status()) {
        waits.time_decisions(tx, outcome.status(), created_at);
    }
    Ok(moved)
}

/// An order's status; None for an order this database does not know.
pub async fn status_of(tx: &mut Tx, order_id: i64) -> Result<Option<OrderStatus>, sqlx::Error> {
    let Some(row) = sqlx::query("SELECT status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    let current: String = row.try_get("status")?;
    parse_status(&current).map(Some)
}

/// What a cancel request found.
pub enum CancelOutcome {
    /// The order is now CANCELLED and `order.cancelled` is in the outbox.
    Cancelled(OrderView),
    /// It already was CANCELLED: nothing changed.
    AlreadyCancelled(OrderView),
    /// Its status does not allow cancelling.
    NotCancellable(OrderStatus),
    NotFound,
}

/// Cancels an order if its status allows, with its `order.cancelled` event, in one transaction.
/// The conditional update comes first, so SQLite takes its write lock at the start.
/// Cancels `order_id`; when `owner` is given, only if it is that user's order (another's
/// is [`CancelOutcome::NotFound`]).
pub async fn cancel_order(
    db: &Database,
    topics: &Topics,
    order_id: i64,
    owner: Option<i64>,
    waits: &Waits,
) -> Result<CancelOutcome, sqlx::Error> {
    let cancelled = lifecycle::target(Trigger::Cancel);
    let sources = status_list(&lifecycle::sources(Trigger::Cancel));
    let owned = if owner.is_some() {
        " AND user_id = $4"
    } else {
        ""
    };
    let mut tx = db.begin().await?;
    let sql = format!(
        "UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status IN ({sources}){owned} RETURNING user_id"
    );
    let mut update = sqlx::query(&sql)
        .bind(cancelled.as_str())
        .bind(platform::now_text())
        .bind(order_id);
    if let Some(owner) = owner {
        update = update.bind(owner);
    }
    let updated = update.fetch_optional(&mut *tx).await?;
    let Some(row) = updated else {
        tx.rollback().await?;
        let order = get_order(db, order_id).await?;
        return Ok(
            match order.filter(|o| owner.is_none_or(|u| u == o.user_id)) {
                None => CancelOutcome::NotFound,
                Some(order) if order.status == cancelled => CancelOutcome::AlreadyCancelled(order),
                Some(order) => CancelOutcome::NotCancellable(order.status),
            },
        );
    };
    let event = crate::domain::cancelled(order_id, row.try_get("user_id")?);
    platform::outbox::enqueue(&mut tx, &topics.order_cancelled(), &event).await?;
    waits.announce(&mut tx, &[order_id]).await?;
    tx.commit().await?;
    let order = get_order(db, order_id)
        .await?
        .expect("the order was just updated");
    Ok(CancelOutcome::Cancelled(order))
}

/// Notes that inventory gave a cancelled order's stock back.
pub async fn mark_released(tx: &mut Tx, order_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET released_at = $1 WHERE id = $2 AND released_at IS NULL")
        .bind(platform::now_text())
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
