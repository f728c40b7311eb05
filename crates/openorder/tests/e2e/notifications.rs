//! Notifications reach people, once: e-mail to a real SMTP server (aiosmtpd), webhooks
//! to a real HTTP receiver and SMS to a real HTTP server with Twilio's Messages API, all on
//! loopback, driven by real orders through a real broker.
//! Checked: the exact message received, the webhook signature, retries of transient
//! failures with the same message (after the provider's `Retry-After`), FAILED plus
//! `notification.failed` after persistent failure or a permanent refusal, SMS delivery
//! receipts (signed, and refused unsigned), users' channel preferences, and one message per
//! event when the event comes twice, arrives before its order, or the service is killed
//! mid-send and restarted.

use std::time::Duration;

use crate::support;
use crate::support::receivers::{
    signature_is_valid, twilio_signature, Behaviour, SmsBehaviour, SmsProvider, SmtpSink,
    WebhookReceiver,
};
use crate::support::{BrokerKind, DbKind, Stack, StackOptions, UpPorts, UpProcess};
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

/// Waits until the order has `count` notifications whose deliveries are all final
/// (DELIVERED or FAILED); returns them.
pub(crate) async fn settled_notifications(base: &str, order_id: i64, count: usize) -> Vec<Value> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let notes: Vec<Value> = http
            .get(format!("{base}/api/notifications?orderId={order_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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

async fn an_order_with_a_contact_gets_exactly_one_email_and_one_signed_webhook(
    broker: BrokerKind,
    db: DbKind,
) {
    let smtp = SmtpSink::start(0);
    let hook = WebhookReceiver::start(Behaviour::FailFirst(0)).await;
    let Some(stack) = stack(broker, db, notify(Some(&smtp), 3)).await else {
        return;
    };
    let id = stack
        .post_order_body(order_with_contact(
            42,
            "ABC-001",
            2,
            json!({"email": "alice@example.com", "webhookUrl": hook.url}),
        ))
        .await;
    let notes = settled_notifications(&stack.notification_url, id, 1).await;
    let n = &notes[0];
    assert_eq!(n["kind"], "order.confirmed");
    assert_eq!(n["status"], "ROUTED");
    let channels: Vec<&str> = n["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["log", "email", "webhook"]);
    for d in n["deliveries"].as_array().unwrap() {
        assert_eq!(d["status"], "DELIVERED", "{d}");
        assert_eq!(d["attempts"], 1, "{d}");
        assert!(d["deliveredAt"].is_string(), "{d}");
    }
    let text = format!("Order {id} is confirmed: 2 × ABC-001 reserved for you.");
    assert_eq!(n["message"], text);

    // The e-mail, as the SMTP server received it.
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

    // The webhook, as the receiver got it.
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

    // A tampered body does not verify (the check above can fail).
    let mut forged = r.clone();
    forged.body = r.body.replace_first(b"order.confirmed", b"order.rejected");
    assert!(!signature_is_valid(&secret_key(), &forged));

    // One of each for the order, and one of each for a sentinel behind it.
    let sentinel = sentinel_behind(
        &stack,
        id,
        json!({"email": "alice@example.com", "webhookUrl": hook.url}),
    )
    .await;
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
    stack.stop().await;
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
async fn a_users_registered_contact_is_checked_and_used_when_the_order_has_none() {
    let smtp = SmtpSink::start(0);
    let stack = stack(BrokerKind::Tansu, DbKind::Sqlite, notify(Some(&smtp), 3))
        .await
        .unwrap();
    let http = &stack.http;
    let url = format!("{}/api/users/77/contact", stack.notification_url);

    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    let bad = http
        .put(&url)
        .json(&json!({"email": "bob at example", "webhookUrl": "ftp://x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let problem: Value = bad.json().await.unwrap();
    let fields = problem_fields(&problem);
    assert_eq!(fields, ["/email", "/webhookUrl"], "{problem}");
    let unknown = http
        .put(&url)
        .json(&json!({"mail": "bob@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 422);
    let bad_user = http
        .put(format!("{}/api/users/0/contact", stack.notification_url))
        .json(&json!({"email": "bob@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_user.status(), 400);

    let put = http
        .put(&url)
        .json(&json!({"email": "bob@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let got: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["email"], "bob@example.com");
    assert_eq!(got["webhookUrl"], Value::Null);

    // No contact on the order: the registered one is used.
    let id = stack.post_order(77, &[("ABC-002", 1)]).await;
    let notes = settled_notifications(&stack.notification_url, id, 1).await;
    assert_eq!(delivery(&notes[0], "email")["recipient"], "bob@example.com");
    // The order's own contact wins over the registered one.
    let own = stack
        .post_order_body(order_with_contact(
            77,
            "ABC-002",
            1,
            json!({"email": "carol@example.com"}),
        ))
        .await;
    let notes = settled_notifications(&stack.notification_url, own, 1).await;
    assert_eq!(
        delivery(&notes[0], "email")["recipient"],
        "carol@example.com"
    );
    // Without an order id: the latest notifications, newest first, with their deliveries.
    let latest: Vec<Value> = stack
        .get_json(format!("{}/api/notifications", stack.notification_url))
        .await;
    assert_eq!(latest[0]["orderId"], own, "{latest:#?}");
    assert_eq!(latest[1]["orderId"], id, "{latest:#?}");
    assert_eq!(latest[0]["deliveries"].as_array().unwrap().len(), 2);
    let mails = smtp.wait_messages(2).await;
    assert_eq!(mails[0]["to"], json!(["bob@example.com"]));
    assert_eq!(mails[1]["to"], json!(["carol@example.com"]));

    // A bad contact on an order is refused before anything is written.
    let refused = http
        .post(format!("{}/api/orders", stack.order_url))
        .json(&order_with_contact(
            77,
            "ABC-002",
            1,
            json!({"email": "x@", "webhookUrl": "https://u:p@h.example/x"}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    let fields = problem_fields(&problem);
    assert_eq!(fields, ["/contact/email", "/contact/webhookUrl"]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receivers_failing_twice_get_the_same_message_a_third_time_and_it_counts_as_delivered() {
    let smtp = SmtpSink::start(2);
    let hook = WebhookReceiver::start(Behaviour::FailFirst(2)).await;
    let stack = stack(BrokerKind::Tansu, DbKind::Sqlite, notify(Some(&smtp), 5))
        .await
        .unwrap();
    let id = stack
        .post_order_body(order_with_contact(
            5,
            "OUT-001",
            1,
            json!({"email": "dave@example.com", "webhookUrl": hook.url}),
        ))
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
    let retried = stack
        .post_order_body(order_with_contact(
            6,
            "ABC-001",
            1,
            json!({"webhookUrl": down.url}),
        ))
        .await;
    let refused = stack
        .post_order_body(order_with_contact(
            6,
            "ABC-001",
            1,
            json!({"webhookUrl": gone.url}),
        ))
        .await;

    let notes = settled_notifications(&stack.notification_url, retried, 1).await;
    let d = delivery(&notes[0], "webhook");
    assert_eq!(d["status"], "FAILED", "{d}");
    assert_eq!(d["attempts"], 3, "{d}");
    assert!(d["lastError"].as_str().unwrap().contains("503"), "{d}");
    assert_eq!(delivery(&notes[0], "log")["status"], "DELIVERED");
    assert_eq!(down.requests().len(), 3);

    let gone_notes = settled_notifications(&stack.notification_url, refused, 1).await;
    let g = delivery(&gone_notes[0], "webhook");
    assert_eq!(g["status"], "FAILED", "{g}");
    assert_eq!(g["attempts"], 1, "a permanent refusal is not retried: {g}");
    assert!(g["lastError"].as_str().unwrap().contains("410"), "{g}");

    let topic = stack.topics().notification_failed();
    let record = stack.wait_record(&topic, &retried.to_string()).await;
    let event: Value = serde_json::from_slice(&record.payload).unwrap();
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
    let gone_record = stack.wait_record(&topic, &refused.to_string()).await;
    let gone_event: Value = serde_json::from_slice(&gone_record.payload).unwrap();
    assert_eq!(gone_event["attempts"], 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_delivered_twice_or_before_its_order_sends_one_message_per_channel() {
    let smtp = SmtpSink::start(0);
    let hook = WebhookReceiver::start(Behaviour::FailFirst(0)).await;
    let stack = stack(BrokerKind::Tansu, DbKind::Sqlite, notify(Some(&smtp), 3))
        .await
        .unwrap();
    let topics = stack.topics();
    let id = stack
        .post_order_body(order_with_contact(
            8,
            "ABC-001",
            1,
            json!({"email": "erin@example.com", "webhookUrl": hook.url}),
        ))
        .await;
    settled_notifications(&stack.notification_url, id, 1).await;

    // The same inventory.reserved record again (a redelivery or a duplicate publish), then a
    // new event for the same order behind it on the same partition, as a marker.
    let reserved = stack
        .wait_record(&topics.inventory_reserved(), &id.to_string())
        .await;
    stack
        .produce_again(&topics.inventory_reserved(), &id.to_string(), &reserved)
        .await;
    let mut marker: Value = serde_json::from_slice(&reserved.payload).unwrap();
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

    // An inventory event whose order.created has not arrived yet waits for it, then goes out.
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let waiting = loop {
        let notes = stack.notifications(early).await;
        if !notes.is_empty() {
            break notes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no notification of the early event in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
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
    // Both of the early order's notifications are settled, their e-mails sent after the
    // first order's messages: still one e-mail and one webhook per event of that order.
    assert_eq!(smtp.messages().len(), 4, "{:#?}", smtp.messages());
    assert_eq!(hook.requests().len(), 2, "one webhook per event");
    stack.stop().await;
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
    let response = http
        .post(format!("{}/api/orders", up.order_url))
        .json(&order_with_contact(
            11,
            "ABC-001",
            1,
            json!({"webhookUrl": hook.url}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["orderId"]
        .as_i64()
        .unwrap();
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
    let later = http
        .post(format!("{}/api/orders", up.order_url))
        .json(&order_with_contact(
            11,
            "ABC-001",
            1,
            json!({"webhookUrl": hook.url}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(later.status(), 202);
    let later = later.json::<Value>().await.unwrap()["orderId"]
        .as_i64()
        .unwrap();
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
    let stuck = stack
        .post_order_body(order_with_contact(
            12,
            "ABC-001",
            1,
            json!({"webhookUrl": slow.url}),
        ))
        .await;
    slow.wait_requests(1).await;
    let flowing = stack
        .post_order_body(order_with_contact(
            12,
            "ABC-001",
            1,
            json!({"webhookUrl": fast.url}),
        ))
        .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_pointing_inside_is_refused_when_registered_and_when_an_order_carries_it() {
    // The stack opens loopback (its receivers' network) and nothing else.
    let stack = stack(BrokerKind::Tansu, DbKind::Sqlite, notify(None, 3))
        .await
        .unwrap();
    let http = &stack.http;
    let url = format!("{}/api/users/78/contact", stack.notification_url);
    for inside in [
        "http://10.0.0.1/hook",
        "http://167772161/hook",
        "http://0xa.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://192.168.1.1/hook",
    ] {
        let refused = http
            .put(&url)
            .json(&json!({"webhookUrl": inside}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 422, "{inside}");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(
            problem_fields(&problem),
            ["/webhookUrl"],
            "{inside}: {problem}"
        );
        let order = http
            .post(format!("{}/api/orders", stack.order_url))
            .json(
                &json!({"userId": 78, "items": [{"sku": "ABC-001", "qty": 1}],
                          "contact": {"webhookUrl": inside}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(order.status(), 422, "order with {inside}");
    }
    // Nothing was stored for the user; the opened loopback network is accepted.
    assert_eq!(http.get(&url).send().await.unwrap().status(), 404);
    let opened = http
        .put(&url)
        .json(&json!({"webhookUrl": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    stack.stop().await;
}

/// The public URL of notification-service's `/callbacks/sms`, as a proxy in front would
/// publish it: the provider calls (and signs) this one; the tests post to the service itself.
const SMS_CALLBACK: &str = "https://openorder.example.com/callbacks/sms";

/// The sender of every SMS.
const SMS_FROM: &str = "+15005550006";

/// SMS through `provider`, with delivery receipts when `receipts`.
fn with_sms(mut notify: NotifyArgs, provider: &SmsProvider, receipts: bool) -> NotifyArgs {
    notify.sms.sms_account_sid = Some(SmsProvider::ACCOUNT.into());
    notify.sms.sms_auth_token_file = Some(platform::kafka::Secret::new(SmsProvider::TOKEN));
    notify.sms.sms_from = Some(SMS_FROM.into());
    notify.sms.sms_base_url = provider.base_url.clone();
    notify.sms.sms_status_callback_url = receipts.then(|| SMS_CALLBACK.to_string());
    notify
}

/// The status of the SMS delivery of an order's first notification.
fn sms_status_of(notes: &[Value]) -> Value {
    delivery(&notes[0], "sms")["status"].clone()
}

/// Posts a status callback for the delivery `key` to the service, signed with `token`
/// over `signed_url` (None: unsigned); returns the answer's status and body.
async fn sms_callback(
    stack: &Stack,
    key: &str,
    form: &[(&str, &str)],
    signed: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in form {
        body.append_pair(name, value);
    }
    let mut request = stack
        .http
        .post(format!(
            "{}/callbacks/sms?delivery={key}",
            stack.notification_url
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.finish());
    if let Some((token, url)) = signed {
        request = request.header("x-twilio-signature", twilio_signature(token, url, form));
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_with_a_phone_gets_exactly_one_sms_carrying_its_idempotency_token() {
    let provider = SmsProvider::start(SmsBehaviour::Accept).await;
    let stack = stack(
        BrokerKind::Tansu,
        DbKind::Sqlite,
        with_sms(notify(None, 3), &provider, false),
    )
    .await
    .unwrap();
    let id = stack
        .post_order_body(order_with_contact(
            21,
            "ABC-001",
            2,
            json!({"phone": "+14155550100"}),
        ))
        .await;
    let notes = settled_notifications(&stack.notification_url, id, 1).await;
    let n = &notes[0];
    let channels: Vec<&str> = n["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["log", "sms"]);
    let d = delivery(n, "sms");
    // Without a status callback, accepted by the provider is delivered.
    assert_eq!(d["status"], "DELIVERED", "{d}");
    assert_eq!(d["attempts"], 1, "{d}");
    assert_eq!(d["recipient"], "+14155550100");

    let requests = provider.wait_requests(1).await;
    let r = &requests[0];
    assert!(r.authorized, "basic auth with the account and token: {r:?}");
    assert_eq!(
        r.path,
        format!(
            "/2010-04-01/Accounts/{}/Messages.json",
            SmsProvider::ACCOUNT
        )
    );
    assert_eq!(
        r.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(r.header("i-twilio-idempotency-token"), d["idempotencyKey"]);
    assert_eq!(r.field("To"), "+14155550100");
    assert_eq!(r.field("From"), SMS_FROM);
    let text = format!("Order {id} is confirmed: 2 × ABC-001 reserved for you.");
    assert_eq!(n["message"], text);
    assert_eq!(
        r.field("Body"),
        text,
        "the notification's text, whole: it fits"
    );
    assert!(
        !r.has_field("StatusCallback"),
        "no receipts asked for: {r:?}"
    );

    sentinel_behind(&stack, id, json!({"phone": "+14155550100"})).await;
    let requests = provider.wait_requests(2).await;
    assert_eq!(
        requests.len(),
        2,
        "the order's and the sentinel's: {requests:?}"
    );
    let ours = requests
        .iter()
        .filter(|r| r.header("i-twilio-idempotency-token") == d["idempotencyKey"])
        .count();
    assert_eq!(ours, 1, "one SMS");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sms_answered_429_is_sent_again_after_its_retry_after_with_the_same_token() {
    let provider = SmsProvider::start(SmsBehaviour::TooManyFirst(1)).await;
    // The backoff is 100 ms: a second try a second later is the provider's Retry-After.
    let stack = stack(
        BrokerKind::Tansu,
        DbKind::Sqlite,
        with_sms(notify(None, 3), &provider, false),
    )
    .await
    .unwrap();
    let id = stack
        .post_order_body(order_with_contact(
            22,
            "ABC-001",
            1,
            json!({"phone": "+442079460958"}),
        ))
        .await;
    let notes = settled_notifications(&stack.notification_url, id, 1).await;
    let d = delivery(&notes[0], "sms");
    assert_eq!(d["status"], "DELIVERED", "{d}");
    assert_eq!(d["attempts"], 2, "{d}");
    let requests = provider.requests();
    assert_eq!(requests.len(), 2, "refused once, accepted once");
    let key = d["idempotencyKey"].as_str().unwrap();
    for r in &requests {
        assert_eq!(r.header("i-twilio-idempotency-token"), key);
        assert_eq!(
            r.form, requests[0].form,
            "every attempt sends the same form"
        );
    }
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "the second try waited for Retry-After: 1, not the backoff: {waited:?}"
    );
    sentinel_behind(&stack, id, json!({"phone": "+442079460958"})).await;
    let requests = provider.wait_requests(3).await;
    assert_eq!(
        requests.len(),
        3,
        "the order's two and the sentinel's: {requests:?}"
    );
    let ours = requests
        .iter()
        .filter(|r| r.header("i-twilio-idempotency-token") == key)
        .count();
    assert_eq!(ours, 2, "delivered once, not sent again");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sms_to_a_number_the_provider_calls_invalid_fails_at_once_and_is_not_retried() {
    let provider = SmsProvider::start(SmsBehaviour::InvalidNumber).await;
    let stack = stack(
        BrokerKind::Tansu,
        DbKind::Sqlite,
        with_sms(notify(None, 3), &provider, false),
    )
    .await
    .unwrap();
    let id = stack
        .post_order_body(order_with_contact(
            23,
            "ABC-001",
            1,
            json!({"phone": "+15005550001"}),
        ))
        .await;
    let notes = settled_notifications(&stack.notification_url, id, 1).await;
    let d = delivery(&notes[0], "sms");
    assert_eq!(d["status"], "FAILED", "{d}");
    assert_eq!(d["attempts"], 1, "a permanent refusal is not retried: {d}");
    let error = d["lastError"].as_str().unwrap();
    assert!(error.contains("400") && error.contains("21211"), "{error}");
    let record = stack
        .wait_record(&stack.topics().notification_failed(), &id.to_string())
        .await;
    let event: Value = serde_json::from_slice(&record.payload).unwrap();
    assert_eq!(event["channel"], "sms");
    assert_eq!(event["recipient"], "+15005550001");
    assert_eq!(event["attempts"], 1);
    sentinel_behind(&stack, id, json!({"phone": "+15005550001"})).await;
    let requests = provider.wait_requests(2).await;
    assert_eq!(
        requests.len(),
        2,
        "the order's and the sentinel's: {requests:?}"
    );
    let ours = requests
        .iter()
        .filter(|r| r.header("i-twilio-idempotency-token") == d["idempotencyKey"])
        .count();
    assert_eq!(ours, 1, "not sent again");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_status_callback_moves_an_sms_to_delivered_and_a_wrongly_signed_one_changes_nothing(
) {
    let provider = SmsProvider::start(SmsBehaviour::Accept).await;
    let stack = stack(
        BrokerKind::Tansu,
        DbKind::Sqlite,
        with_sms(notify(None, 3), &provider, true),
    )
    .await
    .unwrap();
    let id = stack
        .post_order_body(order_with_contact(
            24,
            "ABC-001",
            1,
            json!({"phone": "+14155550100"}),
        ))
        .await;
    let notes = settled_notifications(&stack.notification_url, id, 1).await;
    let d = delivery(&notes[0], "sms");
    assert_eq!(
        d["status"], "SENT",
        "accepted, waiting for its receipt: {d}"
    );
    assert_eq!(d["attempts"], 1, "{d}");
    assert!(d["deliveredAt"].is_null(), "{d}");
    let key = d["idempotencyKey"].as_str().unwrap().to_string();
    let requests = provider.wait_requests(1).await;
    // The provider is told where to report, with the delivery's key.
    let callback = requests[0].field("StatusCallback").to_string();
    assert_eq!(callback, format!("{SMS_CALLBACK}?delivery={key}"));
    let sid = format!("SM{:032x}", 1);
    let delivered = [
        ("AccountSid", SmsProvider::ACCOUNT),
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "delivered"),
        ("To", "+14155550100"),
        ("From", SMS_FROM),
        ("ApiVersion", "2010-04-01"),
    ];

    // Unsigned, signed with another token, signed for another URL, or a form changed after
    // signing: 403, and the delivery stays SENT.
    let internal = format!("{}/callbacks/sms?delivery={key}", stack.notification_url);
    let mut tampered = delivered;
    tampered[2] = ("MessageStatus", "undelivered");
    for (what, form, signed) in [
        ("unsigned", &delivered, None),
        (
            "another token",
            &delivered,
            Some(("not-the-token", callback.as_str())),
        ),
        (
            "another URL",
            &delivered,
            Some((SmsProvider::TOKEN, internal.as_str())),
        ),
        (
            "a changed form",
            &tampered,
            Some((SmsProvider::TOKEN, "tampered")),
        ),
    ] {
        // The tampered form is signed as the delivered one was, then changed.
        let (status, problem) = if what == "a changed form" {
            let signature = twilio_signature(SmsProvider::TOKEN, &callback, &delivered);
            let mut body = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in form {
                body.append_pair(name, value);
            }
            let answer = stack
                .http
                .post(&internal)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", signature)
                .body(body.finish())
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap())
        } else {
            sms_callback(&stack, &key, form, signed).await
        };
        assert_eq!(status, 403, "{what}: {problem}");
        assert_eq!(problem["type"], "/problems/forbidden", "{what}: {problem}");
        let notes = stack.notifications(id).await;
        assert_eq!(sms_status_of(&notes), "SENT", "{what} changed nothing");
    }

    // Signed as the provider signs it: the URL it called and the sorted form.
    let (status, body) = sms_callback(
        &stack,
        &key,
        &delivered,
        Some((SmsProvider::TOKEN, callback.as_str())),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let notes = stack.notifications(id).await;
    let d = delivery(&notes[0], "sms");
    assert_eq!(d["status"], "DELIVERED", "{d}");
    assert!(d["deliveredAt"].is_string(), "{d}");
    // A late `sent` (receipts may overtake each other) leaves it delivered.
    let mut late = delivered;
    late[2] = ("MessageStatus", "sent");
    let (status, _) = sms_callback(
        &stack,
        &key,
        &late,
        Some((SmsProvider::TOKEN, callback.as_str())),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(sms_status_of(&stack.notifications(id).await), "DELIVERED");

    // A receipt saying `undelivered` fails the delivery, with notification.failed.
    let other = stack
        .post_order_body(order_with_contact(
            24,
            "ABC-001",
            1,
            json!({"phone": "+14155550199"}),
        ))
        .await;
    let notes = settled_notifications(&stack.notification_url, other, 1).await;
    let other_key = delivery(&notes[0], "sms")["idempotencyKey"]
        .as_str()
        .unwrap()
        .to_string();
    let other_callback = format!("{SMS_CALLBACK}?delivery={other_key}");
    let undelivered = [
        ("MessageSid", "SM00000000000000000000000000000002"),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ];
    let (status, body) = sms_callback(
        &stack,
        &other_key,
        &undelivered,
        Some((SmsProvider::TOKEN, other_callback.as_str())),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let notes = stack.notifications(other).await;
    let d = delivery(&notes[0], "sms");
    assert_eq!(d["status"], "FAILED", "{d}");
    assert!(d["lastError"].as_str().unwrap().contains("30003"), "{d}");
    let record = stack
        .wait_record(&stack.topics().notification_failed(), &other.to_string())
        .await;
    let event: Value = serde_json::from_slice(&record.payload).unwrap();
    assert_eq!(event["channel"], "sms");
    assert_eq!(event["recipient"], "+14155550199");

    // A signed receipt for no delivery of ours: 404.
    let nobody = format!("{SMS_CALLBACK}?delivery=no-such-key");
    let (status, _) = sms_callback(
        &stack,
        "no-such-key",
        &delivered,
        Some((SmsProvider::TOKEN, nobody.as_str())),
    )
    .await;
    assert_eq!(status, 404);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_who_turned_email_off_for_confirmed_orders_gets_none_for_one_but_still_for_a_rejected_one(
) {
    let smtp = SmtpSink::start(0);
    let stack = stack(BrokerKind::Tansu, DbKind::Sqlite, notify(Some(&smtp), 3))
        .await
        .unwrap();
    let http = &stack.http;
    let url = format!(
        "{}/api/users/91/notification-preferences",
        stack.notification_url
    );
    assert_eq!(http.get(&url).send().await.unwrap().status(), 404);
    for (bad, field) in [
        (
            json!({"channels": {"CONFIRMED": ["log", "fax"]}}),
            "/channels/CONFIRMED/1",
        ),
        (json!({"channels": {"SHIPPED": ["email"]}}), "/channels"),
        (
            json!({"channels": {"CONFIRMED": "email"}}),
            "/channels/CONFIRMED",
        ),
    ] {
        let refused = http.put(&url).json(&bad).send().await.unwrap();
        assert_eq!(refused.status(), 422, "{bad}");
        let problem: Value = refused.json().await.unwrap();
        let fields = problem_fields(&problem);
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{bad}: {problem}"
        );
    }
    let put = http
        .put(&url)
        .json(&json!({"channels": {"CONFIRMED": ["log", "webhook", "sms"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let got: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["userId"], 91);
    assert_eq!(
        got["channels"],
        json!({"CONFIRMED": ["log", "webhook", "sms"]})
    );
    let contact = http
        .put(format!("{}/api/users/91/contact", stack.notification_url))
        .json(&json!({"email": "gina@example.com", "phone": "0151 1234567"}))
        .send()
        .await
        .unwrap();
    assert_eq!(contact.status(), 422, "a phone number not in E.164 form");
    let problem: Value = contact.json().await.unwrap();
    assert_eq!(problem_fields(&problem), ["/phone"], "{problem}");
    let contact = http
        .put(format!("{}/api/users/91/contact", stack.notification_url))
        .json(&json!({"email": "gina@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(contact.status(), 200);

    let confirmed = stack.post_order(91, &[("ABC-001", 1)]).await;
    let notes = settled_notifications(&stack.notification_url, confirmed, 1).await;
    assert_eq!(notes[0]["kind"], "order.confirmed");
    let channels: Vec<&str> = notes[0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["log"], "no e-mail for a confirmed order");

    let rejected = stack.post_order(91, &[("OUT-001", 1)]).await;
    let notes = settled_notifications(&stack.notification_url, rejected, 1).await;
    assert_eq!(notes[0]["kind"], "order.rejected");
    assert_eq!(delivery(&notes[0], "email")["status"], "DELIVERED");
    let mails = smtp.wait_messages(1).await;
    assert_eq!(mails[0]["to"], json!(["gina@example.com"]));
    assert_eq!(
        mails[0]["headers"]["Subject"],
        format!("Order {rejected} could not be accepted")
    );
    // A later rejected order of the same user, through to its e-mail: the dispatcher sends
    // it after anything due before it.
    let later = stack.post_order(91, &[("OUT-001", 1)]).await;
    let notes = settled_notifications(&stack.notification_url, later, 1).await;
    assert_eq!(delivery(&notes[0], "email")["status"], "DELIVERED");
    let mails = smtp.wait_messages(2).await;
    let subjects: Vec<&str> = mails
        .iter()
        .map(|m| m["headers"]["Subject"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        subjects,
        [
            format!("Order {rejected} could not be accepted"),
            format!("Order {later} could not be accepted")
        ],
        "the rejected orders' e-mails only"
    );
    stack.stop().await;
}
