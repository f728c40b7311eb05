//! Tests of the dispatcher against a webhook receiver on loopback, time moved by hand: backoff,
//! leases, addresses refused when sent, Retry-After.

use super::*;
use crate::notices::tests::{log_and_webhook, notifier_on};
use crate::notices::Notice;
use contracts::Contact;
use sqlx::Row;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A webhook receiver on loopback answering 500 to its first `failures` requests and
/// 200 after; counts them.
async fn receiver(failures: usize) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                match n < failures {
                    true => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    false => axum::http::StatusCode::OK,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// A dispatcher on a fresh SQLite database with one webhook delivery queued for `url`.
async fn dispatcher_with_one_delivery(url: &str, args: DeliveryArgs) -> Dispatcher {
    let dir = std::env::temp_dir().join(format!("oo-dispatch-{}", uuid::Uuid::new_v4()));
    let db_url = format!("sqlite://{}/n.db", dir.display());
    let db = Database::connect(&db_url, 2, &store::SCHEMA).await.unwrap();
    let loopback = platform::config::WebhookDestinationArgs {
        webhook_allow_networks: vec![
            contracts::destinations::Network::parse("127.0.0.0/8").unwrap()
        ],
    };
    let channels = Arc::new(log_and_webhook(2_000, loopback));
    let notifier = notifier_on(channels.clone());
    let contact = Contact {
        email: None,
        webhook_url: Some(url.into()),
        phone: None,
    };
    let mut tx = db.begin().await.unwrap();
    notifier.order_seen(&mut tx, 7, 42, contact).await.unwrap();
    let notice = Notice {
        event_id: contracts::new_event_id(),
        order_id: 7,
        event_type: "inventory.reserved".into(),
        kind: "order.confirmed",
        fields: serde_json::json!({ "items": [] }),
        event: serde_json::json!({}),
        trace: String::new(),
    };
    notifier.record(&mut tx, &notice).await.unwrap();
    tx.commit().await.unwrap();
    Dispatcher {
        db,
        channels,
        args,
        topics: Topics::default(),
        wake: Arc::new(Notify::new()),
        metrics: Metrics::default(),
        clock: Clock::system(),
    }
}

/// `(status, attempts)` of the webhook delivery.
async fn webhook_delivery(d: &Dispatcher) -> (String, i64) {
    let row = sqlx::query("SELECT status, attempts FROM deliveries WHERE channel = 'webhook'")
        .fetch_one(&d.db.pool)
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

fn args() -> DeliveryArgs {
    DeliveryArgs {
        notify_max_attempts: 6,
        notify_backoff_ms: 1_000,
        notify_backoff_max_ms: 60_000,
        notify_lease_ms: 30_000,
        notify_batch: 8,
        notify_fallback: Vec::new(),
    }
}

#[tokio::test]
async fn a_failing_delivery_is_tried_again_only_once_its_backoff_is_over() {
    let (url, hits) = receiver(2).await;
    let d = dispatcher_with_one_delivery(&url, args()).await;
    // Queued now: due at once. Time below is moved by hand, not waited for.
    let t0 = Utc::now().timestamp_millis() + 1_000;
    assert_eq!(d.round_at(t0).await.unwrap(), 1);
    assert_eq!(webhook_delivery(&d).await, (PENDING.into(), 1));
    // The first backoff is 1 s ± 25 %: not due at 0.7 s, due at 1.3 s.
    assert_eq!(d.round_at(t0 + 700).await.unwrap(), 0);
    assert_eq!(d.round_at(t0 + 1_300).await.unwrap(), 1);
    assert_eq!(webhook_delivery(&d).await, (PENDING.into(), 2));
    // The second is 2 s ± 25 %, counted from the second try.
    let t1 = t0 + 1_300;
    assert_eq!(d.round_at(t1 + 1_400).await.unwrap(), 0);
    assert_eq!(d.round_at(t1 + 2_600).await.unwrap(), 1);
    assert_eq!(webhook_delivery(&d).await, (DELIVERED.into(), 3));
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // Delivered: nothing is sent again, however late.
    assert_eq!(d.round_at(t1 + 3_600_000).await.unwrap(), 0);
}

#[tokio::test]
async fn a_webhook_to_an_inside_address_stored_earlier_is_failed_when_sent_without_a_request() {
    let d = dispatcher_with_one_delivery("http://10.255.255.1/hook", args()).await;
    let t0 = Utc::now().timestamp_millis() + 1_000;
    assert_eq!(d.round_at(t0).await.unwrap(), 1);
    assert_eq!(webhook_delivery(&d).await, (FAILED.into(), 1));
    let error: String = sqlx::query("SELECT last_error FROM deliveries WHERE channel = 'webhook'")
        .fetch_one(&d.db.pool)
        .await
        .unwrap()
        .get(0);
    assert!(error.contains("10.255.255.1 is private"), "{error}");
}

#[tokio::test]
async fn a_claim_whose_outcome_was_never_recorded_is_sent_again_once_its_lease_runs_out() {
    let (url, hits) = receiver(0).await;
    let d = dispatcher_with_one_delivery(&url, args()).await;
    let t0 = Utc::now().timestamp_millis() + 1_000;
    // A sender claims the delivery and dies before it records anything.
    let mut tx = d.db.begin().await.unwrap();
    let claimed = d.claim(&mut tx, 8, t0).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(claimed.len(), 1);
    // Leased for 30 s: nobody sends it meanwhile; after that, another round does.
    assert_eq!(d.round_at(t0 + 29_000).await.unwrap(), 0);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert_eq!(d.round_at(t0 + 31_000).await.unwrap(), 1);
    assert_eq!(webhook_delivery(&d).await, (DELIVERED.into(), 2));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn a_receivers_retry_after_replaces_the_backoff_up_to_its_cap() {
    let args = args();
    assert_eq!(
        args.retry_wait(1, Some(Duration::from_secs(7))),
        Duration::from_secs(7)
    );
    assert_eq!(args.retry_wait(5, Some(Duration::ZERO)), Duration::ZERO);
    assert_eq!(
        args.retry_wait(1, Some(Duration::from_secs(3_600))),
        Duration::from_millis(args.notify_backoff_max_ms)
    );
    let backoff = args.retry_wait(1, None).as_millis();
    assert!((750..=1_250).contains(&backoff), "{backoff} ms");
}

#[test]
fn backoff_doubles_per_attempt_up_to_the_cap() {
    let args = DeliveryArgs {
        notify_max_attempts: 6,
        notify_backoff_ms: 1_000,
        notify_backoff_max_ms: 5_000,
        notify_lease_ms: 60_000,
        notify_batch: 16,
        notify_fallback: Vec::new(),
    };
    for (attempt, base_ms) in [
        (1, 1_000.0),
        (2, 2_000.0),
        (3, 4_000.0),
        (4, 5_000.0),
        (40, 5_000.0),
    ] {
        let ms = args.backoff(attempt).as_millis() as f64;
        assert!(
            (base_ms * 0.75..=base_ms * 1.25).contains(&ms),
            "attempt {attempt}: {ms} ms"
        );
    }
}
