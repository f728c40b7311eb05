//! What moves an order after it was accepted:
//! - [`InventoryOutcomeHandler`]: `inventory.reserved` → CONFIRMED, `inventory.rejected` →
//!   REJECTED, `inventory.released` → the cancelled order's `releasedAt`;
//! - [`DeadLetterHandler`]: `order.created.DLT` → FAILED, but only for dead letters of the
//!   inventory consumer group (another group's trouble with `order.created` says nothing
//!   about the order itself).
//!
//! Each applies its change in the consumer's transaction with the dedupe mark, through
//! [`store::apply_outcome`], which never moves an order backwards.

use contracts::{headers, InventoryRejected, InventoryReleased, InventoryReserved, Topics};
use platform::consumer::{HandleError, Handler, Record};
use platform::db::Tx;

use crate::domain::OrderStatus;
use crate::store::{self, Outcome};

pub struct InventoryOutcomeHandler {
    pub topics: Topics,
}

/// What an inventory event does to its order.
enum Change {
    /// Reserved: the order is CONFIRMED (a batch's confirmations are one UPDATE).
    Confirmed,
    /// Rejected: the order's new status, with the reason.
    Outcome(Outcome),
    /// The cancelled order's stock is back.
    Released,
}

impl InventoryOutcomeHandler {
    /// The event's id, its order, and what it changes.
    fn decode(&self, record: &Record) -> Result<(String, i64, Change), HandleError> {
        if record.topic == self.topics.inventory_reserved() {
            let event: InventoryReserved = record.json()?;
            Ok((
                event.event_id.to_string(),
                event.order_id,
                Change::Confirmed,
            ))
        } else if record.topic == self.topics.inventory_rejected() {
            let event: InventoryRejected = record.json()?;
            let outcome = Outcome {
                status: OrderStatus::Rejected,
                reason: Some(event.reason.as_str().to_string()),
                shortages: Some(event.shortages),
                error: None,
            };
            Ok((
                event.event_id.to_string(),
                event.order_id,
                Change::Outcome(outcome),
            ))
        } else if record.topic == self.topics.inventory_released() {
            let event: InventoryReleased = record.json()?;
            Ok((event.event_id.to_string(), event.order_id, Change::Released))
        } else {
            Err(HandleError::permanent(
                "openorder.UnexpectedTopic",
                format!("no handler for topic {}", record.topic),
            ))
        }
    }
}

impl Handler for InventoryOutcomeHandler {
    async fn apply(&self, tx: &mut Tx, record: &Record, _attempt: u32) -> Result<(), HandleError> {
        self.apply_batch(tx, std::slice::from_ref(record)).await
    }

    /// One statement marks the batch's events processed and one confirms every order
    /// they confirm; rejections (each with its own reason) and releases are one statement
    /// each. Each event changes only its own order, and an order's status moves only
    /// forward, so the order of the updates within the batch does not matter.
    async fn apply_batch(&self, tx: &mut Tx, batch: &[Record]) -> Result<(), HandleError> {
        let changes = batch
            .iter()
            .map(|record| self.decode(record))
            .collect::<Result<Vec<_>, _>>()?;
        let changes =
            platform::dedupe::keep_unprocessed(tx, changes, |(id, _, _)| id.clone()).await?;
        let mut confirmed = Vec::new();
        for (_, order_id, change) in &changes {
            match change {
                Change::Released => store::mark_released(tx, *order_id).await?,
                Change::Confirmed => confirmed.push(*order_id),
                Change::Outcome(outcome) => {
                    let now = store::apply_outcome(tx, *order_id, outcome).await?;
                    log_outcome(*order_id, outcome, now);
                }
            }
        }
        let confirm = Outcome {
            status: OrderStatus::Confirmed,
            reason: None,
            shortages: None,
            error: None,
        };
        let moved = store::apply_outcome_to(tx, &confirmed, &confirm).await?;
        for order_id in confirmed {
            let now = match moved.contains(&order_id) {
                true => Some(OrderStatus::Confirmed),
                false => store::status_of(tx, order_id).await?,
            };
            log_outcome(order_id, &confirm, now);
        }
        Ok(())
    }
}

async fn apply_outcome(
    tx: &mut Tx,
    dedupe_id: &str,
    order_id: i64,
    outcome: &Outcome,
) -> Result<(), HandleError> {
    if !platform::dedupe::mark_processed(tx, dedupe_id).await? {
        return Ok(());
    }
    let now = store::apply_outcome(tx, order_id, outcome).await?;
    log_outcome(order_id, outcome, now);
    Ok(())
}

/// Logs what an outcome did: `now` is the order's status after it (None: unknown order).
fn log_outcome(order_id: i64, outcome: &Outcome, now: Option<OrderStatus>) {
    match now {
        None => tracing::warn!(
            order_id,
            "event for an order this service does not know; ignored"
        ),
        Some(now) if now == outcome.status => {
            tracing::info!(order_id, status = now.as_str(), "order status changed")
        }
        Some(now) => tracing::info!(
            order_id,
            status = now.as_str(),
            ignored = outcome.status.as_str(),
            "late or repeated outcome ignored"
        ),
    }
}

pub struct DeadLetterHandler {
    /// The inventory consumer group's full name (behind the prefix).
    pub inventory_group: String,
}

impl Handler for DeadLetterHandler {
    async fn apply(&self, tx: &mut Tx, record: &Record, _attempt: u32) -> Result<(), HandleError> {
        if record.header(headers::DLT_ORIGINAL_CONSUMER_GROUP)
            != Some(self.inventory_group.as_str())
        {
            return Ok(());
        }
        // The key, or for a record produced without one, the orderId in its value.
        let Some(order_id) = record.order_id() else {
            tracing::warn!(
                offset = record.offset,
                "dead letter with no order id in its key or value; no order to fail"
            );
            return Ok(());
        };
        let error = record.dead_letter_error();
        let outcome = Outcome {
            status: OrderStatus::Failed,
            reason: None,
            shortages: None,
            error: Some(error),
        };
        // A dead letter is identified by its own position: the same original event may be
        // dead-lettered again after a replay, and that is a new fact.
        let dedupe_id = format!(
            "dlt:{}:{}:{}",
            record.topic, record.partition, record.offset
        );
        apply_outcome(tx, &dedupe_id, order_id, &outcome).await
    }
}
