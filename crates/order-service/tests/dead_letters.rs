//! order-service's dead-letter consumer on a real SQLite database: a dead letter of the
//! inventory group fails its order, found by the key or, for a record produced without a
//! key, by the `orderId` in its value.

mod common;

use axum::body::Body;
use axum::http::{header, Request};
use order_service::on_order_created_dead_letter::OnOrderCreatedDeadLetter;
use platform::consumer::Handler;
use serde_json::Value;

use common::dead_letter;

/// `request`'s JSON answer from `app`.
async fn call(app: &axum::Router, request: Request<Body>) -> Value {
    let (_, _, body) = common::send(app, request).await;
    assert!(!body.is_null(), "a JSON answer");
    body
}

#[tokio::test]
async fn a_dead_letter_without_a_key_fails_the_order_named_in_its_value() {
    let db = common::database("dlt").await;
    let topics = contracts::Topics::default();
    let waits = order_service::waits::Waits::new(16, Default::default(), Default::default());
    let app = common::router(
        &db,
        &topics,
        order_service::intake::QUEUE,
        waits.clone(),
        order_service::DEFAULT_STUCK_AFTER,
    );
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
