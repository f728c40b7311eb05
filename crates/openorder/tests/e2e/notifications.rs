//! Notifications reach people, once: e-mail to a real SMTP server (aiosmtpd), webhooks
//! to a real HTTP receiver and SMS to a real HTTP server with Twilio's Messages API, all on
//! loopback, driven by real orders through a real broker.
//! Checked: the exact message received, the webhook signature, retries of transient
//! failures with the same message (after the provider's `Retry-After`), FAILED plus
//! `notification.failed` after persistent failure or a permanent refusal, SMS delivery
//! receipts (signed, and refused unsigned), users' channel preferences, and one message per
//! event when the event comes twice, arrives before its order, or the service is killed
//! mid-send and restarted.
//!
//! A module per topic: [`email_webhook`] (what e-mail and webhooks deliver, and how they
//! fail), [`contacts`] (contacts registered and checked), [`once`] (one message per event:
//! events twice or early, a send interrupted), [`sms`] and [`preferences`]. The helpers
//! here are theirs, and `web_push`'s.

mod contacts;
mod email_webhook;
mod once;
mod preferences;
mod sms;

use std::time::Duration;

use crate::support::receivers::SmtpSink;
use crate::support::{BrokerKind, DbKind, DltRecord, Stack, StackOptions};
use notification_service::delivery::channels::email::SmtpTls;
use notification_service::NotifyArgs;
use serde_json::{json, Value};

/// A Standard Webhooks secret (`whsec_` + base64 of the key).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn secret_key() -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap()
}

/// E-mail to `smtp` (if any), webhooks signed with [`SECRET`], fast retries.
pub(crate) fn notify(smtp: Option<&SmtpSink>, max_attempts: i64) -> NotifyArgs {
    let mut n = NotifyArgs::defaults();
    if let Some(smtp) = smtp {
        n.smtp.smtp_host = Some("127.0.0.1".into());
        n.smtp.smtp_port = Some(smtp.port);
        n.smtp.smtp_tls = SmtpTls::None;
    }
    n.webhook.webhook_secret = Some(SECRET.into());
    n.delivery.notify_max_attempts = max_attempts;
    n.delivery.notify_backoff_ms = 100;
    n.delivery.notify_lease_ms = 5_000;
    n
}

pub(crate) async fn stack(broker: BrokerKind, db: DbKind, notify: NotifyArgs) -> Option<Stack> {
    Stack::spawn(
        broker,
        db,
        StackOptions {
            notify,
            ..StackOptions::default()
        },
    )
    .await
}

fn order_with_contact(user_id: i64, sku: &str, qty: i64, contact: Value) -> Value {
    json!({"userId": user_id, "items": [{"sku": sku, "qty": qty}], "contact": contact})
}

/// POSTs an order of `qty` of `sku` for `user_id` with `contact`; returns its id.
async fn post_with_contact(
    stack: &Stack,
    user_id: i64,
    sku: &str,
    qty: i64,
    contact: Value,
) -> i64 {
    stack
        .post_order_body(order_with_contact(user_id, sku, qty, contact))
        .await
}

/// Waits until the order has `count` notifications whose deliveries are all final
/// (DELIVERED or FAILED); returns them.
pub(crate) async fn settled_notifications(base: &str, order_id: i64, count: usize) -> Vec<Value> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let notes: Vec<Value> = crate::support::json_of(
            http.get(format!("{base}/api/notifications?orderId={order_id}")),
        )
        .await;
        let settled = notes.len() == count
            && notes.iter().all(|n| {
                let ds = n["deliveries"].as_array().unwrap();
                !ds.is_empty() && ds.iter().all(|d| d["status"] != "PENDING")
            });
        if settled {
            return notes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "notifications of order {order_id} not settled in 90 s: {notes:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `field` of each entry of a problem's `errors`, in order.
pub(crate) fn problem_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect()
}

pub(crate) fn delivery<'a>(notification: &'a Value, channel: &str) -> &'a Value {
    notification["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["channel"] == channel)
        .unwrap_or_else(|| panic!("no {channel} delivery in {notification:#}"))
}

/// The channels of a notification's deliveries, in order.
pub(crate) fn channels_of(notification: &Value) -> Vec<&str> {
    notification["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["channel"].as_str().unwrap())
        .collect()
}

/// The `channel` delivery of `notification`, checked to have FAILED at its first attempt
/// (a permanent refusal is not retried); returns its last error.
pub(crate) fn refused_at_once<'a>(notification: &'a Value, channel: &str) -> &'a str {
    let d = delivery(notification, channel);
    assert_eq!(d["status"], "FAILED", "{d}");
    assert_eq!(d["attempts"], 1, "a permanent refusal is not retried: {d}");
    d["lastError"].as_str().unwrap()
}

/// The `notification.failed` event of order `id` (waited for), and its record.
pub(crate) async fn failure_of(stack: &Stack, id: i64) -> (Value, DltRecord) {
    let record = stack
        .wait_record(&stack.topics().notification_failed(), &id.to_string())
        .await;
    let event = serde_json::from_slice(&record.payload).unwrap();
    (event, record)
}

/// A sentinel behind order `id` ([`Stack::produce_sentinel_order`]: a fresh order on its
/// partition) with `contact`, waited for until its deliveries are final. notification-service
/// reads a partition in order, and its dispatcher sends what is due in turn: once the
/// sentinel's messages are out, a second message for `id` (from an event applied twice, or a
/// send repeated) would have gone out too. Returns the sentinel's id.
async fn sentinel_behind(stack: &Stack, id: i64, contact: Value) -> i64 {
    let sentinel = stack
        .produce_sentinel_order(&id.to_string(), Some(contact))
        .await;
    settled_notifications(&stack.notification_url, sentinel.id, 1).await;
    sentinel.id
}
