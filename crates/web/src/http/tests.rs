//! Tests of the HTTP pieces, one file a topic; here what they share: a JSON body type, a
//! server on a loopback port, and raw requests sent to it.

mod framing;
mod json_bodies;
mod limits_and_timing;
mod serving;

use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;

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
