//! Quiet hours, digests and fallback, end to end through the real SQLite store, the real
//! router of notices and the real dispatcher, with a clock moved by hand instead of waited
//! for: a webhook receiver on loopback stands in for the customer's endpoint (answering
//! 400, for good, where a test wants a channel that fails permanently).

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Duration, TimeZone, Utc};
use contracts::Contact;
use notification_service::delivery::channels::{log::LogChannel, webhook, Channels};
use notification_service::delivery::dispatcher::{DeliveryArgs, Dispatcher};
use notification_service::delivery::fallback;
use notification_service::notices::{Notice, Notifier};
use notification_service::preferences::{ChannelsByKind, Preferences, QuietHours, Timing};
use notification_service::schedule::Clock;
use notification_service::store::{self, DELIVERED, FAILED, GATHERED, PENDING};
use notification_service::templates::Templates;
use platform::db::Database;
use platform::metrics::Metrics;
use serde_json::{json, Value};
use sqlx::Row;
use tokio::sync::Notify;

const USER: i64 = 42;

/// What the webhook receiver was sent: `(webhook-id, body)` per request.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A webhook receiver on loopback answering `status` to every request.
async fn receiver(status: StatusCode) -> (String, Received) {
    let received: Received = Arc::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                seen.lock().unwrap().push((id, body));
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// The service's parts on a fresh SQLite database, the log and webhook channels (loopback
/// allowed), one clock for routing and dispatching standing at `t0`.
struct Service {
    db: Database,
    notifier: Notifier,
    dispatcher: Dispatcher,
    clock: Clock,
}

async fn service(t0: DateTime<Utc>, fallback: &[&str]) -> Service {
    let dir = std::env::temp_dir().join(format!("oo-timing-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/n.db", dir.display());
    let db = Database::connect(&url, 2, &store::SCHEMA).await.unwrap();
    let webhook = webhook::WebhookArgs {
        webhook_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        webhook_timeout_ms: 2_000,
        destinations: platform::config::WebhookDestinationArgs {
            webhook_allow_networks: vec![
                contracts::destinations::Network::parse("127.0.0.0/8").unwrap()
            ],
        },
    };
    let channels = Arc::new(Channels {
        log: LogChannel,
        email: None,
        webhook: webhook::WebhookChannel::from_args(&webhook).unwrap(),
        sms: None,
        push: None,
    });
    let clock = Clock::manual(t0);
    let notifier = Notifier {
        templates: Arc::new(Templates::load(None).unwrap()),
        channels: channels.clone(),
        dispatcher: Arc::new(Notify::new()),
        metrics: Metrics::default(),
        clock: clock.clone(),
    };
    let dispatcher = Dispatcher {
        db: db.clone(),
        channels,
        args: DeliveryArgs {
            notify_max_attempts: 3,
            notify_backoff_ms: 1_000,
            notify_backoff_max_ms: 60_000,
            notify_lease_ms: 30_000,
            notify_batch: 16,
            notify_fallback: fallback.iter().map(|c| c.to_string()).collect(),
        },
        topics: contracts::Topics::default(),
        wake: Arc::new(Notify::new()),
        metrics: Metrics::default(),
        clock: clock.clone(),
    };
    Service {
        db,
        notifier,
        dispatcher,
        clock,
    }
}

impl Service {
    /// Order `order_id` placed by [`USER`], who is reached by webhook at `url`.
    async fn order(&self, order_id: i64, url: &str) {
        let contact = Contact {
            email: None,
            webhook_url: Some(url.into()),
            phone: None,
        };
        let mut tx = self.db.begin().await.unwrap();
        self.notifier
            .order_seen(&mut tx, order_id, USER, contact)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    /// A notice of `kind` about order `order_id`, routed now (by the service's clock).
    async fn notice(&self, order_id: i64, kind: &'static str) {
        let fields = match kind {
            "order.rejected" => json!({"reason": "OUT_OF_STOCK", "shortages": []}),
            "order.failed" => json!({"error": "boom"}),
            _ => json!({"items": [{"sku": format!("ABC-{order_id:03}"), "qty": 1}]}),
        };
        let notice = Notice {
            event_id: contracts::new_event_id(),
            order_id,
            event_type: "inventory.reserved".into(),
            kind,
            fields,
            event: json!({}),
            trace: String::new(),
        };
        let mut tx = self.db.begin().await.unwrap();
        self.notifier.record(&mut tx, &notice).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// `(channel, status)` of every delivery, in the order queued.
    async fn deliveries(&self) -> Vec<(String, String)> {
        sqlx::query("SELECT channel, status FROM deliveries ORDER BY id")
            .fetch_all(&self.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }
}

async fn prefer(db: &Database, channels: ChannelsByKind, timing: Timing) {
    let preferences = Preferences {
        channels,
        timing: timing.checked().unwrap(),
    };
    store::put_notification_preferences(db, USER, &preferences)
        .await
        .unwrap();
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn five_notices_inside_a_digest_window_go_as_one_message_listing_five() {
    let t0 = utc("2025-05-01T12:00:00Z");
    let s = service(t0, &[]).await;
    let (url, received) = receiver(StatusCode::OK).await;
    prefer(
        &s.db,
        ChannelsByKind::default(),
        Timing {
            digest_minutes: 10,
            ..Timing::default()
        },
    )
    .await;
    // At t0, t0 + 2 min, … t0 + 8 min.
    for order in 1..=5 {
        s.order(order, &url).await;
        s.notice(order, "order.confirmed").await;
        // Nothing goes while the window is open (the log is the service's own record).
        assert_eq!(s.dispatcher.round().await.unwrap(), 0);
        s.clock.advance(Duration::minutes(2));
    }
    assert!(received.lock().unwrap().is_empty());
    // t0 + 10 min: the window closes; one pass sends one message.
    s.clock.set(t0 + Duration::minutes(10));
    assert_eq!(s.dispatcher.round().await.unwrap(), 1);
    assert_eq!(s.dispatcher.round().await.unwrap(), 0);
    let sent = received.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one message for the window");
    let (id, body) = &sent[0];
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["type"], "notification.digest");
    assert_eq!(body["data"]["userId"], USER);
    assert_eq!(body["data"]["digest"], id.as_str());
    let listed: Vec<i64> = body["data"]["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["orderId"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [1, 2, 3, 4, 5]);
    // The key is the window's: user, channel and start.
    assert_eq!(
        id,
        &notification_service::delivery::digest::key(USER, "webhook", t0.timestamp_millis())
    );
    let webhooks: Vec<String> = s
        .deliveries()
        .await
        .into_iter()
        .filter(|(channel, _)| channel == "webhook")
        .map(|(_, status)| status)
        .collect();
    assert_eq!(
        webhooks,
        [DELIVERED, GATHERED, GATHERED, GATHERED, GATHERED]
    );
    // Every one names the digest in the API.
    for order in 1..=5 {
        let notes = store::list(&s.db, Some(order), None, 10).await.unwrap();
        let webhook = notes[0]
            .deliveries
            .iter()
            .find(|d| d.channel == "webhook")
            .unwrap();
        assert_eq!(
            webhook.digest.as_deref(),
            Some(id.as_str()),
            "order {order}"
        );
    }
    // A notice after the window opens a new one.
    s.order(6, &url).await;
    s.notice(6, "order.confirmed").await;
    s.clock.advance(Duration::minutes(10));
    assert_eq!(s.dispatcher.round().await.unwrap(), 1);
    let sent = received.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[1].0, sent[0].0);
    // A window of one goes as that notice's own message.
    let alone: Value = serde_json::from_str(&sent[1].1).unwrap();
    assert_eq!(alone["type"], "order.confirmed");
}

#[tokio::test]
async fn a_notice_inside_quiet_hours_waits_for_their_end_and_a_critical_one_goes_at_once() {
    let berlin = chrono_tz::Europe::Berlin;
    let at = |d: u32, h: u32, m: u32| {
        berlin
            .with_ymd_and_hms(2025, 3, d, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    let s = service(at(10, 22, 59), &[]).await;
    let (url, received) = receiver(StatusCode::OK).await;
    prefer(
        &s.db,
        ChannelsByKind::default(),
        Timing {
            time_zone: Some("Europe/Berlin".into()),
            quiet_hours: Some(QuietHours {
                start: "23:00".into(),
                end: "07:00".into(),
            }),
            critical: vec!["FAILED".into()],
            digest_minutes: 0,
        },
    )
    .await;
    // 22:59: at once.
    s.order(1, &url).await;
    s.notice(1, "order.confirmed").await;
    assert_eq!(s.dispatcher.round().await.unwrap(), 1);
    // 23:01: held until 07:00 the next morning, and shown so.
    s.clock.set(at(10, 23, 1));
    s.order(2, &url).await;
    s.notice(2, "order.confirmed").await;
    let notes = store::list(&s.db, Some(2), None, 10).await.unwrap();
    let held = notes[0]
        .deliveries
        .iter()
        .find(|d| d.channel == "webhook")
        .unwrap();
    assert_eq!(held.status, PENDING);
    assert_eq!(held.held.as_deref(), Some("quietHours"));
    assert_eq!(
        held.next_attempt_at.as_deref(),
        Some("2025-03-11T06:00:00.000Z")
    );
    // A critical kind inside the quiet hours goes at once.
    s.order(3, &url).await;
    s.notice(3, "order.failed").await;
    assert_eq!(s.dispatcher.round().await.unwrap(), 1);
    s.clock.set(at(11, 6, 59));
    assert_eq!(s.dispatcher.round().await.unwrap(), 0);
    s.clock.set(at(11, 7, 0));
    assert_eq!(s.dispatcher.round().await.unwrap(), 1);
    let kinds: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| {
            serde_json::from_str::<Value>(body).unwrap()["data"]["orderId"].to_string()
        })
        .collect();
    assert_eq!(kinds, ["1", "3", "2"]);
}

#[tokio::test]
async fn a_delivery_refused_for_good_falls_back_to_the_next_channel_once() {
    let t0 = utc("2025-05-01T12:00:00Z");
    let s = service(t0, &["webhook", "log"]).await;
    let (url, received) = receiver(StatusCode::BAD_REQUEST).await;
    // Confirmations by webhook only: the log has no delivery of them to begin with.
    prefer(
        &s.db,
        ChannelsByKind {
            confirmed: Some(vec!["webhook".into()]),
            ..ChannelsByKind::default()
        },
        Timing::default(),
    )
    .await;
    s.order(1, &url).await;
    s.notice(1, "order.confirmed").await;
    assert_eq!(s.deliveries().await, [("webhook".into(), PENDING.into())]);
    // The receiver refuses it (400): FAILED, and the log gets it in the same commit.
    assert_eq!(s.dispatcher.round().await.unwrap(), 1);
    assert_eq!(
        s.deliveries().await,
        [
            ("webhook".to_string(), FAILED.to_string()),
            ("log".to_string(), PENDING.to_string())
        ]
    );
    assert_eq!(s.dispatcher.round().await.unwrap(), 1);
    assert_eq!(
        s.deliveries().await,
        [
            ("webhook".to_string(), FAILED.to_string()),
            ("log".to_string(), DELIVERED.to_string())
        ]
    );
    assert_eq!(received.lock().unwrap().len(), 1);
    let notes = store::list(&s.db, Some(1), None, 10).await.unwrap();
    let log = notes[0]
        .deliveries
        .iter()
        .find(|d| d.channel == "log")
        .unwrap();
    assert_eq!(log.fallback_of.as_deref(), Some("webhook"));
    let reason = log.fallback_reason.as_deref().unwrap();
    assert!(reason.starts_with("webhook failed: "), "{reason}");
    assert!(reason.contains("400"), "{reason}");
    // Once per notice: the failure recorded again queues nothing more.
    let failed: i64 = sqlx::query("SELECT id FROM deliveries WHERE channel = 'webhook'")
        .fetch_one(&s.db.pool)
        .await
        .unwrap()
        .get(0);
    let mut tx = s.db.begin().await.unwrap();
    let again = fallback::fall_back(
        &mut tx,
        &["webhook".to_string(), "log".to_string()],
        &s.dispatcher.channels,
        s.clock.now(),
        failed,
        "again",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again, None);
    assert_eq!(s.dispatcher.round().await.unwrap(), 0);
    assert_eq!(s.deliveries().await.len(), 2);
}
