//! The order side of notifications, one consumer on two topics:
//!
//! - `order.created`: the contact projection (who placed the order; the `contact` it
//!   carried). A contact that fails the contract's checks is a permanent error: the record
//!   goes to `order.created.DLT` under this service's group, which order-service ignores.
//! - `order.created.DLT`: an order the inventory group dead-lettered is FAILED; the customer
//!   hears so once per `order.created` event (a replayed order that fails again is not
//!   announced twice). Dead letters of other groups say nothing about the order.

use contracts::{headers, Contact, OrderCreated, Topics};
use platform::consumer::{HandleError, Handler, Record};
use platform::db::Tx;
use serde_json::json;

use std::collections::BTreeMap;

use crate::notices::{Notice, Notifier};
use crate::store::OrderContact;

pub struct OrderEventsHandler {
    pub notifier: Notifier,
    pub topics: Topics,
    /// The inventory consumer group's full name (behind the prefix).
    pub inventory_group: String,
}

/// The order's contact, checked as order-service checks it.
fn checked_contact(order: &OrderCreated) -> Result<Contact, HandleError> {
    let Some(contact) = &order.contact else {
        return Ok(Contact::default());
    };
    Contact::checked(contact.email.as_deref(), contact.webhook_url.as_deref()).map_err(|bad| {
        HandleError::permanent(
            "openorder.InvalidContact",
            bad.iter()
                .map(|(field, m)| format!("contact.{field} {m}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

impl OrderEventsHandler {
    /// Is `topic` one of this handler's (`order.created`, `order.created.DLT`)?
    pub fn handles(&self, topic: &str) -> bool {
        topic == self.topics.order_created() || topic == self.topics.order_created_dlt()
    }
}

impl OrderEventsHandler {
    /// Records who placed the orders of these `order.created` records, together
    /// ([`Notifier::orders_seen`]).
    pub async fn seen_all(&self, tx: &mut Tx, records: &[Record]) -> Result<(), HandleError> {
        let mut orders = BTreeMap::new();
        for record in records {
            let order: OrderCreated = record.json()?;
            let contact = checked_contact(&order)?;
            let seen = OrderContact {
                user_id: order.user_id,
                contact,
            };
            orders.insert(order.order_id, seen);
        }
        self.notifier.orders_seen(tx, orders).await
    }
}

impl Handler for OrderEventsHandler {
    async fn apply(&self, tx: &mut Tx, record: &Record, _attempt: u32) -> Result<(), HandleError> {
        if record.topic == self.topics.order_created() {
            return self.seen_all(tx, std::slice::from_ref(record)).await;
        }
        // order.created.DLT
        if record.header(headers::DLT_ORIGINAL_CONSUMER_GROUP)
            != Some(self.inventory_group.as_str())
        {
            return Ok(());
        }
        let Ok(order) = record.json::<OrderCreated>() else {
            tracing::warn!(
                offset = record.offset,
                "dead-lettered order.created does not decode; nobody to notify"
            );
            return Ok(());
        };
        // The dead letter carries the order itself: record it, in case order.created was
        // never seen here (the failure notice then goes out at once).
        let contact = checked_contact(&order).unwrap_or_default();
        self.notifier
            .order_seen(tx, order.order_id, order.user_id, contact)
            .await?;
        let error = record.dead_letter_error();
        let notice = Notice {
            event_id: order.event_id,
            order_id: order.order_id,
            event_type: self.topics.unprefixed(&record.topic).to_string(),
            kind: "order.failed",
            fields: json!({ "items": order.items, "error": error }),
            event: serde_json::to_value(&order).expect("an event serializes"),
        };
        self.notifier.record(tx, &notice).await
    }

    fn committed(&self) {
        self.notifier.committed();
    }
}
