//! A customer sees and changes only their own: Alice orders for herself only; her order,
//! notification and contact are hers alone; she cancels her own, which an operator may see.

use std::time::Duration;

use super::{Locked, ALICE, BOB};
use reqwest::{Method, StatusCode};
use serde_json::json;

pub(super) async fn a_customer_sees_and_changes_only_their_own_orders_notifications_and_contact(
    l: &Locked,
) {
    let orders = l.orders();
    let (alice, bob) = (l.issuer.token(ALICE), l.issuer.token(BOB));
    let order = |user: i64| json!({"userId": user, "items": [{"sku": "ABC-001", "qty": 1}]});
    // Alice orders for herself; not for Bob.
    let (status, problem) = l
        .call(Method::POST, &orders, Some(&alice), Some(order(BOB)))
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::FORBIDDEN, Some("/problems/forbidden"))
    );
    let (_, listed) = l.get(&format!("{orders}?userId={BOB}"), &l.ops[0]).await;
    assert_eq!(
        listed["orders"],
        json!([]),
        "the refused order was not written"
    );
    let (status, accepted) = l
        .call(Method::POST, &orders, Some(&alice), Some(order(ALICE)))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["orderId"].as_i64().unwrap();
    let mine = format!("{orders}/{id}");

    let (status, seen) = l.get(&mine, &alice).await;
    assert_eq!(
        (status, seen["userId"].as_i64()),
        (StatusCode::OK, Some(ALICE))
    );
    let (status, _) = l.get(&mine, &bob).await;
    assert_eq!(status, 404, "another's order is not found");
    let (status, _) = l
        .call(Method::POST, &format!("{mine}/cancel"), Some(&bob), None)
        .await;
    assert_eq!(status, 404, "nor cancelled");
    let (status, _) = l.get(&format!("{orders}?userId={ALICE}"), &bob).await;
    assert_eq!(status, 403);
    let (status, listed) = l.get(&orders, &bob).await;
    assert_eq!(
        (status, listed["orders"].clone()),
        (StatusCode::OK, json!([])),
        "Bob's own list"
    );
    let (_, listed) = l.get(&orders, &alice).await;
    assert_eq!(
        listed["orders"][0]["orderId"].as_i64(),
        Some(id),
        "Alice's own list"
    );

    her_notification_is_hers_alone(l, id, &alice, &bob).await;
    her_contact_is_hers_to_read_and_set(l, &alice, &bob).await;

    // She cancels her own; an operator may see it too.
    let (status, cancelled) = l
        .call(Method::POST, &format!("{mine}/cancel"), Some(&alice), None)
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (StatusCode::OK, Some("CANCELLED"))
    );
    let (status, _) = l.get(&mine, &l.ops[1]).await;
    assert_eq!(status, 200);
}

/// Her notification of order `id` is hers alone: Bob sees none of it, by order or among the
/// latest.
async fn her_notification_is_hers_alone(l: &Locked, id: i64, alice: &str, bob: &str) {
    let n = &l.stack.notification_url;
    let by_order = format!("{n}/api/notifications?orderId={id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, notes) = l.get(&by_order, alice).await;
        if !notes.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} not notified"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, notes) = l.get(&by_order, bob).await;
    assert_eq!((status, notes), (StatusCode::OK, json!([])));
    let (_, latest) = l.get(&format!("{n}/api/notifications"), bob).await;
    assert!(
        latest
            .as_array()
            .unwrap()
            .iter()
            .all(|note| note["orderId"] != id),
        "{latest}"
    );
    let (_, latest) = l.get(&format!("{n}/api/notifications"), alice).await;
    assert!(
        latest
            .as_array()
            .unwrap()
            .iter()
            .any(|note| note["orderId"] == id),
        "{latest}"
    );
}

/// Her contact is hers to read and set: Bob can do neither.
async fn her_contact_is_hers_to_read_and_set(l: &Locked, alice: &str, bob: &str) {
    let n = &l.stack.notification_url;
    let contact = format!("{n}/api/users/{ALICE}/contact");
    let (status, _) = l
        .call(
            Method::PUT,
            &contact,
            Some(alice),
            Some(json!({"email": "alice@example.com"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = l.get(&contact, bob).await;
    assert_eq!(status, 403);
    let (status, _) = l
        .call(
            Method::PUT,
            &contact,
            Some(bob),
            Some(json!({"email": "bob@example.com"})),
        )
        .await;
    assert_eq!(status, 403);
    let (_, kept) = l.get(&contact, alice).await;
    assert_eq!(kept["email"], "alice@example.com");
}
