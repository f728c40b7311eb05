//! `order.created` → the contact projection: who placed the order, and the `contact` it
//! carried ([`Notifier::orders_seen`]). A contact that fails the contract's checks is a
//! permanent error: the record goes to `order.created.DLT` under this service's group,
//! which order-service ignores.

use std::collections::BTreeMap;

use contracts::destinations::Destinations;
use contracts::{Contact, OrderCreated};
use platform::consumer::HandleError;
use platform::db::Tx;
use platform::router::{Delivered, On};

use crate::notices::Notifier;
use crate::store::OrderContact;

pub struct OnOrderCreated {
    pub notifier: Notifier,
    /// Where a contact's webhook may point.
    pub webhooks: Destinations,
}

/// The order's contact, checked as order-service checks it.
pub fn checked_contact(
    order: &OrderCreated,
    webhooks: &Destinations,
) -> Result<Contact, HandleError> {
    let Some(contact) = &order.contact else {
        return Ok(Contact::default());
    };
    Contact::checked(
        contact.email.as_deref(),
        contact.webhook_url.as_deref(),
        contact.phone.as_deref(),
        webhooks,
    )
    .map_err(|bad| {
        HandleError::permanent(
            "openorder.InvalidContact",
            bad.iter()
                .map(|(field, m)| format!("contact.{field} {m}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

impl On<OrderCreated> for OnOrderCreated {
    async fn apply(
        &self,
        tx: &mut Tx,
        events: &[Delivered<'_, OrderCreated>],
        _attempt: u32,
    ) -> Result<(), HandleError> {
        let mut orders = BTreeMap::new();
        for Delivered { event: order, .. } in events {
            let seen = OrderContact {
                user_id: order.user_id,
                contact: checked_contact(order, &self.webhooks)?,
            };
            orders.insert(order.order_id, seen);
        }
        self.notifier.orders_seen(tx, orders).await
    }
}
