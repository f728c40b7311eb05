use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;
use telemetry::metrics::Metrics;

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
    let http = crate::http::HttpArgs {
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

/// Serves `router` with `http` on a fresh loopback port; returns its address and the token
/// that stops it.
async fn served(
    router: Router,
    http: crate::http::HttpArgs,
) -> (std::net::SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move { serve(listener, router, &http, shutdown, Duration::from_secs(1)).await }
    });
    (address, shutdown)
}

/// Sends `request` on a new connection; returns everything answered until it closed.
async fn raw(address: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::AsyncWriteExt as _;
    let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may answer and close before it read all of a too-large head.
    let _ = client.write_all(request).await;
    String::from_utf8_lossy(&read_until_closed(&mut client).await).into_owned()
}

#[tokio::test]
async fn a_head_too_large_for_hyper_is_answered_with_a_problem_too() {
    let router = Router::new().route("/ping", get(|| async { "pong" }));
    let (address, shutdown) = served(router, Default::default()).await;
    let long = format!(
        "GET /ping?x={} HTTP/1.1\r\nHost: a\r\n\r\n",
        "a".repeat(100_000)
    );
    let answer = raw(address, long.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        answer.contains(r#""type":"/problems/uri-too-long""#),
        "{answer}"
    );
    let mut many = String::from("GET /ping HTTP/1.1\r\nHost: a\r\n");
    for i in 0..2_000 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw(address, many.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert!(
        answer.contains(r#""type":"/problems/headers-too-large""#),
        "{answer}"
    );
    // And an ordinary request on the same server is served.
    let answer = raw(
        address,
        b"GET /ping HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("pong"),
        "{answer}"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_and_others_get_no_cors_headers() {
    let router = Router::new().route("/api/orders", axum::routing::post(|| async { "ok" }));
    let http = crate::http::HttpArgs {
        cors_allowed_origins: vec!["https://shop.example.com".into()],
        ..Default::default()
    };
    let (address, shutdown) = served(router.clone(), http).await;
    let preflight = |origin: &str| {
        format!(
            "OPTIONS /api/orders HTTP/1.1\r\nHost: a\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type, idempotency-key\r\nConnection: close\r\n\r\n"
        )
    };
    let allowed = raw(address, preflight("https://shop.example.com").as_bytes())
        .await
        .to_ascii_lowercase();
    assert!(allowed.starts_with("http/1.1 200"), "{allowed}");
    assert!(
        allowed.contains("access-control-allow-origin: https://shop.example.com"),
        "{allowed}"
    );
    assert!(allowed.contains("idempotency-key"), "{allowed}");
    let other = raw(address, preflight("https://evil.example.net").as_bytes())
        .await
        .to_ascii_lowercase();
    assert!(!other.contains("access-control-allow-origin"), "{other}");
    shutdown.cancel();
    // Without origins configured, OPTIONS is a 405 problem.
    let (address, shutdown) = served(router, Default::default()).await;
    let answer = raw(address, preflight("https://shop.example.com").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    assert!(answer.contains("/problems/method-not-allowed"), "{answer}");
    shutdown.cancel();
}

/// Sends each of `parts` on one connection, 100 ms apart (each is answered before the next
/// is sent, as on a kept-alive connection); returns everything answered until it closed.
async fn conversation(address: std::net::SocketAddr, parts: &[&[u8]]) -> String {
    use tokio::io::AsyncWriteExt as _;
    let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
    for part in parts {
        // The server may have answered and closed already.
        let _ = client.write_all(part).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    String::from_utf8_lossy(&read_until_closed(&mut client).await).into_owned()
}

/// The `type` of the one problem in `answer` (a raw HTTP answer), or "" if none.
fn problem_type(answer: &str) -> String {
    let Some(at) = answer.find("\r\n\r\n") else {
        return String::new();
    };
    let problem: serde_json::Value =
        serde_json::from_str(&answer[at + 4..]).unwrap_or(serde_json::Value::Null);
    problem["type"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn an_http_1_1_request_without_host_is_refused_400() {
    let router = Router::new().route("/ping", get(|| async { "pong" }));
    let (address, shutdown) = served(router, Default::default()).await;

    // The first request of a connection.
    let answer = raw(address, b"GET /ping HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert_eq!(problem_type(&answer), "/problems/missing-host", "{answer}");

    // A later one on a kept-alive connection: the first is served, the second refused.
    let answer = conversation(
        address,
        &[
            &b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /ping HTTP/1.1\r\n\r\n",
        ],
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 400 ").count(), 1, "{answer}");
    assert!(answer.contains("/problems/missing-host"), "{answer}");

    // HTTP/1.0 has no Host to send: served.
    let answer = raw(address, b"GET /ping HTTP/1.0\r\n\r\n").await;
    assert!(answer.contains(" 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("pong"), "{answer}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_request_with_more_than_one_host_or_a_host_that_is_not_one_is_refused_400() {
    let router = Router::new().route("/ping", get(|| async { "pong" }));
    let (address, shutdown) = served(router, Default::default()).await;
    let twice = b"GET /ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    let answer = raw(address, twice).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert_eq!(problem_type(&answer), "/problems/invalid-host", "{answer}");
    // Twice on a later request too, and for HTTP/1.0.
    let answer = conversation(
        address,
        &[&b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n"[..], twice],
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("/problems/invalid-host"), "{answer}");
    let answer = raw(address, b"GET /ping HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n").await;
    assert!(answer.contains(" 400 "), "{answer}");
    assert_eq!(problem_type(&answer), "/problems/invalid-host", "{answer}");
    let answer = raw(address, b"GET /ping HTTP/1.1\r\nHost: a b\r\n\r\n").await;
    assert_eq!(problem_type(&answer), "/problems/invalid-host", "{answer}");
    // A host with a port, an IPv6 literal, or empty (RFC 9112 section 3.2) is one.
    for host in ["localhost:8080", "[::1]:8080", ""] {
        let request = format!("GET /ping HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = raw(address, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{host:?}: {answer}");
    }
    shutdown.cancel();
}

#[test]
fn a_host_header_is_checked_as_one_host_and_optional_port() {
    fn refusal(http_1_1: bool, hosts: &[&[u8]]) -> Option<String> {
        let no_length: [&[u8]; 0] = [];
        super::middleware::misframed(http_1_1, hosts.iter().copied(), no_length)
            .map(|problem| problem.type_)
    }
    assert_eq!(refusal(true, &[&b"shop.example.com"[..]]), None);
    assert_eq!(refusal(true, &[&b"127.0.0.1:8080"[..]]), None);
    assert_eq!(refusal(false, &[]), None);
    assert_eq!(
        refusal(true, &[]).as_deref(),
        Some("/problems/missing-host")
    );
    for bad in [&b"user@shop.example.com"[..], b"a/b", b"a b"] {
        assert_eq!(
            refusal(true, &[bad]).as_deref(),
            Some("/problems/invalid-host"),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[tokio::test]
async fn a_request_head_whose_lines_end_in_a_bare_lf_is_refused_400_at_once() {
    let router = Router::new().route("/ping", get(|| async { "pong" }));
    let (address, shutdown) = served(router, Default::default()).await;
    for head in [
        &b"GET /ping HTTP/1.1\nHost: a\n\n"[..],
        b"GET /ping HTTP/1.1\r\nHost: a\n\r\n",
        // Not yet complete: refused all the same, without waiting for the rest.
        b"GET /ping HTTP/1.1\nHost: a",
    ] {
        let sent = std::time::Instant::now();
        let answer = raw(address, head).await;
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "answered after {:?}",
            sent.elapsed()
        );
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert_eq!(
            problem_type(&answer),
            "/problems/malformed-head",
            "{answer}"
        );
    }
    shutdown.cancel();
}

#[tokio::test]
async fn a_content_length_past_the_body_limit_is_refused_413_before_the_body_is_sent() {
    let router = Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route(
            "/orders",
            axum::routing::post(|ApiJson(_body): ApiJson<Body>| async { StatusCode::ACCEPTED }),
        );
    let (address, shutdown) = served(router, Default::default()).await;
    // Ten megabytes declared, none sent: the body timeout (30 s) is not waited for.
    let large = b"POST /orders HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n";
    let sent = std::time::Instant::now();
    let answer = raw(address, large).await;
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        sent.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert_eq!(
        problem_type(&answer),
        "/problems/body-too-large",
        "{answer}"
    );
    // On a kept-alive connection too, and the connection is closed after it.
    let answer = conversation(
        address,
        &[&b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n"[..], large],
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 413 ").count(), 1, "{answer}");
    assert!(answer.contains("/problems/body-too-large"), "{answer}");
    // At the limit, the body is read.
    let at_limit = format!(
        "POST /orders HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {MAX_BODY_BYTES}\r\nConnection: close\r\n\r\n{{\"items\":[]}}{}",
        " ".repeat(MAX_BODY_BYTES - r#"{"items":[]}"#.len())
    );
    let answer = raw(address, at_limit.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 202 "), "{answer}");
    shutdown.cancel();
}

#[tokio::test]
async fn an_unparsable_or_conflicting_content_length_is_refused_400() {
    let router = Router::new().route(
        "/orders",
        axum::routing::post(|ApiJson(_body): ApiJson<Body>| async { StatusCode::ACCEPTED }),
    );
    let (address, shutdown) = served(router, Default::default()).await;
    let post = |lengths: &str| {
        format!("POST /orders HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n{lengths}Connection: close\r\n\r\n{{\"items\":[]}}")
    };
    for lengths in [
        "Content-Length: 12abc\r\n",
        "Content-Length: +12\r\n",
        "Content-Length: 12, 12\r\n",
        "Content-Length: 12\r\nContent-Length: 13\r\n",
    ] {
        let answer = raw(address, post(lengths).as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{lengths:?}: {answer}");
        assert!(
            answer.contains("application/problem+json"),
            "{lengths:?}: {answer}"
        );
        assert_eq!(
            problem_type(&answer),
            "/problems/invalid-content-length",
            "{lengths:?}: {answer}"
        );
    }
    // The same length twice is one length.
    let twice = post("Content-Length: 12\r\nContent-Length: 12\r\n");
    let answer = raw(address, twice.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 202 "), "{answer}");
    shutdown.cancel();
}

#[test]
fn broken_json_is_a_bad_request() {
    let problem = decode_json::<Body>(br#"{"items":["#).unwrap_err();
    assert_eq!(problem.status, 400);
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
