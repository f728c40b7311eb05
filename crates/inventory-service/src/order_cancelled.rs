//! Consumes `order.cancelled`: releases the order's reservation exactly once and publishes
//! `inventory.released`, in the consumer's transaction with the dedupe mark.
//!
//! `order.created` and `order.cancelled` are different topics, so a cancellation may arrive
//! before the order itself. Then there is nothing to give back yet: the order's decision is
//! recorded as CANCELLED, and its `order.created`, when it comes, reserves nothing. Either
//! way the stock ends where it started.

use chrono::Utc;
use contracts::events::ReleasedStatus;
use contracts::{InventoryReleased, OrderCancelled, Topics};
use platform::consumer::{HandleError, Handler, Record};
use platform::db::Tx;
use platform::outbox::Waker;
use uuid::Uuid;

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
        let event_id = Uuid::new_v4();
        let items = match store::decision_of(tx, order_id).await?.as_deref() {
            Some("RESERVED") => store::release_reservations(tx, order_id).await?,
            Some(_) => Vec::new(),
            None => {
                store::record_decision(tx, order_id, "CANCELLED", &event_id.to_string()).await?;
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

    fn committed(&self) {
        // Both share the service's one relay waker.
        self.created.committed();
    }
}
