//! Consumes every `inventory.*` topic and records one notification per event, delivered
//! to the log channel. Idempotent: the notification's unique event id is the dedupe mark,
//! so a redelivered event neither records nor delivers a second notification.

use contracts::{InventoryRejected, InventoryReleased, InventoryReserved, Topics};
use platform::consumer::{HandleError, Handler, Record};
use platform::db::Database;
use serde::Deserialize;
use uuid::Uuid;

use crate::store::{self, NewNotification};

pub struct InventoryEventHandler {
    pub db: Database,
    pub topics: Topics,
}

/// The fields every event has, enough to notify about an inventory event type this
/// version does not know yet.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyEvent {
    event_id: Uuid,
    order_id: i64,
}

/// The customer-facing text for an event.
fn message(
    handler: &InventoryEventHandler,
    record: &Record,
) -> Result<(String, i64, String, String), HandleError> {
    let event_type = record
        .topic
        .strip_prefix(handler.topics.prefix())
        .unwrap_or(&record.topic)
        .to_string();
    if record.topic == handler.topics.inventory_reserved() {
        let e: InventoryReserved = record.json()?;
        let items = e
            .items
            .iter()
            .map(|i| format!("{} × {}", i.qty, i.sku))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "Order {} is confirmed: {items} reserved for you.",
            e.order_id
        );
        Ok((e.event_id.to_string(), e.order_id, event_type, text))
    } else if record.topic == handler.topics.inventory_rejected() {
        let e: InventoryRejected = record.json()?;
        let short = e
            .shortages
            .iter()
            .map(|s| {
                format!(
                    "{} (asked {}, available {})",
                    s.sku, s.requested, s.available
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "Order {} was rejected ({}): {short}.",
            e.order_id,
            e.reason.as_str()
        );
        Ok((e.event_id.to_string(), e.order_id, event_type, text))
    } else if record.topic == handler.topics.inventory_released() {
        let e: InventoryReleased = record.json()?;
        let text = if e.items.is_empty() {
            format!(
                "Order {} is cancelled; nothing had been reserved.",
                e.order_id
            )
        } else {
            let items = e
                .items
                .iter()
                .map(|i| format!("{} × {}", i.qty, i.sku))
                .collect::<Vec<_>>()
                .join(", ");
            format!("Order {} is cancelled: {items} released.", e.order_id)
        };
        Ok((e.event_id.to_string(), e.order_id, event_type, text))
    } else {
        let e: AnyEvent = record.json()?;
        let text = format!("Order {}: {event_type}.", e.order_id);
        Ok((e.event_id.to_string(), e.order_id, event_type, text))
    }
}

impl Handler for InventoryEventHandler {
    async fn handle(&self, record: &Record, _attempt: u32) -> Result<(), HandleError> {
        let (event_id, order_id, event_type, text) = message(self, record)?;
        let mut tx = self.db.begin().await?;
        let new = store::insert(
            &mut tx,
            &NewNotification {
                event_id: &event_id,
                order_id,
                event_type: &event_type,
                channel: "log",
                message: &text,
            },
        )
        .await?;
        tx.commit().await?;
        if new {
            tracing::info!(channel = "log", order_id, %event_type, "notification: {text}");
        }
        Ok(())
    }
}
