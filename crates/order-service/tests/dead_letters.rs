//! order-service's dead-letter consumer on a real SQLite database: a dead letter of the
//! inventory group fails its order, found by the key or, for a record produced without a
//! key, by the `orderId` in its value.

use axum::body::Body;
use axum::http::{header, Request};
use order_service::intake::Intake;
use order_service::on_order_created_dead_letter::OnOrderCreatedDeadLetter;
use order_service::routes::{routes, AppState};
use platform::auth::Auth;
use platform::consumer::{Handler, Record};
use platform::db::Database;
use serde_json::Value;
use tower::ServiceExt;

async fn call(app: &axum::Router, request: Request<Body>) -> Value {
    let response = app.clone().oneshot(request).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn dead_letter(key: Option<&str>, value: Value, group: &str, offset: i64) -> Record {
    Record {
        topic: "order.created.DLT".into(),
        partition: 0,
        offset,
        timestamp: None,
        key: key.map(|k| k.as_bytes().to_vec()),
        payload: Some(value.to_string().into_bytes()),
        headers: vec![
            (
                contracts::headers::DLT_ORIGINAL_CONSUMER_GROUP.into(),
                Some(group.as_bytes().to_vec()),
            ),
            (
                contracts::headers::DLT_EXCEPTION_FQCN.into(),
                Some(b"openorder.SimulatedFailure".to_vec()),
            ),
        ],
    }
}

#[tokio::test]
async fn a_dead_letter_without_a_key_fails_the_order_named_in_its_value() {
    let dir = std::env::temp_dir().join(format!("oo-dlt-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/order.db", dir.display());
    let db = Database::connect(&url, 4, &order_service::store::SCHEMA)
        .await
        .unwrap();
    let topics = contracts::Topics::default();
    let waits = order_service::waits::Waits::new(16, Default::default(), Default::default());
    let app = platform::http::app(Auth::unconfigured().apply(routes(AppState {
        db: db.clone(),
        webhooks: contracts::destinations::Destinations::public_only(),
        topics: topics.clone(),
        intake: Intake::start(
            db.clone(),
            topics.clone(),
            order_service::intake::QUEUE,
            Default::default(),
        ),
        waits: waits.clone(),
        stuck_after: order_service::DEFAULT_STUCK_AFTER,
    })));
    let post = || {
        Request::post("/api/orders")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                r#"{"userId":7,"items":[{"sku":"ABC-001","qty":1}]}"#,
            ))
            .unwrap()
    };
    let keyless = call(&app, post()).await["orderId"].as_i64().unwrap();
    let other_group = call(&app, post()).await["orderId"].as_i64().unwrap();
    let handler = platform::router::Router::new(contracts::Service::Order, &topics)
        .on_dead_letters::<contracts::OrderCreated, _>(OnOrderCreatedDeadLetter {
        inventory_group: "inventory-service".into(),
        waits,
    });
    let letters = [
        dead_letter(
            None,
            serde_json::json!({"orderId": keyless}),
            "inventory-service",
            1,
        ),
        // Another group's dead letter fails nothing, key or not.
        dead_letter(
            None,
            serde_json::json!({"orderId": other_group}),
            "notification-service",
            2,
        ),
    ];
    let mut tx = db.begin().await.unwrap();
    for letter in &letters {
        handler
            .apply(&mut tx, std::slice::from_ref(letter), 1)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let status = |id: i64| {
        let app = app.clone();
        async move {
            let request = Request::get(format!("/api/orders/{id}"))
                .body(Body::empty())
                .unwrap();
            call(&app, request).await["status"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(status(keyless).await, "FAILED");
    assert_eq!(status(other_group).await, "PENDING");
}
