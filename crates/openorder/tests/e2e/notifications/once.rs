//! One message per event: an event delivered twice sends once (a new event for the same
//! order sends again), an event that arrives before its order waits for it, and a send
//! interrupted by a kill is sent again, the same, after the restart, and no other.

use super::{
    delivery, notify, order_with_contact, post_with_contact, settled_notifications, stack, SECRET,
};
use crate::support;
use crate::support::receivers::{Behaviour, SmtpSink, WebhookReceiver};
use crate::support::{BrokerKind, DbKind, Stack, UpPorts, UpProcess};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_delivered_twice_or_before_its_order_sends_one_message_per_channel() {
    let smtp = SmtpSink::start(0);
    let hook = WebhookReceiver::start(Behaviour::FailFirst(0)).await;
    let stack = stack(BrokerKind::Tansu, DbKind::Sqlite, notify(Some(&smtp), 3))
        .await
        .unwrap();
    let id = post_with_contact(
        &stack,
        8,
        "ABC-001",
        1,
        json!({"email": "erin@example.com", "webhookUrl": hook.url}),
    )
    .await;
    settled_notifications(&stack.notification_url, id, 1).await;
    an_event_again_sends_nothing_and_a_new_one_sends_again(&stack, &smtp, &hook, id).await;
    an_event_before_its_order_waits_for_it(&stack, &smtp).await;
    // Both of the early order's notifications are settled, their e-mails sent after the
    // first order's messages: still one e-mail and one webhook per event of that order.
    assert_eq!(smtp.messages().len(), 4, "{:#?}", smtp.messages());
    assert_eq!(hook.requests().len(), 2, "one webhook per event");
    stack.stop().await;
}

/// The same inventory.reserved record of order `id` again (a redelivery or a duplicate
/// publish), then a new event for the same order behind it on the same partition, as a
/// marker: two notifications, one e-mail and one webhook each.
async fn an_event_again_sends_nothing_and_a_new_one_sends_again(
    stack: &Stack,
    smtp: &SmtpSink,
    hook: &WebhookReceiver,
    id: i64,
) {
    let topics = stack.topics();
    let reserved = stack
        .wait_record(&topics.inventory_reserved(), &id.to_string())
        .await;
    stack
        .produce_again(&topics.inventory_reserved(), &id.to_string(), &reserved)
        .await;
    let mut marker: serde_json::Value = serde_json::from_slice(&reserved.payload).unwrap();
    marker["eventId"] = json!(uuid::Uuid::new_v4());
    stack
        .produce_raw(
            &topics.inventory_reserved(),
            &id.to_string(),
            marker.to_string().as_bytes(),
            &[("event-type", "inventory.reserved")],
        )
        .await;
    let notes = settled_notifications(&stack.notification_url, id, 2).await;
    assert_eq!(notes[1]["eventId"], marker["eventId"]);
    let mails = smtp.wait_messages(2).await;
    let requests = hook.wait_requests(2).await;
    // Checked again at the end, once the later messages below are out: a third one for
    // this order would have come before them.
    assert_eq!(smtp.messages().len(), 2, "one e-mail per event: {mails:#?}");
    assert_eq!(hook.requests().len(), 2, "one webhook per event");
    assert_ne!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id")
    );
}

/// An inventory event whose order.created has not arrived yet waits for it, then goes out.
async fn an_event_before_its_order_waits_for_it(stack: &Stack, smtp: &SmtpSink) {
    let topics = stack.topics();
    let early = 900_000_000 + rand::random_range(0..1_000_000i64);
    let event_id = uuid::Uuid::new_v4();
    let reserved_early = json!({
        "eventId": event_id, "orderId": early, "status": "RESERVED",
        "items": [{"sku": "ABC-001", "qty": 1}], "timestamp": "2026-11-24T10:00:00Z"
    });
    stack
        .produce_raw(
            &topics.inventory_reserved(),
            &early.to_string(),
            reserved_early.to_string().as_bytes(),
            &[("event-type", "inventory.reserved")],
        )
        .await;
    let waiting = stack.wait_notifications(early).await;
    assert_eq!(waiting[0]["status"], "AWAITING_CONTACT", "{waiting:#?}");
    assert_eq!(waiting[0]["deliveries"], json!([]));
    let created = json!({
        "eventId": uuid::Uuid::new_v4(), "orderId": early, "userId": 9,
        "items": [{"sku": "ABC-001", "qty": 1}], "createdAt": "2026-11-24T09:59:59Z",
        "contact": {"email": "frank@example.com"}
    });
    stack
        .produce_raw(
            &topics.order_created(),
            &early.to_string(),
            created.to_string().as_bytes(),
            &[("event-type", "order.created")],
        )
        .await;
    // Two notifications: the early event, and inventory-service's own decision on the
    // order.created just produced.
    let notes = settled_notifications(&stack.notification_url, early, 2).await;
    assert_eq!(notes[0]["eventId"], json!(event_id));
    assert_eq!(notes[0]["status"], "ROUTED");
    let sent = delivery(&notes[0], "email");
    assert_eq!(sent["status"], "DELIVERED");
    assert_eq!(sent["recipient"], "frank@example.com");
    let mails = smtp.wait_messages(4).await;
    let key = sent["idempotencyKey"].as_str().unwrap();
    let mail = mails
        .iter()
        .find(|m| m["headers"]["Message-ID"] == format!("<{key}@openorder.localhost>"))
        .expect("the early event's e-mail");
    assert_eq!(mail["to"], json!(["frank@example.com"]));
    assert_eq!(
        mail["headers"]["Subject"],
        format!("Order {early} is confirmed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_mid_send_and_restarted_the_service_sends_the_same_webhook_again_and_no_other() {
    let hook = WebhookReceiver::start(Behaviour::HangFirst).await;
    let data = support::temp_dir("notify-kill");
    let ports = UpPorts::free().expect("free ports");
    let env = [
        ("OPENORDER_WEBHOOK_SECRET", SECRET),
        ("OPENORDER_NOTIFY_LEASE_MS", "1500"),
        ("OPENORDER_NOTIFY_BACKOFF_MS", "100"),
        ("OPENORDER_WEBHOOK_TIMEOUT_MS", "60000"),
        // The receiver is on loopback, which webhooks may not reach by default.
        ("OPENORDER_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8"),
    ];
    let mut up = UpProcess::start_with_env(&data, &ports, &env).await;
    let http = reqwest::Client::new();
    let order = order_with_contact(11, "ABC-001", 1, json!({"webhookUrl": hook.url}));
    let id = support::post_order_at(&http, &up.order_url, &order).await;
    // The receiver holds the first request: the sender is mid-send. Kill everything.
    hook.wait_requests(1).await;
    up.child.kill().unwrap();
    up.child.wait().unwrap();
    drop(up);

    let up = UpProcess::start_with_env(&data, &ports, &env).await;
    let notes = settled_notifications(&up.notification_url, id, 1).await;
    let d = delivery(&notes[0], "webhook");
    assert_eq!(d["status"], "DELIVERED", "{d}");
    assert_eq!(d["attempts"], 2, "{d}");
    // A later order to the same receiver, through to its delivery: the dispatcher sends it
    // after the resend, so a third send of the first would have come by then.
    let later = support::post_order_at(&http, &up.order_url, &order).await;
    let later_notes = settled_notifications(&up.notification_url, later, 1).await;
    assert_eq!(delivery(&later_notes[0], "webhook")["status"], "DELIVERED");
    let all = hook.wait_requests(3).await;
    assert_eq!(all.len(), 3, "{all:#?}");
    let requests: Vec<_> = all
        .into_iter()
        .filter(|r| r.json()["data"]["orderId"] == id)
        .collect();
    assert_eq!(requests.len(), 2, "the interrupted send and its resend");
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id")
    );
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(requests[1].header("webhook-id"), d["idempotencyKey"]);
    assert_eq!(notes.len(), 1, "one notification for the one event");
    up.stop();
}
