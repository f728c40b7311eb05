//! `order.created.DLT` → an order the inventory group dead-lettered is FAILED: the
//! customer hears so once per `order.created` event (a replayed order that fails again is
//! not announced twice). Dead letters of other groups say nothing about the order.

use contracts::OrderCreated;
use platform::consumer::HandleError;
use platform::db::Tx;
use platform::router::{DeadLetter, Delivered, On};
use serde_json::json;

use crate::notices::{Notice, Notifier};
use crate::on_order_created::checked_contact;

pub struct OnOrderCreatedDeadLetter {
    pub notifier: Notifier,
    /// The inventory consumer group's full name (behind the prefix).
    pub inventory_group: String,
    /// Where a contact's webhook may point.
    pub webhooks: contracts::destinations::Destinations,
}

impl On<DeadLetter<OrderCreated>> for OnOrderCreatedDeadLetter {
    async fn apply(
        &self,
        tx: &mut Tx,
        letters: &[Delivered<'_, DeadLetter<OrderCreated>>],
        _attempt: u32,
    ) -> Result<(), HandleError> {
        for Delivered {
            record,
            event,
            span,
        } in letters
        {
            if !record.dead_lettered_by(&self.inventory_group) {
                continue;
            }
            let Some(order) = &event.original else {
                tracing::warn!(
                    offset = record.offset,
                    "dead-lettered order.created does not decode; nobody to notify"
                );
                continue;
            };
            // The dead letter carries the order itself: record it, in case order.created
            // was never seen here (the failure notice then goes out at once).
            let contact = checked_contact(order, &self.webhooks).unwrap_or_default();
            self.notifier
                .order_seen(tx, order.order_id, order.user_id, contact)
                .await?;
            let notice = Notice {
                event_id: order.event_id,
                order_id: order.order_id,
                event_type: contracts::topics::ORDER_CREATED_DLT.to_string(),
                kind: "order.failed",
                fields: json!({ "items": order.items, "error": record.dead_letter_error() }),
                event: serde_json::to_value(order).expect("an event serializes"),
                trace: platform::telemetry::trace_text(span),
            };
            self.notifier.record(tx, &notice).await?;
        }
        Ok(())
    }
}
