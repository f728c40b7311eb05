//! Consumes `order.cancelled`: releases the order's reservation exactly once and publishes
//! `inventory.released`, in the consumer's transaction with the dedupe mark.
//!
//! `order.created` and `order.cancelled` are different topics, so a cancellation may arrive
//! before the order itself. Then there is nothing to give back yet: the order's decision is
//! recorded as CANCELLED, and its `order.created`, when it comes, reserves nothing. Either
//! way the stock ends where it started.

use chrono::Utc;
use contracts::events::ReleasedStatus;
use std::collections::BTreeSet;

use contracts::{InventoryReleased, OrderCancelled, OrderCreated, Topics};
use platform::consumer::{HandleError, Handler, Record};
use platform::db::{Backend, Tx};
use platform::outbox::Waker;

use crate::store;

pub struct OrderCancelledHandler {
    pub topics: Topics,
    pub waker: Waker,
}

impl Handler for OrderCancelledHandler {
    async fn apply(&self, tx: &mut Tx, record: &Record, _attempt: u32) -> Result<(), HandleError> {
        let cancel: OrderCancelled = record.json()?;
        if cancel.order_id <= 0 {
            return Err(HandleError::permanent(
                "openorder.InvalidCancellation",
                format!("orderId must be positive, got {}", cancel.order_id),
            ));
        }
        let order_id = cancel.order_id;
        if !platform::dedupe::mark_processed(tx, &cancel.event_id.to_string()).await? {
            return Ok(());
        }
        if store::released(tx, order_id).await? {
            return Ok(());
        }
        let event_id = contracts::new_event_id();
        let items = match store::decision_of(tx, order_id).await?.as_deref() {
            Some("RESERVED") => store::release_reservations(tx, order_id).await?,
            Some(_) => Vec::new(),
            None => {
                let decided = store::Decided {
                    order_id,
                    outcome: "CANCELLED",
                    event_id: event_id.to_string(),
                };
                store::record_decisions(tx, &[decided]).await?;
                Vec::new()
            }
        };
        store::record_release(tx, order_id, &items, &event_id.to_string()).await?;
        let event = InventoryReleased {
            event_id,
            order_id,
            status: ReleasedStatus::Released,
            items,
            timestamp: Utc::now(),
        };
        platform::outbox::enqueue(tx, &self.topics.inventory_released(), &event).await?;
        tracing::info!(order_id, released = event.items.len(), "order released");
        Ok(())
    }

    fn committed(&self) {
        self.waker.wake();
    }
}

/// inventory-service's one consumer: `order.created` and `order.cancelled`, routed by topic.
pub struct OrderEventsHandler {
    pub topics: Topics,
    pub created: crate::order_created::OrderCreatedHandler,
    pub cancelled: OrderCancelledHandler,
}

impl Handler for OrderEventsHandler {
    async fn apply(&self, tx: &mut Tx, record: &Record, attempt: u32) -> Result<(), HandleError> {
        if record.topic == self.topics.order_cancelled() {
            self.cancelled.apply(tx, record, attempt).await
        } else {
            self.created.apply(tx, record, attempt).await
        }
    }

    /// Runs of `order.created` are decided together ([`crate::order_created::OrderCreatedHandler::decide`]);
    /// cancellations, rare, one by one, in their place in the batch.
    async fn apply_batch(&self, tx: &mut Tx, batch: &[Record]) -> Result<(), HandleError> {
        let cancellations = self.topics.order_cancelled();
        for run in batch.chunk_by(|a, b| (a.topic == cancellations) == (b.topic == cancellations)) {
            if run[0].topic == cancellations {
                for record in run {
                    self.cancelled.apply(tx, record, 1).await?;
                }
            } else {
                self.created.decide(tx, run, 1).await?;
            }
        }
        Ok(())
    }

    /// On PostgreSQL, locks the stock rows of every SKU the batch may touch, in SKU order:
    /// the SKUs its orders name and those reserved by the orders it cancels. Each order then
    /// finds its rows already locked, so two instances' batches never wait on each other
    /// in a cycle. (SQLite has one writer at a time: nothing to do.)
    async fn lock_batch(&self, tx: &mut Tx, batch: &[Record]) -> Result<(), HandleError> {
        if self.created.backend != Backend::Postgres {
            return Ok(());
        }
        let mut skus = BTreeSet::new();
        let mut cancelled = Vec::new();
        for record in batch {
            // Records that do not decode lock nothing; applying them fails as usual.
            if record.topic == self.topics.order_cancelled() {
                if let Ok(cancel) = record.json::<OrderCancelled>() {
                    cancelled.push(cancel.order_id);
                }
            } else if let Ok(order) = record.json::<OrderCreated>() {
                skus.extend(order.items.into_iter().map(|item| item.sku));
            }
        }
        store::lock_stock(tx, &skus, &cancelled).await?;
        Ok(())
    }

    fn committed(&self) {
        // Both share the service's one relay waker.
        self.created.committed();
    }
}
