//! Request framing (RFC 9112): `Host`, `Content-Length`, bare LF line ends.

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use super::*;

/// Sends `head` on a new connection and checks that it is refused at once (within 5 s),
/// `status` (`"400"`, …) with a problem of type `type_`.
async fn assert_refused_at_once(
    address: std::net::SocketAddr,
    head: &[u8],
    status: &str,
    type_: &str,
) {
    let sent = std::time::Instant::now();
    let answer = raw(address, head).await;
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        sent.elapsed()
    );
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status} ")),
        "{answer}"
    );
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert_eq!(problem_type(&answer), type_, "{answer}");
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
        crate::http::middleware::misframed(http_1_1, hosts.iter().copied(), no_length)
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
        assert_refused_at_once(address, head, "400", "/problems/malformed-head").await;
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
    assert_refused_at_once(address, large, "413", "/problems/body-too-large").await;
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
