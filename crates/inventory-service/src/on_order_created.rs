//! Consumes `order.created`: decides each order once, all-or-nothing, in the consumer's
//! transaction with the dedupe mark and the outbox event (`inventory.reserved` or
//! `inventory.rejected`).
//!
//! Errors: a record that does not decode or breaks the contract (no items, bad SKU or
//! quantity; keyed by something else than its orderId, see [`platform::router`]; an event
//! id applied before with a different body, see [`platform::dedupe`]) is permanent and goes
//! to the DLT at once; an item whose SKU is the configured
//! fail SKU (`FAIL`) fails transiently every time, so it is retried and then dead-lettered,
//! as in the seed, and the flaky SKU (`FLAKY`) fails only its first attempt (see
//! [`crate::faults`]); a database that is away is waited for.

use std::collections::BTreeSet;

use chrono::Utc;
use contracts::events::{RejectedStatus, ReservedStatus};
use contracts::values::{Quantity, Sku, MAX_ITEMS};
use contracts::{InventoryRejected, InventoryReserved, OrderCreated, Topics};
use platform::consumer::HandleError;
use platform::db::{Backend, Tx};
use platform::outbox::Outgoing;
use platform::router::{Delivered, On};

use crate::reservation::{reserve, Decision};
use crate::store;

pub struct OnOrderCreated {
    /// Which engine `available_of` talks to (the row locks differ).
    pub backend: Backend,
    pub topics: Topics,
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

impl On<OrderCreated> for OnOrderCreated {
    /// Decides the orders of `events`, in order, with set-based statements: one statement
    /// each to mark the events processed, find orders decided already, read (on PostgreSQL,
    /// lock) the stock of every SKU named, record reservations, decisions and outbox events,
    /// and one stock update per SKU. The rule runs in memory against the stock as the
    /// earlier orders of the batch left it, so the effect is that of deciding the orders
    /// one by one.
    async fn apply(
        &self,
        tx: &mut Tx,
        events: &[Delivered<'_, OrderCreated>],
        attempt: u32,
    ) -> Result<(), HandleError> {
        for Delivered { event: order, .. } in events {
            validate(order).map_err(|e| HandleError::permanent("openorder.InvalidOrder", e))?;
            self.faults.check(order, attempt)?;
        }
        let orders = events.iter().collect();
        let orders = platform::dedupe::keep_unprocessed(tx, orders, |d| {
            d.record.mark(d.event.event_id.to_string())
        })
        .await?;
        if orders.is_empty() {
            return Ok(());
        }
        let order_ids: Vec<i64> = orders.iter().map(|d| d.event.order_id).collect();
        let mut decided = store::decided_among(tx, &order_ids).await?;
        let skus: BTreeSet<&str> = orders
            .iter()
            .flat_map(|d| d.event.items.iter().map(|i| i.sku.as_str()))
            .collect();
        let skus: Vec<&str> = skus.into_iter().collect();
        let mut available = store::available_of(tx, self.backend, &skus).await?;

        let mut reservations = Vec::new();
        let mut decisions = Vec::with_capacity(orders.len());
        let mut events = Vec::with_capacity(orders.len());
        for delivered in &orders {
            let order = &delivered.event;
            // The decision's log lines and event belong to this record's span.
            let _in_its_span = delivered.span.enter();
            if !decided.insert(order.order_id) {
                tracing::info!(
                    order_id = order.order_id,
                    "order already decided; not deciding again"
                );
                continue;
            }
            let event_id = contracts::new_event_id();
            let (outcome, event) = match reserve(&available, &order.items) {
                Decision::Reserve(lines) => {
                    for line in &lines {
                        *available.get_mut(&line.sku).expect("reserve found it") -= line.qty;
                        reservations.push(store::Reservation {
                            order_id: order.order_id,
                            sku: line.sku.clone(),
                            qty: line.qty,
                        });
                    }
                    tracing::info!(order_id = order.order_id, "order reserved");
                    let event = InventoryReserved {
                        event_id,
                        order_id: order.order_id,
                        status: ReservedStatus::Reserved,
                        items: lines,
                        timestamp: Utc::now(),
                    };
                    let topic = self.topics.inventory_reserved();
                    ("RESERVED", Outgoing::new(&topic, &event))
                }
                Decision::Reject { reason, shortages } => {
                    tracing::info!(
                        order_id = order.order_id,
                        reason = reason.as_str(),
                        "order rejected"
                    );
                    let event = InventoryRejected {
                        event_id,
                        order_id: order.order_id,
                        status: RejectedStatus::Rejected,
                        reason,
                        shortages,
                        timestamp: Utc::now(),
                    };
                    let topic = self.topics.inventory_rejected();
                    ("REJECTED", Outgoing::new(&topic, &event))
                }
            };
            decisions.push(store::Decided {
                order_id: order.order_id,
                outcome,
                event_id: event_id.to_string(),
            });
            events.push(event);
        }
        if let Some(sku) = store::reserve_all(tx, &reservations).await? {
            // Someone took the stock between our read and our write (only possible where
            // reads do not lock); the transaction is rolled back, so nothing stays.
            return Err(HandleError::transient(
                "openorder.StockChanged",
                format!("stock of {sku} changed while reserving; retrying"),
            ));
        }
        store::record_decisions(tx, &decisions).await?;
        platform::outbox::enqueue_all(tx, &events).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::LineItem;

    fn order(items: Vec<LineItem>) -> OrderCreated {
        OrderCreated {
            event_id: contracts::new_event_id(),
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
