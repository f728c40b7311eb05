//! The limit on requests in flight, and request timing for `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use telemetry::metrics::Metrics;

use super::*;

#[tokio::test]
async fn a_request_beyond_the_limit_is_refused_at_once_and_admitted_again_once_one_finished() {
    use tower::ServiceExt;
    let (entered, mut handler_entered) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let handler_release = release.clone();
    let router = Router::new().route(
        "/slow",
        get(move || {
            let (entered, release) = (entered.clone(), handler_release.clone());
            async move {
                entered.send(()).unwrap();
                release.notified().await;
            }
        }),
    );
    let metrics = Metrics::default();
    let app = limited(router, 1, metrics.clone());
    let slow = || {
        Request::get("/slow")
            .body(axum::body::Body::empty())
            .unwrap()
    };

    let first = tokio::spawn(app.clone().oneshot(slow()));
    handler_entered.recv().await;
    let refused = tokio::time::timeout(Duration::from_secs(5), app.clone().oneshot(slow()))
        .await
        .expect("the second request waited instead of being refused")
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    let body = axum::body::to_bytes(refused.into_body(), 4096)
        .await
        .unwrap();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["type"], "/problems/overloaded");
    assert!(metrics
        .render()
        .contains("openorder_http_requests_shed_total 1"));

    release.notify_one();
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    let second = tokio::spawn(app.oneshot(slow()));
    handler_entered.recv().await;
    release.notify_one();
    assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn the_time_a_handler_waited_because_the_client_asked_is_left_out_of_its_duration() {
    use axum::response::IntoResponse;
    use tower::ServiceExt;
    let router = Router::new().route(
        "/waits",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut response = "decided".into_response();
            response
                .extensions_mut()
                .insert(Waited(Duration::from_millis(300)));
            response
        }),
    );
    let metrics = Metrics::default();
    let app = timed(router, metrics.clone());
    let request = Request::get("/waits")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = metrics.render();
    let under_a_tenth = "openorder_http_request_duration_seconds_bucket{method=\"GET\",route=\"/waits\",status=\"200\",le=\"0.1\"} 1";
    assert!(text.contains(under_a_tenth), "{text}");
}
