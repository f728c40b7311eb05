use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::metrics::Metrics;

#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
struct Body {
    items: Vec<Item>,
}
#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
struct Item {
    qty: i64,
}

#[test]
fn a_wrong_type_names_the_field_by_json_pointer() {
    let problem = decode_json::<Body>(br#"{"items":[{"qty":1},{"qty":"x"}]}"#).unwrap_err();
    assert_eq!(problem.status, 422);
    assert_eq!(problem.errors[0].field, "/items/1/qty");
}

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

#[tokio::test(start_paused = true)]
async fn a_body_that_does_not_arrive_in_time_is_answered_408_request_timeout() {
    use tower::ServiceExt;
    let router = Router::new().route(
        "/orders",
        axum::routing::post(|ApiJson(_body): ApiJson<Body>| async { StatusCode::ACCEPTED }),
    );
    // Headers sent, body never: a stream that stays pending.
    let trickle = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    let request = Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from_stream(trickle))
        .unwrap();

    let answer = tokio::time::timeout(BODY_READ_TIMEOUT * 2, app(router).oneshot(request))
        .await
        .expect("the request waited for its body beyond the timeout")
        .unwrap();

    assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
    let body = axum::body::to_bytes(answer.into_body(), 4096)
        .await
        .unwrap();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["type"], "/problems/request-timeout");
}

/// Reads until the server closes the connection, for at most 10 s.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received));
    match read.await {
        Ok(Ok(_)) => received,
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionReset => received,
        Ok(Err(err)) => panic!("reading failed: {err}"),
        Err(_) => panic!("the connection was still open after 10 s"),
    }
}

#[tokio::test]
async fn a_connection_that_sends_no_request_head_in_time_is_closed_and_a_prompt_one_is_served() {
    use tokio::io::AsyncWriteExt as _;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let http = crate::config::HttpArgs {
        header_read_timeout_ms: 300,
        ..Default::default()
    };
    let shutdown = CancellationToken::new();
    let router = Router::new().route("/ping", get(|| async { "pong" }));
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { serve(listener, router, &http, shutdown, Duration::from_secs(10)).await }
    });

    // Silent, and trickling: half a request head, then nothing.
    for sent in [&b""[..], b"GET /ping HTTP/1.1\r\nHost: a"] {
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        client.write_all(sent).await.unwrap();
        let opened = std::time::Instant::now();
        read_until_closed(&mut client).await;
        assert!(
            opened.elapsed() >= Duration::from_millis(250),
            "closed after {:?}, before the timeout",
            opened.elapsed()
        );
    }

    // Prompt: served, and closed only when it asks.
    let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
    client
        .write_all(b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    client
        .write_all(b"GET /ping HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let received = String::from_utf8(read_until_closed(&mut client).await).unwrap();
    assert_eq!(received.matches("HTTP/1.1 200 OK").count(), 2, "{received}");
    assert_eq!(received.matches("pong").count(), 2, "{received}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serving did not stop on shutdown")
        .unwrap()
        .unwrap();
}

#[test]
fn broken_json_is_a_bad_request() {
    let problem = decode_json::<Body>(br#"{"items":["#).unwrap_err();
    assert_eq!(problem.status, 400);
}
