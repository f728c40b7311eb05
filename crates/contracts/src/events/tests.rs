//! The events' JSON: each event against its golden file, and what is refused.

use super::*;

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
        .unwrap() // a literal RFC 3339 timestamp
        .with_timezone(&Utc)
}

fn id() -> Uuid {
    Uuid::parse_str("0b5e7c1e-1d2a-4c55-9a57-3c0f2d1f9e01").unwrap() // a literal UUID
}

/// Compares an event's JSON with its golden file, so a change of the wire format is
/// a deliberate edit of `tests/golden/*.json`, never an accident; and checks the golden
/// file against the event's JSON Schema, so the schemas cannot drift from the code.
fn assert_golden<E: Event + std::fmt::Debug + PartialEq>(event: &E, file: &str) {
    let path = format!("{}/tests/golden/{file}", env!("CARGO_MANIFEST_DIR"));
    let golden = std::fs::read_to_string(&path).expect("golden file exists");
    let golden: serde_json::Value = serde_json::from_str(&golden).expect("golden is JSON");
    assert_eq!(serde_json::to_value(event).unwrap(), golden, "{file}");
    let back: E = serde_json::from_value(golden.clone()).expect("golden decodes");
    assert_eq!(&back, event);

    let schema_file = format!("{}.schema.json", E::TYPE);
    let schema = format!("{}/schemas/{schema_file}", env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&schema).expect("schema exists"))
            .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&golden)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{file} breaks {schema_file}: {errors:?}");
}

#[test]
fn order_created_matches_its_golden_file() {
    let event = OrderCreated {
        event_id: id(),
        order_id: 7,
        user_id: 42,
        items: vec![LineItem {
            sku: "ABC-001".into(),
            qty: 2,
        }],
        created_at: at(),
        contact: None,
    };
    assert_golden(&event, "order.created.json");
}

#[test]
fn order_created_with_contact_matches_its_golden_file() {
    let event = OrderCreated {
        event_id: id(),
        order_id: 8,
        user_id: 42,
        items: vec![LineItem {
            sku: "ABC-001".into(),
            qty: 1,
        }],
        created_at: at(),
        contact: Some(Contact {
            email: Some("alice@example.com".into()),
            webhook_url: Some("https://hooks.example.com/openorder".into()),
            phone: Some("+14155550100".into()),
        }),
    };
    assert_golden(&event, "order.created.with-contact.json");
}

#[test]
fn notification_failed_matches_its_golden_file() {
    let event = NotificationFailed {
        event_id: id(),
        order_id: 7,
        source_event_id: Uuid::parse_str("6f1c2a8e-5b7d-4e0a-8c3f-2d9e1b4a7c60").unwrap(), // a literal UUID
        kind: "order.confirmed".into(),
        channel: "webhook".into(),
        recipient: "https://hooks.example.com/openorder".into(),
        attempts: 5,
        error: "HTTP 503 Service Unavailable".into(),
        timestamp: at(),
    };
    assert_golden(&event, "notification.failed.json");
}

#[test]
fn inventory_reserved_matches_its_golden_file() {
    let event = InventoryReserved {
        event_id: id(),
        order_id: 7,
        status: ReservedStatus::Reserved,
        items: vec![LineItem {
            sku: "ABC-001".into(),
            qty: 2,
        }],
        timestamp: at(),
    };
    assert_golden(&event, "inventory.reserved.json");
}

#[test]
fn inventory_rejected_matches_its_golden_file() {
    let event = InventoryRejected {
        event_id: id(),
        order_id: 7,
        status: RejectedStatus::Rejected,
        reason: RejectionReason::OutOfStock,
        shortages: vec![Shortage {
            sku: "OUT-001".into(),
            requested: 1,
            available: 0,
        }],
        timestamp: at(),
    };
    assert_golden(&event, "inventory.rejected.json");
}

#[test]
fn order_cancelled_matches_its_golden_file() {
    let event = OrderCancelled {
        event_id: id(),
        order_id: 7,
        user_id: 42,
        cancelled_at: at(),
    };
    assert_golden(&event, "order.cancelled.json");
}

#[test]
fn inventory_released_matches_its_golden_file() {
    let event = InventoryReleased {
        event_id: id(),
        order_id: 7,
        status: ReleasedStatus::Released,
        items: vec![LineItem {
            sku: "ABC-001".into(),
            qty: 2,
        }],
        timestamp: at(),
    };
    assert_golden(&event, "inventory.released.json");
}

#[test]
fn an_order_created_without_items_is_refused() {
    let json = r#"{"eventId":"0b5e7c1e-1d2a-4c55-9a57-3c0f2d1f9e01","orderId":1,"userId":1,"createdAt":"2026-11-24T10:00:00Z"}"#;
    assert!(serde_json::from_str::<OrderCreated>(json).is_err());
}
