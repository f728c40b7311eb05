//! The orders API through the router (no socket, no broker), on a real SQLite database:
//! what each request answers and that a refused request writes nothing.

#[path = "../common/mod.rs"]
mod common;
mod problems;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use platform::db::Database;
use serde_json::Value;
use sqlx::Row;

#[derive(Clone)]
struct TestApp {
    db: Database,
    router: Router,
}

async fn spawn_app() -> TestApp {
    spawn_app_with_queue(order_service::intake::QUEUE).await
}

/// The app with room for `queue` orders waiting for the intake's writer.
async fn spawn_app_with_queue(queue: usize) -> TestApp {
    let db = common::database("http").await;
    let waits = order_service::waits::Waits::new(
        order_service::waits::MAX_WAITERS as usize,
        Default::default(),
        Default::default(),
    );
    let router = common::router(
        &db,
        &contracts::Topics::default(),
        queue,
        waits,
        order_service::DEFAULT_STUCK_AFTER,
    );
    TestApp { db, router }
}

impl TestApp {
    async fn send(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        common::send(&self.router, request).await
    }

    async fn post(
        &self,
        content_type: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let request = Request::post("/api/orders")
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap();
        self.send(request).await
    }

    /// POSTs `body` to `/api/orders` as JSON.
    async fn post_json(&self, body: impl Into<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.post("application/json", body).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (status, _, body) = self
            .send(Request::get(uri).body(Body::empty()).unwrap())
            .await;
        (status, body)
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
            .get("n")
    }

    async fn assert_nothing_written(&self) {
        assert_eq!(self.count("orders").await, 0, "no order row");
        assert_eq!(self.count("outbox").await, 0, "no outbox row");
    }
}

/// An order of user 42 for two `ABC-001`, as a JSON body.
const TWO_OF_ABC_001: &str = r#"{"userId":42,"items":[{"sku":"ABC-001","qty":2}]}"#;

fn assert_problem(headers: &axum::http::HeaderMap, body: &Value, status: u16) {
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["type"].as_str().unwrap().starts_with("/problems/"));
}

#[tokio::test]
async fn a_valid_order_is_accepted_as_pending_with_its_event_in_the_outbox() {
    let app = spawn_app().await;
    let (status, headers, body) = app.post_json(TWO_OF_ABC_001).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = body["orderId"].as_i64().expect("orderId is an integer");
    assert_eq!(body["status"], "PENDING");
    assert_eq!(headers[header::LOCATION], format!("/api/orders/{id}"));

    let outbox = sqlx::query("SELECT topic, record_key, payload FROM outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(outbox.get::<String, _>("topic"), "order.created");
    assert_eq!(outbox.get::<String, _>("record_key"), id.to_string());
    let event: contracts::OrderCreated =
        serde_json::from_str(&outbox.get::<String, _>("payload")).unwrap();
    assert_eq!((event.order_id, event.user_id), (id, 42));

    let (status, order) = app.get(&format!("/api/orders/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["items"][0]["sku"], "ABC-001");
}

#[tokio::test]
async fn an_unknown_order_is_a_404_problem() {
    let app = spawn_app().await;
    for uri in ["/api/orders/12345", "/api/orders/abc", "/api/orders/-1"] {
        let (status, body) = app.get(uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(body["status"], 404);
    }
}

#[tokio::test]
async fn a_users_orders_are_listed_newest_first_in_pages() {
    let app = spawn_app().await;
    for qty in 1..=3 {
        let body = format!(r#"{{"userId":7,"items":[{{"sku":"ABC-001","qty":{qty}}}]}}"#);
        assert_eq!(app.post_json(body).await.0, StatusCode::ACCEPTED);
    }
    app.post_json(r#"{"userId":8,"items":[{"sku":"ABC-001","qty":9}]}"#)
        .await;

    let (status, page) = app.get("/api/orders?userId=7&size=2").await;
    assert_eq!(status, StatusCode::OK);
    let qtys: Vec<i64> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["items"][0]["qty"].as_i64().unwrap())
        .collect();
    assert_eq!(qtys, [3, 2]);
    assert_eq!(page["hasMore"], true);

    let (_, page) = app.get("/api/orders?userId=7&size=2&page=1").await;
    assert_eq!(page["orders"].as_array().unwrap().len(), 1);
    assert_eq!(page["hasMore"], false);

    let (status, body) = app.get("/api/orders").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["field"], "userId");
    let (status, _) = app.get("/api/orders?userId=7&size=1000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cancelling_a_pending_order_cancels_it_once_and_queues_one_event() {
    let app = spawn_app().await;
    let (_, _, body) = app.post_json(TWO_OF_ABC_001).await;
    let id = body["orderId"].as_i64().unwrap();
    let cancel = || {
        Request::post(format!("/api/orders/{id}/cancel"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, order) = app.send(cancel()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["status"], "CANCELLED");
    let (status, _, order) = app.send(cancel()).await;
    assert_eq!(status, StatusCode::OK, "cancelling twice is a no-op");
    assert_eq!(order["status"], "CANCELLED");
    let topics: Vec<String> = sqlx::query("SELECT topic FROM outbox ORDER BY id")
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("topic"))
        .collect();
    assert_eq!(topics, ["order.created", "order.cancelled"]);

    let (status, _, problem) = app
        .send(
            Request::post("/api/orders/999/cancel")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["status"], 404);
}

#[tokio::test]
async fn a_retried_post_with_the_same_idempotency_key_makes_one_order() {
    let app = spawn_app().await;
    let post = |key: &str, body: &str| {
        Request::post("/api/orders")
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", key)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let body = TWO_OF_ABC_001;
    let (status, _, first) = app.send(post("retry-1", body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, headers, second) = app.send(post("retry-1", body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(first, second, "the same response");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(app.count("outbox").await, 1);

    let other = r#"{"userId":42,"items":[{"sku":"ABC-001","qty":3}]}"#;
    let (status, headers, problem) = app.send(post("retry-1", other)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem(&headers, &problem, 422);
    assert_eq!(problem["type"], "/problems/idempotency-key-reused");
    assert_eq!(app.count("orders").await, 1, "nothing written");

    let (status, _, third) = app.send(post("retry-2", body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_ne!(
        third["orderId"], first["orderId"],
        "a new key is a new order"
    );

    let (status, _, problem) = app.send(post(&"k".repeat(256), body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_committed_together_each_get_their_own_order_and_event() {
    let app = spawn_app().await;
    let post = |i: usize| {
        let mut request =
            Request::post("/api/orders").header(header::CONTENT_TYPE, "application/json");
        // Every fifth request repeats the key of the one before it: same body, same order.
        let key = format!("burst-{}", i - usize::from(i % 5 == 1));
        request = request.header("Idempotency-Key", key);
        let qty = i - usize::from(i % 5 == 1) + 1;
        let body = format!(r#"{{"userId":7,"items":[{{"sku":"ABC-001","qty":{qty}}}]}}"#);
        request.body(Body::from(body)).unwrap()
    };
    let answers = futures_util::future::join_all((0..200).map(|i| app.send(post(i)))).await;

    let mut ids = std::collections::BTreeSet::new();
    for (status, _, body) in &answers {
        assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
        ids.insert(body["orderId"].as_i64().expect("an order id"));
    }
    let repeats = (0..200).filter(|i| i % 5 == 1).count();
    assert_eq!(ids.len(), 200 - repeats, "one order per distinct key");
    assert_eq!(app.count("orders").await, ids.len() as i64);
    assert_eq!(
        app.count("outbox").await,
        ids.len() as i64,
        "one event per order"
    );
    for i in (0..200).filter(|i| i % 5 == 1) {
        assert_eq!(
            answers[i].2["orderId"],
            answers[i - 1].2["orderId"],
            "a repeated key answers the first order"
        );
    }
}

#[tokio::test]
async fn an_order_beyond_a_full_intake_queue_is_refused_at_once_with_a_503_and_writes_nothing() {
    let app = spawn_app_with_queue(1).await;
    // Hold the database's write gate: the writer takes what is queued and waits there, so
    // the queue (room for one) fills up.
    let gate = app.db.begin().await.unwrap();
    let body = r#"{"userId":7,"items":[{"sku":"ABC-001","qty":1}]}"#;
    let mut waiting = Vec::new();
    let refused = loop {
        let app_ = app.clone();
        let mut answer = tokio::spawn(async move { app_.post_json(body).await });
        // A refusal comes at once; an accepted order waits for the writer.
        match tokio::time::timeout(std::time::Duration::from_millis(500), &mut answer).await {
            Ok(answer) => break answer.unwrap(),
            Err(_) => waiting.push(answer),
        }
        assert!(
            waiting.len() <= 2,
            "one order in the writer's hands and one queued, then refusals"
        );
    };
    let (status, headers, problem) = refused;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_problem(&headers, &problem, 503);
    assert_eq!(problem["type"], "/problems/busy");
    assert_eq!(headers[header::RETRY_AFTER], "1");

    drop(gate);
    for answer in waiting.drain(..) {
        let (status, _, body) = answer.await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let accepted = app.count("orders").await;
    assert!((1..=2).contains(&accepted), "{accepted} orders");
    assert_eq!(
        app.count("outbox").await,
        accepted,
        "the refused order wrote nothing"
    );
    let (status, _, body) = app.post_json(body).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "room again once the writer is through: {body}"
    );
}

#[tokio::test]
async fn the_asyncapi_document_is_served_as_committed_to_anyone() {
    let app = spawn_app().await;
    let (status, served) = app.get("/asyncapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let committed: Value =
        serde_json::from_str(include_str!("../../../../docs/api/asyncapi.json")).unwrap();
    assert_eq!(served, committed);
    assert_eq!(served["asyncapi"], "3.0.0");
}

#[tokio::test]
async fn the_openapi_document_is_served_with_a_page_to_read_it() {
    let app = spawn_app().await;
    let (status, served) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let generated = platform::http::openapi::to_json(&order_service::routes::openapi());
    assert_eq!(served, serde_json::from_str::<Value>(&generated).unwrap());
    for path in [
        "/api/orders",
        "/api/orders/{id}",
        "/api/orders/{id}/cancel",
        "/health/ready",
        "/admin/status",
    ] {
        assert!(served["paths"][path].is_object(), "{path} is documented");
    }
    let (status, _) = app.get("/docs").await;
    assert_eq!(status, StatusCode::OK);
}
