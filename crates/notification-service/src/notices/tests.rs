//! Tests of routing notices: the log written in the transaction that queues it, channels
//! left out by a user's preferences, a delivery per push subscription and a digest window
//! per subscription.

use super::*;
use crate::delivery::channels::log::LogChannel;
use crate::delivery::channels::webhook::{WebhookArgs, WebhookChannel};
use crate::preferences::ChannelsByKind;
use crate::store::{DELIVERED, PENDING};
use platform::config::WebhookDestinationArgs;
use platform::db::Database;
use sqlx::Row;

/// The log and webhook channels, webhooks signed with a test secret, given up on after
/// `timeout_ms` and held to `destinations`.
pub(crate) fn log_and_webhook(timeout_ms: u64, destinations: WebhookDestinationArgs) -> Channels {
    let webhook = WebhookArgs {
        webhook_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        webhook_timeout_ms: timeout_ms,
        destinations,
    };
    Channels {
        log: LogChannel,
        email: None,
        webhook: WebhookChannel::from_args(&webhook).unwrap(),
        sms: None,
        push: None,
    }
}

/// A notifier on `channels` with the built-in templates and the system clock; nothing
/// dispatches.
pub(crate) fn notifier_on(channels: Arc<Channels>) -> Notifier {
    Notifier {
        templates: Arc::new(Templates::load(None).unwrap()),
        channels,
        dispatcher: Arc::new(Notify::new()),
        metrics: Metrics::default(),
        clock: Clock::system(),
    }
}

/// A notifier on a fresh SQLite database, with the log and webhook channels; nothing
/// dispatches.
pub(crate) async fn notifier() -> (Notifier, Database) {
    let dir = std::env::temp_dir().join(format!("oo-notices-{}", Uuid::new_v4()));
    let url = format!("sqlite://{}/n.db", dir.display());
    let db = Database::connect(&url, 2, &store::SCHEMA).await.unwrap();
    let channels = log_and_webhook(1_000, WebhookDestinationArgs::default());
    (notifier_on(Arc::new(channels)), db)
}

/// A contact with a webhook only (nothing listens there: the deliveries wait, unsent).
fn webhook_only() -> Contact {
    Contact {
        email: None,
        webhook_url: Some("http://127.0.0.1:9/hook".into()),
        phone: None,
    }
}

/// Stores `preferences` as user 42's and records order 7 as theirs, reached at `contact`:
/// the transaction that recorded the order, still open.
async fn order_of_user_42_who_prefers(
    notifier: &Notifier,
    db: &Database,
    preferences: Preferences,
    contact: Contact,
) -> Tx {
    store::put_notification_preferences(db, 42, &preferences)
        .await
        .unwrap();
    let mut tx = db.begin().await.unwrap();
    notifier.order_seen(&mut tx, 7, 42, contact).await.unwrap();
    tx
}

/// `(channel, status, attempts, delivered_at is set)` of every delivery, by channel.
async fn deliveries(db: &Database) -> Vec<(String, String, i64, bool)> {
    let rows = sqlx::query(
        "SELECT channel, status, attempts, delivered_at IS NOT NULL AS delivered
             FROM deliveries ORDER BY channel",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<i64, _>(3) == 1))
        .collect()
}

#[tokio::test]
async fn the_log_is_delivered_in_the_transaction_that_queues_it_and_the_rest_wait_for_the_dispatcher(
) {
    let (notifier, db) = notifier().await;
    let mut tx = db.begin().await.unwrap();
    notifier
        .order_seen(&mut tx, 7, 42, webhook_only())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let notice = Notice {
        event_id: contracts::new_event_id(),
        order_id: 7,
        event_type: "inventory.audited".into(),
        kind: "order.updated",
        fields: json!({}),
        event: json!({}),
        trace: String::new(),
    };
    let logged = |n: &Notifier| {
        n.metrics.get(
            &platform::telemetry::catalogue::NOTIFICATION_ATTEMPTS,
            &[("channel", "log"), ("outcome", "delivered")],
        )
    };
    for _ in 0..2 {
        let mut tx = db.begin().await.unwrap();
        notifier.record(&mut tx, &notice).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            deliveries(&db).await,
            [
                ("log".into(), DELIVERED.into(), 1, true),
                ("webhook".into(), PENDING.into(), 0, false),
            ]
        );
        // The event again (a redelivery) neither queues nor writes anything again.
        assert_eq!(logged(&notifier), 1);
    }
    let woken = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        notifier.dispatcher.notified(),
    );
    assert!(
        woken.await.is_ok(),
        "the commit woke the dispatcher for the webhook"
    );
}

#[tokio::test]
async fn a_channel_a_user_turned_off_for_one_kind_is_left_out_of_that_kind_only() {
    let (notifier, db) = notifier().await;
    let preferences = ChannelsByKind {
        confirmed: Some(vec!["log".into()]),
        ..ChannelsByKind::default()
    };
    let preferences = Preferences {
        channels: preferences,
        ..Preferences::default()
    };
    let mut tx = order_of_user_42_who_prefers(&notifier, &db, preferences, webhook_only()).await;
    for (kind, fields) in [
        ("order.confirmed", json!({"items": []})),
        (
            "order.rejected",
            json!({"reason": "OUT_OF_STOCK", "shortages": []}),
        ),
    ] {
        let notice = Notice {
            event_id: contracts::new_event_id(),
            order_id: 7,
            event_type: "inventory.reserved".into(),
            kind,
            fields,
            event: json!({}),
            trace: String::new(),
        };
        notifier.record(&mut tx, &notice).await.unwrap();
    }
    tx.commit().await.unwrap();
    let rows = sqlx::query(
        "SELECT n.kind, d.channel FROM deliveries d JOIN notifications n ON n.id = d.notification_id
             ORDER BY n.kind, d.channel",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let routed: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected = [
        ("order.confirmed", "log"),
        ("order.rejected", "log"),
        ("order.rejected", "webhook"),
    ];
    assert_eq!(
        routed,
        expected.map(|(k, c)| (k.to_string(), c.to_string()))
    );
}

/// The notifier of [`notifier`] with Web Push on (the log and push channels only) and
/// two subscriptions of user 42 registered; their recipients, newest first.
async fn with_two_push_subscriptions(notifier: &mut Notifier, db: &Database) -> [String; 2] {
    use crate::delivery::channels::push::{self, PushArgs, PushChannel};
    use contracts::destinations::Destinations;
    let args = PushArgs {
        push_subject: Some("mailto:ops@example.com".into()),
        push_vapid_key_file: None,
        push_ttl_seconds: 60,
        push_timeout_ms: 1_000,
    };
    let settings = args.settings().unwrap().expect("push is on");
    let channel = PushChannel::start(&settings, db.clone(), Destinations::public_only())
        .await
        .unwrap();
    notifier.channels = Arc::new(Channels {
        log: LogChannel,
        email: None,
        webhook: None,
        sms: None,
        push: Some(channel),
    });
    let mut ids = Vec::new();
    for browser in ["phone", "laptop"] {
        // RFC 8291's example keys: any valid subscription will do here.
        let endpoint = format!("https://push.example.net/wpush/{browser}");
        let subscription = contracts::values::PushSubscription::checked(
            Some(endpoint.as_str()),
            Some("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
            Some("BTBZMqHH6r4Tts7J_aSIgg"),
            &Destinations::public_only(),
        )
        .unwrap();
        match store::register_push_subscription(db, 42, &subscription, 20)
            .await
            .unwrap()
        {
            store::Registered::Created(view) => ids.push(view.id),
            other => panic!("{other:?}"),
        }
    }
    [push::recipient(ids[1]), push::recipient(ids[0])]
}

fn confirmed(order_id: i64) -> Notice {
    Notice {
        event_id: contracts::new_event_id(),
        order_id,
        event_type: "inventory.reserved".into(),
        kind: "order.confirmed",
        fields: json!({"items": []}),
        event: json!({}),
        trace: String::new(),
    }
}

/// `(recipient, idempotency key, status, digest)` of every push delivery, in order.
async fn push_deliveries(db: &Database) -> Vec<(String, String, String, Option<String>)> {
    let rows = sqlx::query(
        "SELECT recipient, idempotency_key, status, digest FROM deliveries
             WHERE channel = 'push' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[tokio::test]
async fn each_push_subscription_of_a_user_gets_a_delivery_of_its_own() {
    let (mut notifier, db) = notifier().await;
    let recipients = with_two_push_subscriptions(&mut notifier, &db).await;
    let mut tx = db.begin().await.unwrap();
    notifier
        .order_seen(&mut tx, 7, 42, Contact::default())
        .await
        .unwrap();
    notifier.record(&mut tx, &confirmed(7)).await.unwrap();
    tx.commit().await.unwrap();
    let pushes = push_deliveries(&db).await;
    let to: Vec<&str> = pushes.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(to, recipients, "newest subscription first");
    assert_ne!(pushes[0].1, pushes[1].1, "a key of its own each");
    assert!(pushes.iter().all(|p| p.2 == PENDING && p.3.is_none()));
}

#[tokio::test]
async fn each_push_subscription_of_a_digest_user_has_a_window_of_its_own() {
    let (mut notifier, db) = notifier().await;
    let recipients = with_two_push_subscriptions(&mut notifier, &db).await;
    let preferences = Preferences {
        timing: crate::preferences::Timing {
            digest_minutes: 10,
            ..Default::default()
        },
        ..Preferences::default()
    };
    let tx = order_of_user_42_who_prefers(&notifier, &db, preferences, Contact::default()).await;
    tx.commit().await.unwrap();
    // Two notices, each in a transaction of its own: the second joins the windows the
    // first opened.
    for _ in 0..2 {
        let mut tx = db.begin().await.unwrap();
        notifier.record(&mut tx, &confirmed(7)).await.unwrap();
        tx.commit().await.unwrap();
    }
    let pushes = push_deliveries(&db).await;
    assert_eq!(pushes.len(), 4, "{pushes:?}");
    let mut digests = Vec::new();
    for recipient in &recipients {
        let mine: Vec<_> = pushes.iter().filter(|p| &p.0 == recipient).collect();
        let statuses: Vec<&str> = mine.iter().map(|p| p.2.as_str()).collect();
        assert_eq!(
            statuses,
            [PENDING, store::GATHERED],
            "{recipient}: {pushes:?}"
        );
        let digest = mine[0].3.clone().expect("the first carries the digest");
        assert_eq!(mine[0].1, digest, "it goes under the digest's key");
        assert_eq!(mine[1].3.as_ref(), Some(&digest), "the second joins it");
        digests.push(digest);
    }
    assert_ne!(digests[0], digests[1], "a window per subscription");
}
