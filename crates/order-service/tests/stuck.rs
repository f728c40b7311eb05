//! Orders PENDING too long, on a real SQLite database: the periodic task's gauges, the
//! operators' list and counts by status (through the router), and expiry with
//! `--expire-pending-after`.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::Utc;
use contracts::{InventoryReserved, Topics};
use order_service::on_inventory_reserved::OnInventoryReserved;
use order_service::store;
use order_service::stuck::Watchdog;
use order_service::waits::Waits;
use platform::consumer::Handler;
use platform::db::Database;
use platform::metrics::Metrics;
use platform::CancellationToken;
use serde_json::Value;
use sqlx::Row;
use tower::ServiceExt;

/// What the tests set `--stuck-after` to.
const STUCK_AFTER: Duration = Duration::from_secs(30);

struct TestApp {
    db: Database,
    topics: Topics,
    waits: Waits,
    router: Router,
}

async fn spawn_app() -> TestApp {
    let db = common::database("stuck").await;
    let topics = Topics::default();
    let waits = Waits::new(16, CancellationToken::new(), Default::default());
    let router = common::router(
        &db,
        &topics,
        order_service::intake::QUEUE,
        waits.clone(),
        STUCK_AFTER,
    );
    TestApp {
        db,
        topics,
        waits,
        router,
    }
}

impl TestApp {
    /// A new PENDING order, placed `age` ago.
    async fn order_placed(&self, age: Duration) -> i64 {
        let order_id = common::create_order(&self.db, &self.topics).await;
        let placed = (Utc::now() - chrono::Duration::from_std(age).unwrap())
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        sqlx::query("UPDATE orders SET created_at = $1, updated_at = $1 WHERE id = $2")
            .bind(placed)
            .bind(order_id)
            .execute(&self.db.pool)
            .await
            .unwrap();
        order_id
    }

    fn watchdog(&self, metrics: &Metrics, expire_after: Option<Duration>) -> Watchdog {
        Watchdog {
            db: self.db.clone(),
            topics: self.topics.clone(),
            waits: self.waits.clone(),
            metrics: metrics.clone(),
            stuck_after: STUCK_AFTER,
            expire_after,
        }
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (status, _, body) =
            common::send(&self.router, Request::get(uri).body(Body::empty()).unwrap()).await;
        (status, body)
    }

    /// The outbox rows of `topic`, by key.
    async fn outbox_keys(&self, topic: &str) -> Vec<String> {
        sqlx::query("SELECT record_key FROM outbox WHERE topic = $1 ORDER BY id")
            .bind(topic)
            .fetch_all(&self.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get("record_key"))
            .collect()
    }
}

/// The value of the series `name` (no labels) in `metrics`' text; None if it is not there.
fn series(metrics: &Metrics, name: &str) -> Option<i64> {
    metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")).map(str::to_string))
        .map(|value| value.parse().unwrap())
}

#[tokio::test]
async fn the_stuck_gauge_and_list_count_an_order_older_than_the_deadline_and_not_a_newer_one() {
    let app = spawn_app().await;
    let metrics = Metrics::default();
    app.watchdog(&metrics, None)
        .pass(&CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(series(&metrics, "openorder_orders_stuck"), Some(0));
    assert_eq!(
        series(&metrics, "openorder_orders_pending_oldest_age_seconds"),
        Some(0),
        "no order is PENDING"
    );

    let old = app.order_placed(Duration::from_secs(120)).await;
    let new = app.order_placed(Duration::from_secs(1)).await;
    // Decided orders are never stuck, however old.
    let decided = app.order_placed(Duration::from_secs(600)).await;
    sqlx::query("UPDATE orders SET status = 'CONFIRMED' WHERE id = $1")
        .bind(decided)
        .execute(&app.db.pool)
        .await
        .unwrap();

    app.watchdog(&metrics, None)
        .pass(&CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(series(&metrics, "openorder_orders_stuck"), Some(1));
    let oldest = series(&metrics, "openorder_orders_pending_oldest_age_seconds").unwrap();
    assert!((119..=130).contains(&oldest), "{oldest}");

    let (status, page) = app.get("/admin/orders/stuck").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["stuckAfterSeconds"], STUCK_AFTER.as_secs());
    let orders = page["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{page}");
    assert_eq!(orders[0]["orderId"], old);
    assert_eq!(orders[0]["userId"], 7);
    assert!(orders[0]["ageSeconds"].as_i64().unwrap() >= 119);
    assert!(orders[0]["createdAt"].is_string());
    assert_eq!(page["hasMore"], false);
    assert_ne!(orders[0]["orderId"], new);

    let (status, problem) = app.get("/admin/orders/stuck?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["type"], "/problems/invalid-parameter");
}

#[tokio::test]
async fn the_counts_name_every_status_of_the_lifecycle_and_the_stuck_orders() {
    let app = spawn_app().await;
    let (status, empty) = app.get("/admin/orders/counts").await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    for state in contracts::lifecycle::OrderStatus::ALL {
        assert_eq!(empty["counts"][state.as_str()], 0, "{empty}");
    }
    assert_eq!(empty["stuck"], 0);
    assert_eq!(empty["stuckAfterSeconds"], STUCK_AFTER.as_secs());

    app.order_placed(Duration::from_secs(120)).await;
    app.order_placed(Duration::from_secs(1)).await;
    for (age, decided) in [(600, "CONFIRMED"), (5, "CONFIRMED"), (700, "REJECTED")] {
        let id = app.order_placed(Duration::from_secs(age)).await;
        sqlx::query("UPDATE orders SET status = $1 WHERE id = $2")
            .bind(decided)
            .bind(id)
            .execute(&app.db.pool)
            .await
            .unwrap();
    }
    let (status, counts) = app.get("/admin/orders/counts").await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    assert_eq!(
        counts["counts"],
        serde_json::json!({"PENDING": 2, "CONFIRMED": 2, "REJECTED": 1, "FAILED": 0, "CANCELLED": 0})
    );
    assert_eq!(
        counts["stuck"], 1,
        "only the PENDING order older than --stuck-after"
    );
}

#[tokio::test]
async fn with_expiry_an_order_past_the_deadline_ends_cancelled_with_its_event_and_a_late_reservation_does_not_revive_it(
) {
    let app = spawn_app().await;
    let old = app.order_placed(Duration::from_secs(600)).await;
    let new = app.order_placed(Duration::from_secs(1)).await;
    // Someone waits for the old order's decision.
    let waiting = {
        let router = app.router.clone();
        tokio::spawn(async move {
            router
                .oneshot(
                    Request::get(format!("/api/orders/{old}"))
                        .header("prefer", "wait=20")
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap()
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.waits.waiting() == 0 {
        assert!(std::time::Instant::now() < deadline, "the request waits");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let metrics = Metrics::default();
    let watchdog = app.watchdog(&metrics, Some(Duration::from_secs(300)));
    watchdog.pass(&CancellationToken::new()).await.unwrap();

    let order = store::get_order(&app.db, old).await.unwrap().unwrap();
    assert_eq!(order.status, contracts::lifecycle::OrderStatus::Cancelled);
    assert!(contracts::lifecycle::is_terminal(order.status));
    assert_eq!(order.reason.as_deref(), Some(store::TIMEOUT));
    let fresh = store::get_order(&app.db, new).await.unwrap().unwrap();
    assert_eq!(fresh.status, contracts::lifecycle::OrderStatus::Pending);
    assert_eq!(
        app.outbox_keys(&app.topics.order_cancelled()).await,
        [old.to_string()],
        "one order.cancelled, for the expired order"
    );
    assert_eq!(series(&metrics, "openorder_orders_expired_total"), Some(1));
    assert_eq!(
        series(&metrics, "openorder_orders_stuck"),
        Some(0),
        "an expired order is not stuck"
    );

    let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the expiry woke the waiter")
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap();
    let shown: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(shown["status"], "CANCELLED");
    assert_eq!(shown["reason"], "TIMEOUT");

    // Inventory's reservation, arriving late, moves nothing.
    let consumer = platform::router::Router::new(contracts::Service::Order, &app.topics)
        .on::<InventoryReserved, _>(OnInventoryReserved {
        waits: app.waits.clone(),
    });
    let mut tx = app.db.begin().await.unwrap();
    consumer
        .apply(
            &mut tx,
            std::slice::from_ref(&common::record(&common::reserved(old))),
            1,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let order = store::get_order(&app.db, old).await.unwrap().unwrap();
    assert_eq!(order.status, contracts::lifecycle::OrderStatus::Cancelled);
    assert_eq!(order.reason.as_deref(), Some(store::TIMEOUT));

    // A later pass finds nothing more to expire: the order is cancelled once.
    watchdog.pass(&CancellationToken::new()).await.unwrap();
    assert_eq!(
        app.outbox_keys(&app.topics.order_cancelled()).await,
        [old.to_string()]
    );
}
