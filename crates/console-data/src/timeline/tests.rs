//! The tests of the timeline module: what a delivery waits for.

use contracts::api::DeliveryView;
use serde_json::json;

use super::entries::delivery_waiting;
use super::*;

/// A delivery as notification-service lists it: a pending e-mail, with `fields` over it.
fn delivery(fields: Value) -> DeliveryView {
    let mut d = json!({
        "channel": "email", "recipient": "a@example.com", "status": "PENDING",
        "attempts": 0, "lastError": null, "idempotencyKey": "k-1",
        "createdAt": "2025-03-10T22:00:00.000Z", "updatedAt": "2025-03-10T22:00:00.000Z",
        "deliveredAt": null, "nextAttemptAt": null, "held": null, "digest": null,
        "fallbackOf": null, "fallbackReason": null
    });
    for (k, v) in fields.as_object().expect("fields") {
        d[k] = v.clone();
    }
    serde_json::from_value(d).expect("a DeliveryView")
}

#[test]
fn a_delivery_says_what_it_waits_for_or_stands_in_for() {
    let held = delivery(
        json!({"status": "PENDING", "held": "quietHours", "nextAttemptAt": "2025-03-11T06:00:00.000Z"}),
    );
    assert_eq!(
        delivery_waiting(&held),
        ", held by quiet hours until 2025-03-11T06:00:00.000Z"
    );
    let gathered =
        delivery(json!({"status": "GATHERED", "digest": "0196-key", "nextAttemptAt": "x"}));
    assert_eq!(
        delivery_waiting(&gathered),
        ", gathered into digest 0196-key"
    );
    let fallback = delivery(
        json!({"status": "DELIVERED", "held": null, "fallbackOf": "sms", "fallbackReason": "sms failed: refused"}),
    );
    assert_eq!(
        delivery_waiting(&fallback),
        ", instead of sms (sms failed: refused)"
    );
    // Tried already: no longer held, whatever was stored.
    let plain = delivery(json!({"status": "DELIVERED", "held": null, "attempts": 1}));
    assert_eq!(delivery_waiting(&plain), "");
}
