//! Consumes every `inventory.*` topic and records one notice per event (see
//! [`crate::notices`]): reserved → `order.confirmed`, rejected → `order.rejected` (with the
//! shortages), released → `order.cancelled`, and any `inventory.<event>` this version does
//! not know yet → `order.updated`. A redelivered event records nothing new.

use contracts::{InventoryRejected, InventoryReleased, InventoryReserved, Topics};
use platform::consumer::{HandleError, Handler, Record};
use platform::db::Tx;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::notices::{Notice, Notifier};

pub struct InventoryEventHandler {
    pub notifier: Notifier,
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

impl InventoryEventHandler {
    /// The notice for a record, or a permanent error if it does not decode.
    fn notice(&self, record: &Record) -> Result<Notice, HandleError> {
        let event_type = self.topics.unprefixed(&record.topic).to_string();
        let event: Value = record.json()?;
        let (event_id, order_id, kind, fields) = if record.topic == self.topics.inventory_reserved()
        {
            let e: InventoryReserved = record.json()?;
            (
                e.event_id,
                e.order_id,
                "order.confirmed",
                json!({ "items": e.items }),
            )
        } else if record.topic == self.topics.inventory_rejected() {
            let e: InventoryRejected = record.json()?;
            let fields = json!({ "reason": e.reason.as_str(), "shortages": e.shortages });
            (e.event_id, e.order_id, "order.rejected", fields)
        } else if record.topic == self.topics.inventory_released() {
            let e: InventoryReleased = record.json()?;
            (
                e.event_id,
                e.order_id,
                "order.cancelled",
                json!({ "items": e.items }),
            )
        } else {
            let e: AnyEvent = record.json()?;
            (e.event_id, e.order_id, "order.updated", json!({}))
        };
        Ok(Notice {
            event_id,
            order_id,
            event_type,
            kind,
            fields,
            event,
        })
    }
}

impl InventoryEventHandler {
    /// Records the notices of `records` together ([`Notifier::record_all`]).
    pub async fn apply_all(&self, tx: &mut Tx, records: &[Record]) -> Result<(), HandleError> {
        let notices = records
            .iter()
            .map(|record| self.notice(record))
            .collect::<Result<Vec<_>, _>>()?;
        self.notifier.record_all(tx, &notices).await
    }
}

impl Handler for InventoryEventHandler {
    async fn apply(&self, tx: &mut Tx, record: &Record, _attempt: u32) -> Result<(), HandleError> {
        self.apply_all(tx, std::slice::from_ref(record)).await
    }

    fn committed(&self) {
        self.notifier.committed();
    }
}
