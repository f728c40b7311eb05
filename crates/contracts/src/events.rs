//! The events, exactly as they travel: UTF-8 JSON with camelCase fields.
//!
//! Every event carries `eventId` (consumers dedupe on it), `orderId` (also the record key,
//! so all of an order's events share a partition) and an RFC 3339 timestamp. Unknown
//! fields are ignored on read so that producers can add optional fields without breaking
//! older consumers; missing required fields are an error (the record is dead-lettered).

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

/// A new event id: a UUID of version 7, which starts with the time it was made, so ids
/// made later sort later. Every service stores the ids it has processed in a table keyed
/// by them (and notification-service its notifications); time-ordered keys are appended
/// at the end of those indexes, where random (version 4) ones would write a different
/// B-tree page for nearly every event. Consumers treat the id as opaque: any UUID works.
pub fn new_event_id() -> Uuid {
    Uuid::now_v7()
}

/// What every event can say about itself.
pub trait Event: Serialize + DeserializeOwned {
    /// The `event-type` header value, which is also the topic name without prefix.
    const TYPE: &'static str;
    /// The `event-version` header value (see [`crate::headers::EVENT_VERSION`]).
    const VERSION: u32 = 1;
    fn event_id(&self) -> Uuid;
    fn order_id(&self) -> i64;
}

/// One line of an order: a stock-keeping unit and a quantity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    pub sku: String,
    pub qty: i64,
}

/// `order.created`: an order was accepted and waits for its stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreated {
    pub event_id: Uuid,
    pub order_id: i64,
    pub user_id: i64,
    pub items: Vec<LineItem>,
    pub created_at: DateTime<Utc>,
    /// Where to tell the customer about this order, when the order says so; absent
    /// otherwise (notification-service then uses the user's registered defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
}

/// How to reach a customer: any of an e-mail address, a webhook URL and a phone number
/// (SMS). Checked with [`crate::values::EmailAddress`], [`crate::values::WebhookUrl`] and
/// [`crate::values::PhoneNumber`] where they enter the system.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// An E.164 number (`+14155550100`) for SMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl Contact {
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.webhook_url.is_none() && self.phone.is_none()
    }

    /// A contact whose present fields are valid, or each bad field (`email`, `webhookUrl`,
    /// `phone`) with what is wrong with it. A webhook must point where `destinations`
    /// allow; a phone number must be E.164.
    pub fn checked(
        email: Option<&str>,
        webhook_url: Option<&str>,
        phone: Option<&str>,
        destinations: &crate::destinations::Destinations,
    ) -> Result<Self, Vec<(&'static str, String)>> {
        use crate::values::{EmailAddress, PhoneNumber, WebhookUrl};
        let mut errors = Vec::new();
        let email = email.and_then(|e| match EmailAddress::parse(e) {
            Ok(e) => Some(e.as_str().to_string()),
            Err(m) => {
                errors.push(("email", m));
                None
            }
        });
        let webhook_url = webhook_url.and_then(|u| {
            match WebhookUrl::parse(u).and_then(|u| {
                let host = u.url().host().expect("a webhook URL names a host");
                destinations.check_host(&host).map(|()| u)
            }) {
                Ok(u) => Some(u.as_str().to_string()),
                Err(m) => {
                    errors.push(("webhookUrl", m));
                    None
                }
            }
        });
        let phone = phone.and_then(|p| match PhoneNumber::parse(p) {
            Ok(p) => Some(p.as_str().to_string()),
            Err(m) => {
                errors.push(("phone", m));
                None
            }
        });
        if errors.is_empty() {
            Ok(Self {
                email,
                webhook_url,
                phone,
            })
        } else {
            Err(errors)
        }
    }
}

/// The constant `status` of `inventory.reserved`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservedStatus {
    #[serde(rename = "RESERVED")]
    Reserved,
}

/// `inventory.reserved`: every item of the order is reserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReserved {
    pub event_id: Uuid,
    pub order_id: i64,
    pub status: ReservedStatus,
    pub items: Vec<LineItem>,
    pub timestamp: DateTime<Utc>,
}

/// The constant `status` of `inventory.rejected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectedStatus {
    #[serde(rename = "REJECTED")]
    Rejected,
}

/// Why an order could not be reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectionReason {
    /// Every SKU exists but at least one has less available than requested.
    OutOfStock,
    /// At least one SKU is not in the inventory at all.
    UnknownSku,
}

impl RejectionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "OUT_OF_STOCK",
            Self::UnknownSku => "UNKNOWN_SKU",
        }
    }
}

/// One item that could not be reserved: how much was asked and how much there was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Shortage {
    pub sku: String,
    pub requested: i64,
    pub available: i64,
}

/// `inventory.rejected`: nothing was reserved, and here is why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryRejected {
    pub event_id: Uuid,
    pub order_id: i64,
    pub status: RejectedStatus,
    pub reason: RejectionReason,
    pub shortages: Vec<Shortage>,
    pub timestamp: DateTime<Utc>,
}

/// `order.cancelled`: the customer cancelled the order; any reservation must be released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelled {
    pub event_id: Uuid,
    pub order_id: i64,
    pub user_id: i64,
    pub cancelled_at: DateTime<Utc>,
}

/// The constant `status` of `inventory.released`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReleasedStatus {
    #[serde(rename = "RELEASED")]
    Released,
}

/// `inventory.released`: a cancelled order's stock is available again. `items` lists what
/// was given back: empty when the order was cancelled before anything was reserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReleased {
    pub event_id: Uuid,
    pub order_id: i64,
    pub status: ReleasedStatus,
    pub items: Vec<LineItem>,
    pub timestamp: DateTime<Utc>,
}

/// `notification.failed`: a notification could not be delivered on one channel after its
/// last attempt (or at once, on a permanent refusal). Produced by notification-service so
/// that support tooling can reach the customer another way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationFailed {
    pub event_id: Uuid,
    pub order_id: i64,
    /// The event the notification was about (e.g. an `inventory.reserved` event id).
    pub source_event_id: Uuid,
    /// What the notification said: `order.confirmed`, `order.rejected`, `order.cancelled`, `order.failed`.
    pub kind: String,
    /// `email`, `webhook` (or another channel's name).
    pub channel: String,
    /// The address or URL it was sent to.
    pub recipient: String,
    pub attempts: i64,
    /// The last error, as the channel reported it.
    pub error: String,
    pub timestamp: DateTime<Utc>,
}

/// `impl Event for $event` with `TYPE` = the topic `$topic`.
macro_rules! event_on {
    ($($event:ident => $topic:ident),* $(,)?) => {$(
        impl Event for $event {
            const TYPE: &'static str = crate::topics::$topic;
            fn event_id(&self) -> Uuid {
                self.event_id
            }
            fn order_id(&self) -> i64 {
                self.order_id
            }
        }
    )*};
}

event_on! {
    OrderCreated => ORDER_CREATED,
    OrderCancelled => ORDER_CANCELLED,
    InventoryReserved => INVENTORY_RESERVED,
    InventoryRejected => INVENTORY_REJECTED,
    InventoryReleased => INVENTORY_RELEASED,
    NotificationFailed => NOTIFICATION_FAILED,
}

/// The fields every event has, and nothing else: how a reader takes an event of a type
/// this build does not know yet (a newer producer's `inventory.<event>`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnyEvent {
    pub event_id: Uuid,
    pub order_id: i64,
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_order_created_schema_refuses_an_order_without_items() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../schemas/order.created.schema.json")).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let bad = serde_json::json!({
            "eventId": "0b5e7c1e-1d2a-4c55-9a57-3c0f2d1f9e01",
            "orderId": 1, "userId": 1, "items": [], "createdAt": "2026-11-24T10:00:00Z"
        });
        assert!(!validator.is_valid(&bad));
    }
}
