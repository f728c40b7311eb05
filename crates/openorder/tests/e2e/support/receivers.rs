//! Real servers on loopback that stand in for the outside world notifications go to:
//! an SMTP server (aiosmtpd from PyPI, via `scripts/smtp_sink.py`), an HTTP webhook
//! receiver (axum) that records every request and answers as told, an SMS provider
//! with Twilio's Messages API (axum) that checks its credentials and form, and a Web Push
//! service (axum) that hands out subscriptions, checks each push's VAPID token and decrypts
//! it as the subscribing browser would. A module each: `smtp`, `webhook`, `sms`, `push`.

mod push;
mod sms;
mod smtp;
mod webhook;

use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;

// Not every test binary uses each of these.
#[allow(unused_imports)]
pub use push::{PushBehaviour, PushRequest, PushService};
#[allow(unused_imports)]
pub use sms::{twilio_signature, SmsBehaviour, SmsProvider, SmsRequest};
#[allow(unused_imports)]
pub use smtp::SmtpSink;
#[allow(unused_imports)]
pub use webhook::{signature_is_valid, Behaviour, Received, WebhookReceiver};

/// Serves `app` on a free loopback port (until the handle is aborted): the stand-ins'
/// server.
async fn serve_on_loopback(
    app: axum::Router,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (address, server)
}

/// Waits until at least `n` requests arrived in `received` (at most 60 s); returns all.
/// `what`: the stand-in's kind of request, for the failure message.
async fn wait_for<T: Clone>(received: &Mutex<Vec<T>>, n: usize, what: &str) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = received.lock().unwrap().clone();
        if found.len() >= n {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} {what} requests after 60 s, wanted {n}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The header `name` of a request a stand-in got, as text ("" if absent or not text).
fn header_of<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}
