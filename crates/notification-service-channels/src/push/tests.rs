//! The push channel against a real HTTP server on loopback standing in for a push service
//! (answers as each test tells it), and a subscriber whose keys the test holds, so that it
//! reads what was sent as the browser would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;
use contracts::destinations::Network;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use platform::db::Schema;

use super::subscriptions::{self, push_subscription, register_push_subscription, Registered};
use super::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A browser's side of a subscription: its key pair and authentication secret.
struct Subscriber {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Subscriber {
    fn new() -> Self {
        loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
                return Self {
                    secret,
                    auth: rand::random(),
                };
            }
        }
    }

    /// What `PushSubscription.toJSON()` would give for `endpoint`, checked.
    fn subscription(&self, endpoint: &str, destinations: &Destinations) -> PushSubscription {
        let p256dh = B64.encode(self.secret.public_key().to_encoded_point(false).as_bytes());
        let auth = B64.encode(self.auth);
        PushSubscription::checked(
            Some(endpoint),
            Some(p256dh.as_str()),
            Some(auth.as_str()),
            destinations,
        )
        .unwrap()
    }

    /// The plaintext of an encrypted push body, as the browser decrypts it.
    fn read(&self, body: Vec<u8>) -> serde_json::Value {
        let auth = web_push_native::Auth::clone_from_slice(&self.auth);
        let plain = web_push_native::decrypt(body, &self.secret, &auth).expect("decrypts");
        serde_json::from_slice(&plain).unwrap()
    }
}

/// Push's tables, as notification-service's schema makes them.
const SCHEMA: Schema = Schema(&[
    subscriptions::SUBSCRIPTIONS_TABLE,
    subscriptions::SUBSCRIPTIONS_BY_USER,
    subscriptions::VAPID_KEY_TABLE,
]);

async fn database() -> Database {
    let dir = std::env::temp_dir().join(format!("oo-push-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/n.db", dir.display());
    Database::connect(&url, 2, &SCHEMA).await.unwrap()
}

fn loopback() -> Destinations {
    Destinations::allowing(vec![Network::parse("127.0.0.0/8").unwrap()])
}

fn channel(db: &Database, destinations: Destinations, lookup: Lookup) -> PushChannel {
    let settings = PushSettings {
        subject: "mailto:ops@example.com".into(),
        key_file: None,
        ttl_seconds: 3_600,
        timeout: Duration::from_secs(5),
    };
    PushChannel::with(
        &settings,
        db.clone(),
        destinations,
        vapid::VapidKey::generate(),
        lookup,
    )
    .unwrap()
}

/// Registers `subscriber`'s subscription to `endpoint` for user 42; its id.
async fn registered(
    db: &Database,
    subscriber: &Subscriber,
    endpoint: &str,
    destinations: &Destinations,
) -> i64 {
    let subscription = subscriber.subscription(endpoint, destinations);
    match register_push_subscription(db, 42, &subscription, 20)
        .await
        .unwrap()
    {
        Registered::Created(view) => view.id,
        other => panic!("{other:?}"),
    }
}

fn message(recipient: &str, kind: &str) -> Outgoing {
    Outgoing {
        delivery_id: 1,
        order_id: 7,
        channel: NAME.into(),
        recipient: recipient.into(),
        idempotency_key: "0190abcd-key".into(),
        kind: kind.into(),
        subject: "Order 7 is rejected".into(),
        text: "ABC-001 is out of stock.\n".into(),
        html: String::new(),
        payload: String::new(),
        trace: String::new(),
        created_at: chrono::Utc::now(),
    }
}

/// A push service on loopback answering every request with `status` and `headers`;
/// the endpoint, and how many requests came.
async fn push_service(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut answer = axum::http::Response::builder().status(status);
            for (name, value) in headers {
                answer = answer.header(*name, *value);
            }
            answer.body(axum::body::Body::empty()).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!(
        "http://{}/wpush/v2/gAAAAABk",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (endpoint, hits)
}

#[tokio::test]
async fn a_push_notice_is_encrypted_for_the_subscribers_key_and_signed_with_ttl_and_urgency() {
    let db = database().await;
    let push = channel(&db, Destinations::public_only(), system_lookup());
    let subscriber = Subscriber::new();
    let endpoint = "https://push.example.net/wpush/v2/gAAAAABk";
    let id = registered(&db, &subscriber, endpoint, &Destinations::public_only()).await;
    let stored = push_subscription(&db, id).await.unwrap().unwrap();
    let now = 1_800_000_000;
    let request = push
        .request(&stored, &message(&recipient(id), "order.rejected"), now)
        .unwrap();
    assert_eq!(request.endpoint.as_str(), endpoint);
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(header("ttl"), "3600");
    assert_eq!(header("urgency"), "high");
    assert_eq!(header("content-encoding"), "aes128gcm");
    assert_eq!(header("content-type"), "application/octet-stream");
    let authorization = header("authorization");
    let (token, k) = authorization
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .unwrap();
    assert_eq!(k, push.public_key());
    let claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["aud"], "https://push.example.net");
    assert_eq!(claims["exp"], now + vapid::TOKEN_LIFETIME_SECS);
    assert_eq!(claims["sub"], "mailto:ops@example.com");
    // aes128gcm: salt, record size, the sender's key (65 bytes), then one record.
    assert_eq!(request.body[20], 65, "key id length");
    assert_eq!(
        subscriber.read(request.body.clone()),
        serde_json::json!({
            "title": "Order 7 is rejected",
            "body": "ABC-001 is out of stock.",
            "orderId": 7,
            "kind": "order.rejected",
            "id": "0190abcd-key",
        })
    );
    // Another browser's keys cannot read it.
    let other = Subscriber::new();
    let auth = web_push_native::Auth::clone_from_slice(&other.auth);
    assert!(web_push_native::decrypt(request.body.clone(), &other.secret, &auth).is_err());
    // Each attempt is encrypted anew: the same message, other bytes.
    let again = push
        .request(&stored, &message(&recipient(id), "order.confirmed"), now)
        .unwrap();
    assert_ne!(again.body, request.body);
    assert_eq!(
        again
            .headers
            .iter()
            .find(|(n, _)| *n == "urgency")
            .unwrap()
            .1,
        "normal"
    );
}

#[tokio::test]
async fn a_push_accepted_by_the_push_service_is_delivered_with_its_location() {
    let db = database().await;
    let (endpoint, hits) = push_service(201, &[("location", "/message/m1")]).await;
    let push = channel(&db, loopback(), system_lookup());
    let id = registered(&db, &Subscriber::new(), &endpoint, &loopback()).await;
    let sent = push
        .send(&message(&recipient(id), "order.confirmed"))
        .await
        .unwrap();
    assert_eq!(sent.provider_id.as_deref(), Some("/message/m1"));
    assert!(!sent.awaiting_receipt);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_gone_subscription_is_removed_and_not_retried() {
    for status in [404, 410] {
        let db = database().await;
        let (endpoint, hits) = push_service(status, &[]).await;
        let push = channel(&db, loopback(), system_lookup());
        let id = registered(&db, &Subscriber::new(), &endpoint, &loopback()).await;
        let m = message(&recipient(id), "order.confirmed");
        match push.send(&m).await {
            Err(SendError::Permanent(why)) => {
                assert!(why.contains("the subscription is gone"), "{why}")
            }
            other => panic!("{status}: {other:?}"),
        }
        assert!(push_subscription(&db, id).await.unwrap().is_none());
        // Another notice to it fails without a request.
        match push.send(&m).await {
            Err(SendError::Permanent(why)) => assert!(why.contains("was removed"), "{why}"),
            other => panic!("{status}: {other:?}"),
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn a_throttled_push_waits_for_retry_after() {
    let db = database().await;
    let push = channel(&db, loopback(), system_lookup());
    let subscriber = Subscriber::new();
    let (throttled, _) = push_service(429, &[("retry-after", "7")]).await;
    let id = registered(&db, &subscriber, &throttled, &loopback()).await;
    let sent = push.send(&message(&recipient(id), "order.confirmed")).await;
    assert!(
        matches!(&sent, Err(SendError::Later(why, after)) if why.contains("429") && *after == Duration::from_secs(7)),
        "{sent:?}"
    );
    // Without Retry-After: the backoff. A 5xx: the backoff too.
    const NO_HEADERS: &[(&str, &str)] = &[];
    const RETRY_AFTER_7: &[(&str, &str)] = &[("retry-after", "7")];
    for (status, headers) in [(429, NO_HEADERS), (503, RETRY_AFTER_7)] {
        let (endpoint, _) = push_service(status, headers).await;
        let id = registered(&db, &subscriber, &endpoint, &loopback()).await;
        let sent = push.send(&message(&recipient(id), "order.confirmed")).await;
        assert!(
            matches!(&sent, Err(SendError::Transient(why)) if why.contains(&status.to_string())),
            "{status}: {sent:?}"
        );
    }
    // Still subscribed: only a gone subscription is removed.
    assert!(push_subscription(&db, id).await.unwrap().is_some());
}

#[test]
fn answers_are_delivered_gone_throttled_retried_or_refused() {
    use reqwest::StatusCode;
    for (status, expected) in [
        (201, Answer::Accepted),
        (200, Answer::Accepted),
        (202, Answer::Accepted),
        (404, Answer::Gone),
        (410, Answer::Gone),
        (429, Answer::Throttled),
        (408, Answer::TryAgain),
        (500, Answer::TryAgain),
        (502, Answer::TryAgain),
        (503, Answer::TryAgain),
        (400, Answer::Refused),
        (401, Answer::Refused),
        (403, Answer::Refused),
        (413, Answer::Refused),
        (301, Answer::Refused),
    ] {
        assert_eq!(
            answer(StatusCode::from_u16(status).unwrap()),
            expected,
            "{status}"
        );
    }
    assert!(refused(StatusCode::FORBIDDEN).contains("VAPID"));
    assert!(refused(StatusCode::PAYLOAD_TOO_LARGE).contains("too large"));
    assert!(refused(StatusCode::GONE).contains("removed"));
}

#[tokio::test]
async fn an_endpoint_whose_name_resolves_inside_is_refused_without_a_request() {
    let db = database().await;
    let lookup: Lookup = Arc::new(|_| {
        Box::pin(async {
            Ok(vec!["10.0.0.7:443"
                .parse::<std::net::SocketAddr>()
                .unwrap()])
        })
    });
    let push = channel(&db, Destinations::public_only(), lookup);
    let id = registered(
        &db,
        &Subscriber::new(),
        "https://push.example.net/wpush/v2/x",
        &Destinations::public_only(),
    )
    .await;
    match push.send(&message(&recipient(id), "order.confirmed")).await {
        Err(SendError::Permanent(why)) => assert!(
            why.contains("not allowed") && why.contains("push service host push.example.net"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    // An endpoint stored before the rules changed is refused as it is sent.
    let (inside, hits) = push_service(201, &[]).await;
    let id = registered(&db, &Subscriber::new(), &inside, &loopback()).await;
    let closed = channel(&db, Destinations::public_only(), system_lookup());
    match closed
        .send(&message(&recipient(id), "order.confirmed"))
        .await
    {
        Err(SendError::Permanent(why)) => assert!(why.contains("/endpoint"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[test]
fn recipients_name_subscriptions() {
    assert_eq!(recipient(12), "subscription:12");
    assert_eq!(subscription_id("subscription:12"), Some(12));
    for bad in [
        "12",
        "subscription:",
        "subscription:-1",
        "subscription:x",
        "user:12",
    ] {
        assert_eq!(subscription_id(bad), None, "{bad}");
    }
}

#[test]
fn the_subject_is_a_mailto_address_or_an_https_url() {
    for ok in [
        "mailto:ops@example.com",
        " https://shop.example.com/contact ",
    ] {
        assert!(checked_subject(ok).is_ok(), "{ok}");
    }
    for bad in [
        "ops@example.com",
        "mailto:not an address",
        "http://shop.example.com",
        "https://",
        "",
    ] {
        assert!(checked_subject(bad).is_err(), "{bad:?}");
    }
    let args = PushArgs {
        push_subject: None,
        push_vapid_key_file: None,
        push_ttl_seconds: 86_400,
        push_timeout_ms: 10_000,
    };
    assert!(args.settings().unwrap().is_none(), "off without a subject");
}

#[tokio::test]
async fn every_instance_on_a_database_signs_with_the_key_the_first_stored() {
    let db = database().await;
    let first = vapid::load_or_create(None, &db).await.unwrap();
    let second = vapid::load_or_create(None, &db).await.unwrap();
    assert_eq!(first.public_key(), second.public_key());
}

#[tokio::test]
async fn a_subscription_registered_again_is_the_same_one_and_another_users_is_not_taken() {
    let db = database().await;
    let subscriber = Subscriber::new();
    let endpoint = "https://push.example.net/wpush/v2/again";
    let public = Destinations::public_only();
    let id = registered(&db, &subscriber, endpoint, &public).await;
    let subscription = subscriber.subscription(endpoint, &public);
    let again = register_push_subscription(&db, 42, &subscription, 20)
        .await
        .unwrap();
    assert!(
        matches!(&again, Registered::Existing(v) if v.id == id),
        "{again:?}"
    );
    // Another user, other keys: refused. The same keys (the same browser, another
    // account): moved.
    let other_keys = Subscriber::new().subscription(endpoint, &public);
    let taken = register_push_subscription(&db, 43, &other_keys, 20)
        .await
        .unwrap();
    assert_eq!(taken, Registered::Taken);
    let moved = register_push_subscription(&db, 43, &subscription, 20)
        .await
        .unwrap();
    assert!(
        matches!(&moved, Registered::Existing(v) if v.id == id && v.user_id == 43),
        "{moved:?}"
    );
    // At most `max` a user.
    let full = register_push_subscription(
        &db,
        43,
        &subscriber.subscription("https://push.example.net/wpush/v2/more", &public),
        1,
    )
    .await
    .unwrap();
    assert_eq!(full, Registered::TooMany { max: 1 });
}
