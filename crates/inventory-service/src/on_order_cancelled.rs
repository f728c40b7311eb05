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
use platform::consumer::HandleError;
use platform::db::Tx;
use platform::router::{Delivered, On};

use crate::store;

pub struct OnOrderCancelled {
    pub topics: Topics,
}

impl On<OrderCancelled> for OnOrderCancelled {
    /// Cancellations are rare: one by one, in their place in the batch.
    async fn apply(
        &self,
        tx: &mut Tx,
        events: &[Delivered<'_, OrderCancelled>],
        _attempt: u32,
    ) -> Result<(), HandleError> {
        for Delivered {
            record,
            event,
            span,
        } in events
        {
            // Its log lines and `inventory.released` belong to this record's span.
            use tracing::Instrument;
            let mark = record.mark(event.event_id.to_string());
            self.release(tx, event, &mark)
                .instrument(span.clone())
                .await?;
        }
        Ok(())
    }
}

impl OnOrderCancelled {
    async fn release(
        &self,
        tx: &mut Tx,
        cancel: &OrderCancelled,
        mark: &platform::dedupe::Mark,
    ) -> Result<(), HandleError> {
        if cancel.order_id <= 0 {
            return Err(HandleError::permanent(
                "openorder.InvalidCancellation",
                format!("orderId must be positive, got {}", cancel.order_id),
            ));
        }
        let order_id = cancel.order_id;
        if !platform::dedupe::mark_processed(tx, mark).await? {
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
}
