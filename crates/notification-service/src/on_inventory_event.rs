//! Every `inventory.<event>` → one notice per event (see [`crate::notices`]): reserved →
//! `order.confirmed`, rejected → `order.rejected` (with the shortages), released →
//! `order.cancelled`, and any `inventory.<event>` this version does not know yet →
//! `order.updated`. A redelivered event records nothing new.

use contracts::{AnyEvent, InventoryRejected, InventoryReleased, InventoryReserved, Topics};
use platform::consumer::HandleError;
use platform::db::Tx;
use platform::router::{Delivered, On};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::notices::{Notice, Notifier};

/// One handler for every inventory event type; what differs is [`Tells`].
#[derive(Clone)]
pub struct OnInventoryEvent {
    pub notifier: Notifier,
    pub topics: Topics,
}

/// What a notice says about an event: its ids, its template kind and the template's fields.
pub trait Tells {
    fn tells(&self) -> (Uuid, i64, &'static str, Value);
}

impl Tells for InventoryReserved {
    fn tells(&self) -> (Uuid, i64, &'static str, Value) {
        let fields = json!({ "items": self.items });
        (self.event_id, self.order_id, "order.confirmed", fields)
    }
}

impl Tells for InventoryRejected {
    fn tells(&self) -> (Uuid, i64, &'static str, Value) {
        let fields = json!({ "reason": self.reason.as_str(), "shortages": self.shortages });
        (self.event_id, self.order_id, "order.rejected", fields)
    }
}

impl Tells for InventoryReleased {
    fn tells(&self) -> (Uuid, i64, &'static str, Value) {
        let fields = json!({ "items": self.items });
        (self.event_id, self.order_id, "order.cancelled", fields)
    }
}

impl Tells for AnyEvent {
    fn tells(&self) -> (Uuid, i64, &'static str, Value) {
        (self.event_id, self.order_id, "order.updated", json!({}))
    }
}

impl<E: Tells + Send + Sync + 'static> On<E> for OnInventoryEvent {
    /// Records the batch's notices together ([`Notifier::record_all`]).
    async fn apply(
        &self,
        tx: &mut Tx,
        events: &[Delivered<'_, E>],
        _attempt: u32,
    ) -> Result<(), HandleError> {
        let notices: Vec<Notice> = events
            .iter()
            .map(
                |Delivered {
                     record,
                     event,
                     span,
                 }| {
                    let (event_id, order_id, kind, fields) = event.tells();
                    Notice {
                        event_id,
                        order_id,
                        event_type: self.topics.unprefixed(&record.topic).to_string(),
                        kind,
                        fields,
                        // Webhooks get the event as it travelled, fields this build does
                        // not know included: the value itself, not this build's reading.
                        event: record.json::<Value>().unwrap_or(Value::Null),
                        trace: platform::telemetry::trace_text(span),
                    }
                },
            )
            .collect();
        self.notifier.record_all(tx, &notices).await
    }
}
