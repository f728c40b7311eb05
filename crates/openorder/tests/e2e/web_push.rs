//! Web Push reaches people's browsers, once: a real push service on loopback
//! ([`PushService`]) hands out subscriptions as a browser makes them, checks every push's
//! VAPID token (ES256 by the service's advertised key, `aud` its own origin, `exp` within
//! 24 hours) and decrypts it with the subscriber's private key, as the browser would;
//! driven by real orders through a real broker. Checked: registering a subscription as
//! `PushSubscription.toJSON()` gives it (idempotent, refused field by field), the message
//! received, a subscription the push service says is gone (removed, not retried), and a
//! push answered 429 (sent again after its `Retry-After`).

use std::time::Duration;

use crate::notifications::{
    channels_of, delivery, failure_of, notify, problem_fields, refused_at_once,
    settled_notifications, stack,
};
use crate::support::receivers::{PushBehaviour, PushService};
use crate::support::{BrokerKind, DbKind, Stack};
use notification_service::NotifyArgs;
use serde_json::{json, Value};

/// The operator's contact every VAPID token carries.
const SUBJECT: &str = "mailto:ops@openorder.example.com";

/// Web Push on (the stack opens loopback to pushes as it does to webhooks), fast retries.
fn with_push(mut notify: NotifyArgs) -> NotifyArgs {
    notify.push.push_subject = Some(SUBJECT.into());
    notify
}

/// The service's VAPID public key, as a page fetches it to subscribe.
async fn public_key(stack: &Stack) -> String {
    let url = format!("{}/api/push/vapid-public-key", stack.notification_url);
    let answer = stack.http.get(url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    body["publicKey"].as_str().unwrap().to_string()
}

/// POSTs `subscription` for `user_id`; the answer's status and body.
async fn register(stack: &Stack, user_id: i64, subscription: &Value) -> (u16, Value) {
    let answer = stack
        .http
        .post(format!(
            "{}/api/users/{user_id}/push-subscriptions",
            stack.notification_url
        ))
        .json(subscription)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// A subscription at `push` for `user_id`, registered (201); its id.
async fn subscribed(stack: &Stack, push: &PushService, user_id: i64) -> i64 {
    let subscription = push.subscribe(&public_key(stack).await);
    let (status, body) = register(stack, user_id, &subscription).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

/// A push service that answers as `behaviour`, and a stack that pushes to it.
async fn push_stack(behaviour: PushBehaviour) -> (PushService, Stack) {
    let push = PushService::start(behaviour).await;
    let stack = stack(
        BrokerKind::Tansu,
        DbKind::Sqlite,
        with_push(notify(None, 3)),
    )
    .await
    .unwrap();
    (push, stack)
}

fn order_of(user_id: i64) -> Value {
    json!({"userId": user_id, "items": [{"sku": "ABC-001", "qty": 1}]})
}

crate::backends!(a_push_notice_arrives_encrypted_and_signed_for_the_subscribers_key {
    a_push_notice_arrives_encrypted_and_signed_for_the_subscribers_key_on_tansu_with_sqlite => (Tansu, Sqlite),
    a_push_notice_arrives_encrypted_and_signed_for_the_subscribers_key_on_kafka_with_postgres => (Kafka, Postgres),
});

async fn a_push_notice_arrives_encrypted_and_signed_for_the_subscribers_key(
    broker: BrokerKind,
    db: DbKind,
) {
    let push = PushService::start(PushBehaviour::Accept).await;
    // None: the external broker or database is not configured (and allowed to be absent).
    let Some(stack) = stack(broker, db, with_push(notify(None, 3))).await else {
        return;
    };
    let key = the_key_is_made_once(&stack).await;
    let (subscription, id) = a_subscription_registers_once(&stack, &push, &key).await;
    bad_subscriptions_are_refused_field_by_field(&stack, &subscription).await;
    the_push_is_the_notice_encrypted_and_signed(&stack, &push, &key, id).await;

    // Removed by the user: the next order has no push.
    let removed = stack
        .http
        .delete(format!(
            "{}/api/users/31/push-subscriptions/{id}",
            stack.notification_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let next = stack.post_order_body(order_of(31)).await;
    let notes = settled_notifications(&stack.notification_url, next, 1).await;
    assert_eq!(channels_of(&notes[0]), ["log"]);
    assert_eq!(push.requests().len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gone_subscription_is_removed_and_not_retried() {
    let (push, stack) = push_stack(PushBehaviour::Gone).await;
    let id = subscribed(&stack, &push, 32).await;
    let order = stack.post_order_body(order_of(32)).await;
    let notes = settled_notifications(&stack.notification_url, order, 1).await;
    let error = refused_at_once(&notes[0], "push");
    assert!(error.contains("410") && error.contains("gone"), "{error}");
    let (event, _) = failure_of(&stack, order).await;
    assert_eq!(event["channel"], "push");
    assert_eq!(event["recipient"], format!("subscription:{id}"));
    // Removed: listed no more, and the next order pushes nothing.
    let listed: Vec<Value> = stack
        .get_json(format!(
            "{}/api/users/32/push-subscriptions",
            stack.notification_url
        ))
        .await;
    assert!(listed.is_empty(), "{listed:?}");
    let next = stack.post_order_body(order_of(32)).await;
    let notes = settled_notifications(&stack.notification_url, next, 1).await;
    assert!(
        notes[0]["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["channel"] != "push"),
        "{notes:?}"
    );
    assert_eq!(push.requests().len(), 1, "one push, to learn it is gone");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_push_waits_for_retry_after() {
    // The backoff is 100 ms: a second try a second later is the push service's Retry-After.
    let (push, stack) = push_stack(PushBehaviour::TooManyFirst(1)).await;
    subscribed(&stack, &push, 33).await;
    let order = stack.post_order_body(order_of(33)).await;
    let notes = settled_notifications(&stack.notification_url, order, 1).await;
    let d = delivery(&notes[0], "push");
    assert_eq!(d["status"], "DELIVERED", "{d}");
    assert_eq!(d["attempts"], 2, "{d}");
    let requests = push.requests();
    assert_eq!(requests.len(), 2, "throttled once, taken once");
    for r in &requests {
        assert!(r.vapid.is_ok(), "{:?}", r.vapid);
        assert_eq!(
            r.notice.as_ref().unwrap()["id"],
            d["idempotencyKey"],
            "every attempt is the same notice"
        );
    }
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "the second try waited for Retry-After: 1, not the backoff: {waited:?}"
    );
    stack.stop().await;
}

/// The service's VAPID public key: an uncompressed P-256 point, made once (the same on
/// every ask). Returns it.
async fn the_key_is_made_once(stack: &Stack) -> String {
    let key = public_key(stack).await;
    assert_eq!(
        key.len(),
        87,
        "base64url of an uncompressed P-256 point: {key}"
    );
    // The key is made once: the same on every ask.
    assert_eq!(public_key(stack).await, key);
    key
}

/// A subscription of user 31 at `push`, registered as `PushSubscription.toJSON()` gives it
/// (its keys not shown back), and again (the same one): listed once. Returns it and its id.
async fn a_subscription_registers_once(
    stack: &Stack,
    push: &PushService,
    key: &str,
) -> (Value, i64) {
    // As PushSubscription.toJSON() gives it, expirationTime and all.
    let subscription = push.subscribe(key);
    let (status, created) = register(stack, 31, &subscription).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["userId"], 31);
    assert_eq!(created["endpoint"], subscription["endpoint"]);
    assert!(
        created.get("keys").is_none(),
        "keys are not shown: {created}"
    );
    let id = created["id"].as_i64().unwrap();
    // The same subscription again: the same one.
    let (status, again) = register(stack, 31, &subscription).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], id);
    let listed: Vec<Value> = stack
        .get_json(format!(
            "{}/api/users/31/push-subscriptions",
            stack.notification_url
        ))
        .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id);
    (subscription, id)
}

/// Variants of `subscription` with bad fields are refused, field by field, as a JSON
/// pointer each.
async fn bad_subscriptions_are_refused_field_by_field(stack: &Stack, subscription: &Value) {
    let mut bad = subscription.clone();
    bad["endpoint"] = json!("https://10.0.0.1/wpush/v2/x");
    bad["keys"]["p256dh"] = json!("not-a-key");
    bad["keys"]["auth"] = json!("AAAA");
    let (status, problem) = register(stack, 31, &bad).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem_fields(&problem),
        ["/endpoint", "/keys/p256dh", "/keys/auth"],
        "{problem}"
    );
    let (status, problem) = register(stack, 31, &json!({"keys": {}})).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem_fields(&problem),
        ["/endpoint", "/keys/p256dh", "/keys/auth"],
        "{problem}"
    );
    // Base64url of 65 bytes starting 0x04, but no point on the curve.
    let mut off_curve = subscription.clone();
    off_curve["keys"]["p256dh"] = json!(format!("BA{}", "A".repeat(85)));
    let (status, problem) = register(stack, 31, &off_curve).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem_fields(&problem), ["/keys/p256dh"], "{problem}");
}

/// An order of user 31: its notice is pushed once to subscription `id`, the VAPID token
/// verifying for `push`'s origin and the service's `key`, the body decrypting to the
/// notification.
async fn the_push_is_the_notice_encrypted_and_signed(
    stack: &Stack,
    push: &PushService,
    key: &str,
    id: i64,
) {
    let order = stack.post_order_body(order_of(31)).await;
    let notes = settled_notifications(&stack.notification_url, order, 1).await;
    let n = &notes[0];
    let d = delivery(n, "push");
    assert_eq!(d["status"], "DELIVERED", "{d}");
    assert_eq!(d["attempts"], 1, "{d}");
    assert_eq!(d["recipient"], format!("subscription:{id}"));

    let requests = push.wait_requests(1).await;
    assert_eq!(requests.len(), 1, "one push: {requests:?}");
    let r = &requests[0];
    let claims = r.vapid.as_ref().expect("the VAPID token verifies");
    assert_eq!(claims["aud"], push.origin);
    assert_eq!(claims["sub"], SUBJECT);
    assert!(
        r.header("authorization").ends_with(&format!("k={key}")),
        "{}",
        r.header("authorization")
    );
    assert_eq!(r.header("content-encoding"), "aes128gcm");
    assert_eq!(r.header("content-type"), "application/octet-stream");
    assert_eq!(r.header("ttl"), "86400");
    assert_eq!(r.header("urgency"), "normal");
    let notice = r.notice.as_ref().expect("the subscriber's keys decrypt it");
    assert_eq!(
        notice,
        &json!({
            "title": n["subject"].as_str().unwrap().trim(),
            "body": n["message"].as_str().unwrap().trim(),
            "orderId": order,
            "kind": "order.confirmed",
            "id": d["idempotencyKey"],
        })
    );
}
