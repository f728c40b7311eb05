//! Consumes `order.created`: decides each order once, all-or-nothing, in the consumer's
//! transaction with the dedupe mark and the outbox event (`inventory.reserved` or
//! `inventory.rejected`).
//!
//! Errors: a record that does not decode or breaks the contract (no items, bad SKU or
//! quantity) is permanent and goes to the DLT at once; an item whose SKU is the configured
//! fail SKU (`FAIL`) fails transiently every time, so it is retried and then dead-lettered,
//! as in the seed, and the flaky SKU (`FLAKY`) fails only its first attempt (see
//! [`crate::faults`]); a database that is away is waited for.

use chrono::Utc;
use contracts::events::{RejectedStatus, ReservedStatus};
use contracts::values::{Quantity, Sku, MAX_ITEMS};
use contracts::{InventoryRejected, InventoryReserved, OrderCreated, Topics};
use platform::consumer::{HandleError, Handler, Record};
use platform::db::{Backend, Tx};
use platform::outbox::Waker;
use uuid::Uuid;

use crate::reservation::{reserve, Decision};
use crate::store;

pub struct OrderCreatedHandler {
    /// Which engine `available_of` talks to (the row locks differ).
    pub backend: Backend,
    pub topics: Topics,
    pub waker: Waker,
    pub faults: crate::faults::Faults,
}

/// Checks the contract's rules on a decoded `order.created`.
fn validate(order: &OrderCreated) -> Result<(), String> {
    if order.order_id <= 0 {
        return Err(format!("orderId must be positive, got {}", order.order_id));
    }
    if order.items.is_empty() || order.items.len() > MAX_ITEMS {
        return Err(format!(
            "an order has 1 to {MAX_ITEMS} items, got {}",
            order.items.len()
        ));
    }
    for (i, item) in order.items.iter().enumerate() {
        Sku::parse(&item.sku).map_err(|e| format!("items[{i}].sku {e}"))?;
        Quantity::parse(item.qty).map_err(|e| format!("items[{i}].qty {e}"))?;
    }
    Ok(())
}

impl Handler for OrderCreatedHandler {
    async fn apply(&self, tx: &mut Tx, record: &Record, attempt: u32) -> Result<(), HandleError> {
        let order: OrderCreated = record.json()?;
        validate(&order).map_err(|e| HandleError::permanent("openorder.InvalidOrder", e))?;
        self.faults.check(&order, attempt)?;

        if !platform::dedupe::mark_processed(tx, &order.event_id.to_string()).await? {
            tracing::debug!(order_id = order.order_id, "duplicate order.created ignored");
            return Ok(());
        }
        if let Some(outcome) = store::decision_of(tx, order.order_id).await? {
            tracing::info!(order_id = order.order_id, %outcome, "order already decided; not deciding again");
            return Ok(());
        }
        let skus: Vec<&str> = order.items.iter().map(|i| i.sku.as_str()).collect();
        let available = store::available_of(tx, self.backend, &skus).await?;
        let event_id = Uuid::new_v4();
        match reserve(&available, &order.items) {
            Decision::Reserve(lines) => {
                for line in &lines {
                    if !store::take(tx, order.order_id, &line.sku, line.qty).await? {
                        // Someone took the stock between our read and our write (only possible
                        // where reads do not lock); the transaction is rolled back, so nothing stays.
                        return Err(HandleError::transient(
                            "openorder.StockChanged",
                            format!("stock of {} changed while reserving; retrying", line.sku),
                        ));
                    }
                }
                store::record_decision(tx, order.order_id, "RESERVED", &event_id.to_string())
                    .await?;
                let event = InventoryReserved {
                    event_id,
                    order_id: order.order_id,
                    status: ReservedStatus::Reserved,
                    items: lines,
                    timestamp: Utc::now(),
                };
                platform::outbox::enqueue(tx, &self.topics.inventory_reserved(), &event).await?;
                tracing::info!(order_id = order.order_id, "order reserved");
            }
            Decision::Reject { reason, shortages } => {
                store::record_decision(tx, order.order_id, "REJECTED", &event_id.to_string())
                    .await?;
                let event = InventoryRejected {
                    event_id,
                    order_id: order.order_id,
                    status: RejectedStatus::Rejected,
                    reason,
                    shortages,
                    timestamp: Utc::now(),
                };
                platform::outbox::enqueue(tx, &self.topics.inventory_rejected(), &event).await?;
                tracing::info!(
                    order_id = order.order_id,
                    reason = reason.as_str(),
                    "order rejected"
                );
            }
        }
        Ok(())
    }

    fn committed(&self) {
        self.waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::LineItem;

    fn order(items: Vec<LineItem>) -> OrderCreated {
        OrderCreated {
            event_id: Uuid::new_v4(),
            order_id: 1,
            user_id: 1,
            items,
            created_at: Utc::now(),
            contact: None,
        }
    }

    #[test]
    fn records_breaking_the_contract_are_refused_with_the_reason() {
        assert!(validate(&order(vec![]))
            .unwrap_err()
            .contains("1 to 100 items"));
        let bad_qty = order(vec![LineItem {
            sku: "A".into(),
            qty: 0,
        }]);
        assert!(validate(&bad_qty).unwrap_err().contains("items[0].qty"));
        let bad_sku = order(vec![LineItem {
            sku: "a b".into(),
            qty: 1,
        }]);
        assert!(validate(&bad_sku).unwrap_err().contains("items[0].sku"));
        assert!(validate(&order(vec![LineItem {
            sku: "A".into(),
            qty: 1
        }]))
        .is_ok());
    }
}
