//! The services' HTTP answers that another crate reads: the console reaches the services
//! over HTTP and decodes their answers into these very types, so a field renamed in a
//! service is a compile error in the console, not a blank cell on a page.
//!
//! Each service re-exports its own under the path it had (`inventory_service::store::StockItem`,
//! `notification_service::store::Notification`, …), so its code and its OpenAPI document are
//! as they were: the schemas keep their names, and their descriptions come from the same doc
//! comments. That is why the types without a doc comment of their own (`Accepted`, `Page`,
//! `OrderCounts`, `StuckPage`) say what they are in plain comments: a doc comment would add a
//! description to the committed document.
//!
//! Every type here is `Serialize` (the service answers it) and `Deserialize` (the console
//! reads it), with the serde attributes that make the JSON; a field the service leaves out
//! when empty (`skip_serializing_if`) is an `Option` or has `#[serde(default)]`, so what the
//! service writes reads back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::{LineItem, Shortage};
use crate::lifecycle::OrderStatus;

/// One SKU's stock as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockItem {
    pub sku: String,
    pub available: i64,
    pub reserved: i64,
    pub updated_at: String,
}

/// An order as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub order_id: i64,
    pub user_id: i64,
    pub status: OrderStatus,
    pub items: Vec<LineItem>,
    /// Why it was rejected (`OUT_OF_STOCK`, `UNKNOWN_SKU`), when REJECTED; `TIMEOUT` when
    /// CANCELLED because it stayed PENDING too long (`--expire-pending-after`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What was short, when REJECTED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortages: Option<Vec<Shortage>>,
    /// Why processing failed, when FAILED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When inventory gave a cancelled order's stock back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

// order-service's `POST /api/orders` when the order is not decided yet (202): its id, and
// PENDING. (Decided within a `Prefer: wait`, it answers the `OrderView`, 201, whose
// `orderId` and `status` read as an `Accepted` too.)
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub order_id: i64,
    pub status: OrderStatus,
}

// order-service's `GET /api/orders?userId=&page=&size=`: one page of a user's orders.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub orders: Vec<OrderView>,
    pub page: i64,
    pub size: i64,
    pub has_more: bool,
}

// order-service's `GET /admin/orders/counts`: how many orders are in each status, and how
// many are stuck.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderCounts {
    /// Per status of the lifecycle (every one, 0 when no order is in it), how many orders
    /// are in it.
    pub counts: BTreeMap<String, i64>,
    /// How many of the PENDING orders are stuck: PENDING longer than `--stuck-after`, as
    /// `/admin/orders/stuck` lists them.
    pub stuck: i64,
    /// `--stuck-after`, in seconds.
    pub stuck_after_seconds: u64,
}

// order-service's `GET /admin/orders/stuck`: a page of the orders PENDING longer than
// `--stuck-after`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StuckPage {
    /// `--stuck-after`, in seconds: orders PENDING longer are listed.
    pub stuck_after_seconds: u64,
    /// Oldest first.
    pub orders: Vec<StuckOrder>,
    pub has_more: bool,
}

/// An order PENDING longer than `--stuck-after`, as `/admin/orders/stuck` lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StuckOrder {
    pub order_id: i64,
    pub user_id: i64,
    /// Seconds since it was placed.
    pub age_seconds: i64,
    pub created_at: String,
}

/// A notification as the API shows it, with each channel's delivery.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: i64,
    pub event_id: String,
    pub order_id: i64,
    pub event_type: String,
    pub kind: String,
    /// `AWAITING_CONTACT` (the order's `order.created` has not arrived yet) or `ROUTED`.
    pub status: String,
    pub subject: String,
    pub message: String,
    pub created_at: String,
    pub deliveries: Vec<DeliveryView>,
}

/// One channel's delivery as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub channel: String,
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub idempotency_key: String,
    pub created_at: String,
    pub updated_at: String,
    pub delivered_at: Option<String>,
    /// When the next attempt is due (RFC 3339), while the delivery is pending: for one held
    /// by quiet hours or a digest window, when it goes. For one `GATHERED` into a digest,
    /// when the digest was due as it joined.
    pub next_attempt_at: Option<String>,
    /// Why it waits past the time it was routed, while it has not been tried yet:
    /// `quietHours` (the user's quiet hours; it goes when they end) or `digest` (it carries
    /// a digest, which goes when its window closes).
    pub held: Option<String>,
    /// The idempotency key of the digest it carries or was gathered into (`GATHERED`): the
    /// delivery with that key (under the notification that opened the window) is the
    /// message sent.
    pub digest: Option<String>,
    /// For a fallback: the channel of the delivery it replaces (which failed for good).
    pub fallback_of: Option<String>,
    /// For a fallback: why the delivery it replaces failed.
    pub fallback_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a service writes, the console reads back: the same value.
    fn round_trip<T>(value: &T) -> T
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
    }

    #[test]
    fn the_answers_read_back_as_they_were_written() {
        let item = StockItem {
            sku: "ABC-001".into(),
            available: 7,
            reserved: 2,
            updated_at: "2026-01-01T10:00:00.000Z".into(),
        };
        assert_eq!(round_trip(&item), item);
        let counts = OrderCounts {
            counts: BTreeMap::from([("PENDING".to_string(), 3), ("CONFIRMED".to_string(), 40)]),
            stuck: 2,
            stuck_after_seconds: 300,
        };
        assert_eq!(round_trip(&counts), counts);
        let stuck = StuckPage {
            stuck_after_seconds: 300,
            orders: vec![StuckOrder {
                order_id: 9,
                user_id: 42,
                age_seconds: 7_500,
                created_at: "2026-01-01T08:00:00.000Z".into(),
            }],
            has_more: true,
        };
        assert_eq!(round_trip(&stuck), stuck);
    }

    #[test]
    fn an_order_reads_back_and_its_empty_fields_are_left_out() {
        let order = OrderView {
            order_id: 12,
            user_id: 42,
            status: OrderStatus::Pending,
            items: vec![LineItem {
                sku: "ABC-001".into(),
                qty: 2,
            }],
            reason: None,
            shortages: None,
            error: None,
            released_at: None,
            created_at: "2026-01-01T10:00:00.000Z".into(),
            updated_at: "2026-01-01T10:00:00.000Z".into(),
        };
        let json = serde_json::to_value(&order).unwrap();
        assert!(json.get("reason").is_none(), "{json}");
        assert_eq!(
            serde_json::from_value::<OrderView>(json.clone()).unwrap(),
            order
        );
        let page = Page {
            orders: vec![order],
            page: 0,
            size: 20,
            has_more: false,
        };
        assert_eq!(round_trip(&page), page);
        // A decided order (201) tells its id and status as the 202's `Accepted` does.
        let accepted: Accepted = serde_json::from_value(json).unwrap();
        assert_eq!(
            accepted,
            Accepted {
                order_id: 12,
                status: OrderStatus::Pending
            }
        );
    }

    #[test]
    fn a_notification_reads_back_with_the_deliveries_fields_it_left_null() {
        let json = serde_json::json!({
            "id": 1, "eventId": "e-1", "orderId": 12, "eventType": "order.confirmed",
            "kind": "order.confirmed", "status": "ROUTED", "subject": "Order 12 confirmed",
            "message": "…", "createdAt": "2026-01-01T10:00:00.000Z",
            "deliveries": [{
                "channel": "email", "recipient": "a@example.com", "status": "PENDING",
                "attempts": 0, "lastError": null, "idempotencyKey": "k-1",
                "createdAt": "2026-01-01T10:00:00.000Z",
                "updatedAt": "2026-01-01T10:00:00.000Z",
                "deliveredAt": null, "nextAttemptAt": "2026-01-02T06:00:00.000Z",
                "held": "quietHours", "digest": null, "fallbackOf": null, "fallbackReason": null
            }]
        });
        let notification: Notification = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(
            notification.deliveries[0].held.as_deref(),
            Some("quietHours")
        );
        assert_eq!(serde_json::to_value(&notification).unwrap(), json);
    }

    #[test]
    fn the_json_keeps_the_services_field_names() {
        let json = serde_json::to_value(StuckOrder {
            order_id: 1,
            user_id: 2,
            age_seconds: 3,
            created_at: "x".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"orderId": 1, "userId": 2, "ageSeconds": 3, "createdAt": "x"})
        );
    }
}
