//! What e-mail and webhooks deliver: the exact e-mail and the signed webhook of an order,
//! one of each; retries of receivers that fail for a while (the same message each time);
//! FAILED and `notification.failed` when a receiver keeps failing or refuses for good; and a
//! receiver that never answers holding up no other delivery.

use std::time::Duration;

use super::{
    channels_of, delivery, failure_of, notify, post_with_contact, refused_at_once, secret_key,
    sentinel_behind, settled_notifications, stack,
};
use crate::support::receivers::{signature_is_valid, Behaviour, SmtpSink, WebhookReceiver};
use crate::support::{BrokerKind, DbKind, Stack};
use serde_json::{json, Value};

async fn an_order_with_a_contact_gets_exactly_one_email_and_one_signed_webhook(
    broker: BrokerKind,
    db: DbKind,
) {
    let smtp = SmtpSink::start(0);
    let hook = WebhookReceiver::start(Behaviour::FailFirst(0)).await;
    let Some(stack) = stack(broker, db, notify(Some(&smtp), 3)).await else {
        return;
    };
    let contact = json!({"email": "alice@example.com", "webhookUrl": hook.url});
    let id = post_with_contact(&stack, 42, "ABC-001", 2, contact.clone()).await;
    let notes = settled_notifications(&stack.notification_url, id, 1).await;
    let n = &notes[0];
    let text = routed_to_every_channel_at_once(n, id);
    the_email_is_the_notification(&smtp, n, id, &text).await;
    the_webhook_is_the_notification_signed(&hook, n, id, &text).await;
    one_of_each_behind_a_sentinel(&stack, &smtp, &hook, id, contact).await;
    stack.stop().await;
}

/// The order's notification: confirmed, routed to the log, e-mail and the webhook, each
/// delivered at the first attempt. Returns its text.
fn routed_to_every_channel_at_once(n: &Value, id: i64) -> String {
    assert_eq!(n["kind"], "order.confirmed");
    assert_eq!(n["status"], "ROUTED");
    assert_eq!(channels_of(n), ["log", "email", "webhook"]);
    for d in n["deliveries"].as_array().unwrap() {
        assert_eq!(d["status"], "DELIVERED", "{d}");
        assert_eq!(d["attempts"], 1, "{d}");
        assert!(d["deliveredAt"].is_string(), "{d}");
    }
    let text = format!("Order {id} is confirmed: 2 × ABC-001 reserved for you.");
    assert_eq!(n["message"], text);
    text
}

/// The e-mail, as the SMTP server received it.
async fn the_email_is_the_notification(smtp: &SmtpSink, n: &Value, id: i64, text: &str) {
    let mails = smtp.wait_messages(1).await;
    let mail = &mails[0];
    assert_eq!(mail["to"], json!(["alice@example.com"]));
    assert_eq!(mail["headers"]["To"], "alice@example.com");
    assert_eq!(
        mail["headers"]["From"],
        "OpenOrder <orders@openorder.localhost>"
    );
    assert_eq!(
        mail["headers"]["Subject"],
        format!("Order {id} is confirmed")
    );
    let key = delivery(n, "email")["idempotencyKey"].as_str().unwrap();
    assert_eq!(
        mail["headers"]["Message-ID"],
        format!("<{key}@openorder.localhost>")
    );
    assert_eq!(mail["text"].as_str().unwrap().trim_end(), text);
    assert!(
        mail["html"]
            .as_str()
            .unwrap()
            .contains("<li>2 × ABC-001</li>"),
        "{mail:#}"
    );
}

/// The webhook, as the receiver got it; a tampered body does not verify (the check can
/// fail).
async fn the_webhook_is_the_notification_signed(
    hook: &WebhookReceiver,
    n: &Value,
    id: i64,
    text: &str,
) {
    let requests = hook.wait_requests(1).await;
    let r = &requests[0];
    let key = delivery(n, "webhook")["idempotencyKey"].as_str().unwrap();
    assert_eq!(r.path, "/hooks/openorder");
    assert_eq!(r.header("webhook-id"), key);
    assert_eq!(r.header("idempotency-key"), key);
    assert_eq!(r.header("content-type"), "application/json");
    assert!(signature_is_valid(&secret_key(), r), "bad signature: {r:?}");
    let sent_at: i64 = r.header("webhook-timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 300);
    let body = r.json();
    assert_eq!(body["type"], "order.confirmed");
    assert_eq!(body["data"]["orderId"], id);
    assert_eq!(body["data"]["userId"], 42);
    assert_eq!(body["data"]["text"], text);
    assert_eq!(body["data"]["eventId"], n["eventId"]);
    assert_eq!(body["data"]["event"]["status"], "RESERVED");

    let mut forged = r.clone();
    forged.body = r.body.replace_first(b"order.confirmed", b"order.rejected");
    assert!(!signature_is_valid(&secret_key(), &forged));
}

/// One e-mail and one webhook for the order, and one of each for a sentinel behind it.
async fn one_of_each_behind_a_sentinel(
    stack: &Stack,
    smtp: &SmtpSink,
    hook: &WebhookReceiver,
    id: i64,
    contact: Value,
) {
    let sentinel = sentinel_behind(stack, id, contact).await;
    let mails = smtp.wait_messages(2).await;
    let requests = hook.wait_requests(2).await;
    let mails_of = |order: i64| {
        let subject = format!("Order {order} is confirmed");
        mails
            .iter()
            .filter(|m| m["headers"]["Subject"] == subject)
            .count()
    };
    let requests_of = |order: i64| {
        requests
            .iter()
            .filter(|r| r.json()["data"]["orderId"] == order)
            .count()
    };
    assert_eq!(mails_of(id), 1, "one e-mail: {mails:#?}");
    assert_eq!(requests_of(id), 1, "one webhook");
    assert_eq!((mails_of(sentinel), requests_of(sentinel)), (1, 1));
    assert_eq!((smtp.messages().len(), hook.requests().len()), (2, 2));
}

trait ReplaceFirst {
    fn replace_first(&self, from: &[u8], to: &[u8]) -> Vec<u8>;
}

impl ReplaceFirst for Vec<u8> {
    fn replace_first(&self, from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = self
            .windows(from.len())
            .position(|w| w == from)
            .expect("pattern present");
        [&self[..at], to, &self[at + from.len()..]].concat()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_with_a_contact_gets_one_email_and_one_signed_webhook_on_tansu_with_sqlite() {
    an_order_with_a_contact_gets_exactly_one_email_and_one_signed_webhook(
        BrokerKind::Tansu,
        DbKind::Sqlite,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_with_a_contact_gets_one_email_and_one_signed_webhook_on_kafka_with_postgres() {
    an_order_with_a_contact_gets_exactly_one_email_and_one_signed_webhook(
        BrokerKind::Kafka,
        DbKind::Postgres,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receivers_failing_twice_get_the_same_message_a_third_time_and_it_counts_as_delivered() {
    let smtp = SmtpSink::start(2);
    let hook = WebhookReceiver::start(Behaviour::FailFirst(2)).await;
    let stack = stack(BrokerKind::Tansu, DbKind::Sqlite, notify(Some(&smtp), 5))
        .await
        .unwrap();
    let id = post_with_contact(
        &stack,
        5,
        "OUT-001",
        1,
        json!({"email": "dave@example.com", "webhookUrl": hook.url}),
    )
    .await;
    let notes = settled_notifications(&stack.notification_url, id, 1).await;
    assert_eq!(notes[0]["kind"], "order.rejected");
    for channel in ["email", "webhook"] {
        let d = delivery(&notes[0], channel);
        assert_eq!(d["status"], "DELIVERED", "{d}");
        assert_eq!(d["attempts"], 3, "{d}");
    }
    let requests = hook.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!(r.header("webhook-id"), requests[0].header("webhook-id"));
        assert_eq!(
            r.body, requests[0].body,
            "every attempt sends the same body"
        );
        assert!(signature_is_valid(&secret_key(), r));
    }
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "refused twice, accepted once");
    assert_eq!(
        mails[0]["text"].as_str().unwrap().trim_end(),
        format!("Order {id} was rejected (OUT_OF_STOCK): OUT-001 (asked 1, available 0).")
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_that_keeps_failing_is_failed_and_announced_on_notification_failed() {
    let down = WebhookReceiver::start(Behaviour::AlwaysFail).await;
    let gone = WebhookReceiver::start(Behaviour::Gone).await;
    let stack = stack(BrokerKind::Tansu, DbKind::Sqlite, notify(None, 3))
        .await
        .unwrap();
    let retried = post_with_contact(&stack, 6, "ABC-001", 1, json!({"webhookUrl": down.url})).await;
    let refused = post_with_contact(&stack, 6, "ABC-001", 1, json!({"webhookUrl": gone.url})).await;

    let notes = settled_notifications(&stack.notification_url, retried, 1).await;
    let d = delivery(&notes[0], "webhook");
    assert_eq!(d["status"], "FAILED", "{d}");
    assert_eq!(d["attempts"], 3, "{d}");
    assert!(d["lastError"].as_str().unwrap().contains("503"), "{d}");
    assert_eq!(delivery(&notes[0], "log")["status"], "DELIVERED");
    assert_eq!(down.requests().len(), 3);

    let gone_notes = settled_notifications(&stack.notification_url, refused, 1).await;
    let error = refused_at_once(&gone_notes[0], "webhook");
    assert!(error.contains("410"), "{error}");

    let (event, record) = failure_of(&stack, retried).await;
    assert_eq!(event["orderId"], retried);
    assert_eq!(event["channel"], "webhook");
    assert_eq!(event["recipient"], down.url.as_str());
    assert_eq!(event["attempts"], 3);
    assert_eq!(event["kind"], "order.confirmed");
    assert_eq!(event["sourceEventId"], notes[0]["eventId"]);
    assert!(event["error"].as_str().unwrap().contains("503"));
    assert_eq!(
        record.header_text("event-type").as_deref(),
        Some("notification.failed")
    );
    let (gone_event, _) = failure_of(&stack, refused).await;
    assert_eq!(gone_event["attempts"], 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_that_never_answers_does_not_hold_up_other_deliveries() {
    let slow = WebhookReceiver::start(Behaviour::HangFirst).await;
    let fast = WebhookReceiver::start(Behaviour::FailFirst(0)).await;
    let mut settings = notify(None, 3);
    settings.webhook.webhook_timeout_ms = 60_000;
    settings.delivery.notify_lease_ms = 120_000;
    let stack = stack(BrokerKind::Tansu, DbKind::Sqlite, settings)
        .await
        .unwrap();
    let stuck = post_with_contact(&stack, 12, "ABC-001", 1, json!({"webhookUrl": slow.url})).await;
    slow.wait_requests(1).await;
    let flowing =
        post_with_contact(&stack, 12, "ABC-001", 1, json!({"webhookUrl": fast.url})).await;
    let notes = settled_notifications(&stack.notification_url, flowing, 1).await;
    assert_eq!(delivery(&notes[0], "webhook")["status"], "DELIVERED");
    assert_eq!(fast.requests().len(), 1);
    let held = stack.notifications(stuck).await;
    let d = delivery(&held[0], "webhook");
    assert_eq!(
        d["status"], "PENDING",
        "still in the hands of its sender: {d}"
    );
    assert_eq!(d["attempts"], 1, "{d}");
    // Stopping does not wait for the stuck send beyond the grace period.
    let stopping = std::time::Instant::now();
    stack.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(30));
}
