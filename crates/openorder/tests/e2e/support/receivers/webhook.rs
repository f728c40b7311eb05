//! An HTTP webhook receiver on loopback (axum) that records every request and answers as
//! told, and a check of the Standard Webhooks signature as a receiver makes it.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde_json::Value;

use super::{header_of, serve_on_loopback, wait_for};

/// One request the webhook receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        header_of(&self.headers, name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// How the receiver answers.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// 503 to the first `n` requests, then 204.
    FailFirst(usize),
    /// 503 to every request.
    AlwaysFail,
    /// 410 Gone to every request (a permanent refusal).
    Gone,
    /// Never answers the first request (a sender stuck mid-send), then 204.
    HangFirst,
}

/// An HTTP server on loopback recording every webhook request.
pub struct WebhookReceiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start(behaviour: Behaviour) -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let log = log.clone();
                async move {
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(Received {
                            path: uri.path().to_string(),
                            headers,
                            body: body.to_vec(),
                        });
                        log.len()
                    };
                    match behaviour {
                        Behaviour::FailFirst(k) if n <= k => StatusCode::SERVICE_UNAVAILABLE,
                        Behaviour::AlwaysFail => StatusCode::SERVICE_UNAVAILABLE,
                        Behaviour::Gone => StatusCode::GONE,
                        Behaviour::HangFirst if n == 1 => {
                            std::future::pending::<()>().await;
                            unreachable!()
                        }
                        _ => StatusCode::NO_CONTENT,
                    }
                }
            },
        );
        let (address, server) = serve_on_loopback(app).await;
        let url = format!("http://{address}/hooks/openorder");
        Self {
            url,
            received,
            server,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (at most 60 s); returns all.
    pub async fn wait_requests(&self, n: usize) -> Vec<Received> {
        wait_for(&self.received, n, "webhook").await
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Checks a Standard Webhooks signature as a receiver would, with its own HMAC: the
/// signed content is `{webhook-id}.{webhook-timestamp}.{body}`.
pub fn signature_is_valid(secret: &[u8], request: &Received) -> bool {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(request.header("webhook-id").as_bytes());
    mac.update(b".");
    mac.update(request.header("webhook-timestamp").as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    request
        .header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}
