//! SMS through a provider with Twilio's Messages API: exactly one message carrying its
//! idempotency token, a 429 sent again after its `Retry-After`, a number the provider
//! calls invalid failed at once, and delivery receipts (status callbacks) accepted only
//! when signed as the provider signs them.

use std::time::Duration;

use super::{
    channels_of, delivery, failure_of, notify, post_with_contact, refused_at_once, sentinel_behind,
    settled_notifications, stack,
};
use crate::support::receivers::{twilio_signature, SmsBehaviour, SmsProvider};
use crate::support::{BrokerKind, DbKind, Stack};
use notification_service::NotifyArgs;
use serde_json::{json, Value};

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

/// A provider that answers as `behaviour`, and a stack that sends SMS through it (with
/// delivery receipts when `receipts`).
async fn sms_stack(behaviour: SmsBehaviour, receipts: bool) -> (SmsProvider, Stack) {
    let provider = SmsProvider::start(behaviour).await;
    let stack = stack(
        BrokerKind::Tansu,
        DbKind::Sqlite,
        with_sms(notify(None, 3), &provider, receipts),
    )
    .await
    .unwrap();
    (provider, stack)
}

/// POSTs an order of `qty` ABC-001 for `user_id` whose contact is `phone`; returns its id.
async fn order_to(stack: &Stack, user_id: i64, qty: i64, phone: &str) -> i64 {
    post_with_contact(stack, user_id, "ABC-001", qty, json!({"phone": phone})).await
}

/// Waits until a sentinel behind order `id` (to `phone` too) is sent, the provider then
/// having `total` messages, the order's and the sentinel's; returns how many of them carry
/// the idempotency token `key`.
async fn sent_with_a_sentinel_behind(
    stack: &Stack,
    provider: &SmsProvider,
    id: i64,
    phone: &str,
    key: &str,
    total: usize,
) -> usize {
    sentinel_behind(stack, id, json!({"phone": phone})).await;
    let requests = provider.wait_requests(total).await;
    assert_eq!(
        requests.len(),
        total,
        "the order's and the sentinel's: {requests:?}"
    );
    requests
        .iter()
        .filter(|r| r.header("i-twilio-idempotency-token") == key)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_with_a_phone_gets_exactly_one_sms_carrying_its_idempotency_token() {
    let (provider, stack) = sms_stack(SmsBehaviour::Accept, false).await;
    let id = order_to(&stack, 21, 2, "+14155550100").await;
    let notes = settled_notifications(&stack.notification_url, id, 1).await;
    let n = &notes[0];
    assert_eq!(channels_of(n), ["log", "sms"]);
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

    let key = d["idempotencyKey"].as_str().unwrap();
    let ours = sent_with_a_sentinel_behind(&stack, &provider, id, "+14155550100", key, 2).await;
    assert_eq!(ours, 1, "one SMS");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sms_answered_429_is_sent_again_after_its_retry_after_with_the_same_token() {
    // The backoff is 100 ms: a second try a second later is the provider's Retry-After.
    let (provider, stack) = sms_stack(SmsBehaviour::TooManyFirst(1), false).await;
    let id = order_to(&stack, 22, 1, "+442079460958").await;
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
    let ours = sent_with_a_sentinel_behind(&stack, &provider, id, "+442079460958", key, 3).await;
    assert_eq!(ours, 2, "delivered once, not sent again");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sms_to_a_number_the_provider_calls_invalid_fails_at_once_and_is_not_retried() {
    let (provider, stack) = sms_stack(SmsBehaviour::InvalidNumber, false).await;
    let id = order_to(&stack, 23, 1, "+15005550001").await;
    let notes = settled_notifications(&stack.notification_url, id, 1).await;
    let error = refused_at_once(&notes[0], "sms");
    assert!(error.contains("400") && error.contains("21211"), "{error}");
    let (event, _) = failure_of(&stack, id).await;
    assert_eq!(event["channel"], "sms");
    assert_eq!(event["recipient"], "+15005550001");
    assert_eq!(event["attempts"], 1);
    let key = delivery(&notes[0], "sms")["idempotencyKey"]
        .as_str()
        .unwrap();
    let ours = sent_with_a_sentinel_behind(&stack, &provider, id, "+15005550001", key, 2).await;
    assert_eq!(ours, 1, "not sent again");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_status_callback_moves_an_sms_to_delivered_and_a_wrongly_signed_one_changes_nothing(
) {
    let (provider, stack) = sms_stack(SmsBehaviour::Accept, true).await;
    let id = order_to(&stack, 24, 1, "+14155550100").await;
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
    let receipt = Receipt {
        id,
        key: &key,
        callback: &callback,
        delivered: &delivered,
    };
    receipts_not_signed_as_the_provider_signs_them_change_nothing(&stack, &receipt).await;
    a_signed_receipt_delivers_and_a_late_sent_leaves_it_delivered(&stack, &receipt).await;
    an_undelivered_receipt_fails_the_delivery(&stack).await;

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

/// A receipt for the SMS of order `id`: its delivery's `key`, the `callback` URL the
/// provider was given, and the form of a `delivered` receipt.
struct Receipt<'a> {
    id: i64,
    key: &'a str,
    callback: &'a str,
    delivered: &'a [(&'a str, &'a str)],
}

/// Unsigned, signed with another token, signed for another URL, or a form changed after
/// signing: 403, and the delivery stays SENT.
async fn receipts_not_signed_as_the_provider_signs_them_change_nothing(
    stack: &Stack,
    receipt: &Receipt<'_>,
) {
    let (id, key) = (receipt.id, receipt.key);
    let (callback, delivered) = (receipt.callback, receipt.delivered);
    let internal = format!("{}/callbacks/sms?delivery={key}", stack.notification_url);
    let mut tampered = delivered.to_vec();
    tampered[2] = ("MessageStatus", "undelivered");
    for (what, form, signed) in [
        ("unsigned", delivered, None),
        (
            "another token",
            delivered,
            Some(("not-the-token", callback)),
        ),
        (
            "another URL",
            delivered,
            Some((SmsProvider::TOKEN, internal.as_str())),
        ),
        (
            "a changed form",
            tampered.as_slice(),
            Some((SmsProvider::TOKEN, "tampered")),
        ),
    ] {
        // The tampered form is signed as the delivered one was, then changed.
        let (status, problem) = if what == "a changed form" {
            let signature = twilio_signature(SmsProvider::TOKEN, callback, delivered);
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
            sms_callback(stack, key, form, signed).await
        };
        assert_eq!(status, 403, "{what}: {problem}");
        assert_eq!(problem["type"], "/problems/forbidden", "{what}: {problem}");
        let notes = stack.notifications(id).await;
        assert_eq!(sms_status_of(&notes), "SENT", "{what} changed nothing");
    }
}

/// Signed as the provider signs it (the URL it called and the sorted form): DELIVERED; a
/// late `sent` (receipts may overtake each other) leaves it delivered.
async fn a_signed_receipt_delivers_and_a_late_sent_leaves_it_delivered(
    stack: &Stack,
    receipt: &Receipt<'_>,
) {
    let (id, key) = (receipt.id, receipt.key);
    let (callback, delivered) = (receipt.callback, receipt.delivered);
    let signed = Some((SmsProvider::TOKEN, callback));
    let (status, body) = sms_callback(stack, key, delivered, signed).await;
    assert_eq!(status, 204, "{body}");
    let notes = stack.notifications(id).await;
    let d = delivery(&notes[0], "sms");
    assert_eq!(d["status"], "DELIVERED", "{d}");
    assert!(d["deliveredAt"].is_string(), "{d}");
    let mut late = delivered.to_vec();
    late[2] = ("MessageStatus", "sent");
    let (status, _) = sms_callback(stack, key, &late, signed).await;
    assert_eq!(status, 204);
    assert_eq!(sms_status_of(&stack.notifications(id).await), "DELIVERED");
}

/// A receipt saying `undelivered` fails the delivery, with notification.failed.
async fn an_undelivered_receipt_fails_the_delivery(stack: &Stack) {
    let other = order_to(stack, 24, 1, "+14155550199").await;
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
        stack,
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
    let (event, _) = failure_of(stack, other).await;
    assert_eq!(event["channel"], "sms");
    assert_eq!(event["recipient"], "+14155550199");
}
