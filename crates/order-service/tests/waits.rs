//! Waiting for an order's decision (`Prefer: wait=N`, RFC 7240) and following it (the
//! event stream), through the router (no socket, no broker) on a real SQLite database. The
//! decisions are applied by the store's own functions, as the consumers apply them.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use contracts::lifecycle::Trigger;
use futures_util::StreamExt;
use order_service::store::{self, Outcome};
use order_service::waits::Waits;
use platform::db::Database;
use platform::CancellationToken;
use serde_json::Value;
use sqlx::Row;
use tower::ServiceExt;

/// An answer: its status, headers and JSON body (null if none).
type Answer = (StatusCode, HeaderMap, Value);

#[derive(Clone)]
struct TestApp {
    db: Database,
    router: Router,
    waits: Waits,
    topics: contracts::Topics,
}

/// The app with room for `waiters` waiting requests; their waits end when `stop` is
/// cancelled.
async fn spawn_app_with(waiters: usize, stop: CancellationToken) -> TestApp {
    let db = common::database("waits").await;
    let topics = contracts::Topics::default();
    let waits = Waits::new(waiters, stop, Default::default());
    let router = common::router(
        &db,
        &topics,
        order_service::intake::QUEUE,
        waits.clone(),
        order_service::DEFAULT_STUCK_AFTER,
    );
    TestApp {
        db,
        router,
        waits,
        topics,
    }
}

async fn spawn_app() -> TestApp {
    spawn_app_with(16, CancellationToken::new()).await
}

const ORDER: &str = r#"{"userId":42,"items":[{"sku":"ABC-001","qty":1}]}"#;

fn post(prefer: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/api/orders").header(header::CONTENT_TYPE, "application/json");
    if let Some(prefer) = prefer {
        request = request.header("prefer", prefer);
    }
    request.body(Body::from(ORDER)).unwrap()
}

fn get(order_id: i64, prefer: Option<&str>) -> Request<Body> {
    let mut request = Request::get(format!("/api/orders/{order_id}"));
    if let Some(prefer) = prefer {
        request = request.header("prefer", prefer);
    }
    request.body(Body::empty()).unwrap()
}

impl TestApp {
    async fn send(&self, request: Request<Body>) -> Answer {
        common::send(&self.router, request).await
    }

    /// `request` answered in a task of its own, with how long it took.
    fn spawn(&self, request: Request<Body>) -> tokio::task::JoinHandle<(Answer, Duration)> {
        let app = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = app.send(request).await;
            (answer, started.elapsed())
        })
    }

    /// A new PENDING order's id.
    async fn order(&self) -> i64 {
        let (status, _, body) = self.send(post(None)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["orderId"].as_i64().expect("an order id")
    }

    /// Waits (up to 5 s) until `n` requests wait.
    async fn until_waiting(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.waits.waiting() != n {
            assert!(
                Instant::now() < deadline,
                "{} requests wait, not {n}",
                self.waits.waiting()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Applies `trigger` (an inventory answer) to `order_id` with the store's function,
    /// in a transaction of its own, as a consumer's handler does.
    async fn decide(&self, order_id: i64, trigger: Trigger) {
        let mut tx = self.db.begin().await.unwrap();
        store::apply_outcome(&mut tx, order_id, &Outcome::of(trigger), &self.waits)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    async fn orders(&self) -> i64 {
        sqlx::query("SELECT COUNT(*) AS n FROM orders")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
            .get("n")
    }
}

fn preference_applied(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("preference-applied")
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_waiting_get_answers_as_soon_as_the_store_applies_a_decision() {
    let app = spawn_app().await;
    let id = app.order().await;
    let waiting = app.spawn(get(id, Some("wait=20")));
    app.until_waiting(1).await;

    app.decide(id, Trigger::Reserved).await;

    let ((status, headers, order), took) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("answered once decided, not at the end of the wait")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(preference_applied(&headers), Some("wait=20"));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(app.waits.waiting(), 0, "its slot is free again");
}

#[tokio::test]
async fn a_waiting_get_times_out_with_the_pending_order_and_says_what_it_waited() {
    let app = spawn_app().await;
    let id = app.order().await;

    let started = Instant::now();
    let (status, headers, order) = app.send(get(id, Some("wait=1"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["status"], "PENDING");
    assert_eq!(preference_applied(&headers), Some("wait=1"));
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A wait longer than the bound is cut to it, and said so; a decided order is answered
    // at once.
    app.decide(id, Trigger::Rejected).await;
    let started = Instant::now();
    let (status, headers, order) = app.send(get(id, Some("wait=3600"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["status"], "REJECTED");
    assert_eq!(preference_applied(&headers), Some("wait=30"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_malformed_wait_preference_is_ignored() {
    let app = spawn_app().await;
    let id = app.order().await;
    let started = Instant::now();
    let (status, headers, order) = app.send(get(id, Some("wait=soon"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["status"], "PENDING");
    assert_eq!(preference_applied(&headers), None);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_waiting_post_answers_201_with_the_decided_order_and_its_location() {
    let app = spawn_app().await;
    let waiting = app.spawn(post(Some("wait=20")));
    // The slot is taken before the order is written: wait for the order.
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.orders().await == 0 {
        assert!(Instant::now() < deadline, "the order was written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let id: i64 = sqlx::query("SELECT MAX(id) AS id FROM orders")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
        .get("id");

    app.decide(id, Trigger::Reserved).await;

    let ((status, headers, order), _) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("answered once decided")
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["orderId"], id);
    assert_eq!(order["status"], "CONFIRMED");
    assert_eq!(order["items"][0]["sku"], "ABC-001");
    assert_eq!(headers[header::LOCATION], format!("/api/orders/{id}"));
    assert_eq!(preference_applied(&headers), Some("wait=20"));
}

#[tokio::test]
async fn a_waiting_post_not_decided_in_time_is_the_usual_202() {
    let app = spawn_app().await;
    let (status, headers, body) = app.send(post(Some("wait=1"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["status"], "PENDING");
    let id = body["orderId"].as_i64().unwrap();
    assert_eq!(headers[header::LOCATION], format!("/api/orders/{id}"));
    assert_eq!(preference_applied(&headers), Some("wait=1"));
}

#[tokio::test]
async fn more_waiters_than_the_bound_are_refused_503_and_a_refused_post_writes_nothing() {
    let app = spawn_app_with(1, CancellationToken::new()).await;
    let id = app.order().await;
    let first = app.spawn(get(id, Some("wait=20")));
    app.until_waiting(1).await;

    let (status, headers, problem) = app.send(get(id, Some("wait=5"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["type"], "/problems/too-many-waiters", "{problem}");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");

    let orders = app.orders().await;
    let (status, _, problem) = app.send(post(Some("wait=5"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["type"], "/problems/too-many-waiters");
    assert_eq!(app.orders().await, orders, "no order was written");

    let (status, _, problem) = app
        .send(
            Request::get(format!("/api/orders/{id}/events"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");

    // Without a wait, nothing is refused.
    let (status, headers, _) = app.send(get(id, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(preference_applied(&headers), None);

    // A cancel decides too: the first waiter answers, and its slot is free again.
    store::cancel_order(&app.db, &app.topics, id, None, &app.waits)
        .await
        .unwrap();
    let ((status, _, order), _) = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .expect("the cancel woke the waiter")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(app.waits.waiting(), 0, "its slot is free again");
}

#[tokio::test]
async fn every_wait_ends_when_the_service_stops() {
    let stop = CancellationToken::new();
    let app = spawn_app_with(16, stop.clone()).await;
    let id = app.order().await;
    let waiting = app.spawn(get(id, Some("wait=30")));
    app.until_waiting(1).await;

    stop.cancel();

    let ((status, headers, order), _) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the wait ended with the service")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["status"], "PENDING");
    assert_eq!(preference_applied(&headers), Some("wait=30"));
}

/// The next `event: status` of `stream`'s text, within 5 s: its order. None once the
/// stream ended.
async fn next_status(
    stream: &mut axum::body::BodyDataStream,
    buffer: &mut String,
) -> Option<Value> {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if !event.contains("event: status") {
                continue; // a keep-alive comment
            }
            let data = event
                .lines()
                .find_map(|line| line.strip_prefix("data: "))
                .expect("an event has data");
            return Some(serde_json::from_str(data).unwrap());
        }
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event or the end within 5 s")?;
        buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
}

#[tokio::test]
async fn the_event_stream_sends_the_order_then_each_change_and_ends_at_a_terminal_status() {
    let app = spawn_app().await;
    let id = app.order().await;
    let response = app
        .router
        .clone()
        .oneshot(
            Request::get(format!("/api/orders/{id}/events"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut stream = response.into_body().into_data_stream();
    let mut buffer = String::new();

    let first = next_status(&mut stream, &mut buffer).await.unwrap();
    assert_eq!(first["status"], "PENDING");
    assert_eq!(first["orderId"], id);
    assert_eq!(app.waits.waiting(), 1, "an open stream takes a slot");

    app.decide(id, Trigger::Reserved).await;
    let confirmed = next_status(&mut stream, &mut buffer).await.unwrap();
    assert_eq!(confirmed["status"], "CONFIRMED");

    store::cancel_order(&app.db, &app.topics, id, None, &app.waits)
        .await
        .unwrap();
    let cancelled = next_status(&mut stream, &mut buffer).await.unwrap();
    assert_eq!(cancelled["status"], "CANCELLED");
    assert!(
        next_status(&mut stream, &mut buffer).await.is_none(),
        "the stream ends after a terminal status"
    );
    drop(stream);
    assert_eq!(app.waits.waiting(), 0);

    let (status, _, _) = app
        .send(
            Request::get("/api/orders/999999/events")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
