//! Serving: the header read timeout, heads too large for hyper, CORS preflights.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;

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
