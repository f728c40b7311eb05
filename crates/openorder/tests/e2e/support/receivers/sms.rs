//! An SMS provider on loopback (axum) with Twilio's Messages API, which checks its
//! credentials and form and records every message, and the `X-Twilio-Signature` of its
//! status callbacks.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;

use super::{header_of, serve_on_loopback, wait_for};

/// One message the SMS provider got.
#[derive(Clone, Debug)]
pub struct SmsRequest {
    pub path: String,
    pub headers: HeaderMap,
    pub form: Vec<(String, String)>,
    /// Whether HTTP basic authentication named [`SmsProvider::ACCOUNT`] and
    /// [`SmsProvider::TOKEN`].
    pub authorized: bool,
    pub at: std::time::Instant,
}

impl SmsRequest {
    pub fn header(&self, name: &str) -> &str {
        header_of(&self.headers, name)
    }

    /// The form field `name` ("" if absent).
    pub fn field(&self, name: &str) -> &str {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    pub fn has_field(&self, name: &str) -> bool {
        self.form.iter().any(|(k, _)| k == name)
    }
}

/// How the SMS provider answers.
#[derive(Clone, Copy, Debug)]
pub enum SmsBehaviour {
    /// 201 `{"sid": "SM…", "status": "queued"}` (the same sid again for a request with an
    /// idempotency token it has seen).
    Accept,
    /// 429 with `Retry-After: 1` to the first `n` requests, then as `Accept`.
    TooManyFirst(usize),
    /// 400 `{"code": 21211, …}`: the `To` number is not valid.
    InvalidNumber,
}

/// An HTTP server on loopback with the Messages API of Twilio:
/// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, basic authentication, a form of
/// `To`, `From`, `Body` (and `StatusCallback`). Records every request.
pub struct SmsProvider {
    /// What `--sms-base-url` is set to.
    pub base_url: String,
    pub received: Arc<Mutex<Vec<SmsRequest>>>,
    server: tokio::task::JoinHandle<()>,
}

impl SmsProvider {
    pub const ACCOUNT: &'static str = "AC0123456789abcdef0123456789abcdef";
    pub const TOKEN: &'static str = "sms-auth-token-of-the-tests";

    pub async fn start(behaviour: SmsBehaviour) -> Self {
        use axum::response::IntoResponse;
        let received: Arc<Mutex<Vec<SmsRequest>>> = Arc::default();
        let log = received.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let log = log.clone();
                async move {
                    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
                    let expected = format!("/2010-04-01/Accounts/{}/Messages.json", Self::ACCOUNT);
                    let credentials = base64::engine::general_purpose::STANDARD
                        .encode(format!("{}:{}", Self::ACCOUNT, Self::TOKEN));
                    let authorized = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        == Some(format!("Basic {credentials}").as_str());
                    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
                        .into_owned()
                        .collect();
                    let request = SmsRequest {
                        path: uri.path().to_string(),
                        headers,
                        form,
                        authorized,
                        at: std::time::Instant::now(),
                    };
                    let (n, sid) = {
                        let mut log = log.lock().unwrap();
                        let token = request.header("i-twilio-idempotency-token").to_string();
                        // A token seen before gets its message id again.
                        let seen = log
                            .iter()
                            .position(|r| r.header("i-twilio-idempotency-token") == token);
                        let sid = format!("SM{:032x}", seen.unwrap_or(log.len()) + 1);
                        log.push(request.clone());
                        (log.len(), sid)
                    };
                    if request.path != expected {
                        return (StatusCode::NOT_FOUND, json, r#"{"code":20404,"message":"not found"}"#)
                            .into_response();
                    }
                    if !request.authorized {
                        return (StatusCode::UNAUTHORIZED, json, r#"{"code":20003,"message":"Authenticate"}"#)
                            .into_response();
                    }
                    if !["To", "From", "Body"].iter().all(|f| request.has_field(f)) {
                        return (StatusCode::BAD_REQUEST, json, r#"{"code":21604,"message":"A 'To', 'From' and 'Body' are required."}"#)
                            .into_response();
                    }
                    match behaviour {
                        SmsBehaviour::TooManyFirst(k) if n <= k => (
                            StatusCode::TOO_MANY_REQUESTS,
                            [
                                (axum::http::header::CONTENT_TYPE, "application/json"),
                                (axum::http::header::RETRY_AFTER, "1"),
                            ],
                            r#"{"code":20429,"message":"Too Many Requests"}"#,
                        )
                            .into_response(),
                        SmsBehaviour::InvalidNumber => (
                            StatusCode::BAD_REQUEST,
                            json,
                            r#"{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}"#,
                        )
                            .into_response(),
                        _ => (
                            StatusCode::CREATED,
                            json,
                            serde_json::json!({"sid": sid, "status": "queued"}).to_string(),
                        )
                            .into_response(),
                    }
                }
            },
        );
        let (address, server) = serve_on_loopback(app).await;
        let base_url = format!("http://{address}");
        Self {
            base_url,
            received,
            server,
        }
    }

    pub fn requests(&self) -> Vec<SmsRequest> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (at most 60 s); returns all.
    pub async fn wait_requests(&self, n: usize) -> Vec<SmsRequest> {
        wait_for(&self.received, n, "SMS").await
    }
}

impl Drop for SmsProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `X-Twilio-Signature` as the provider computes it, with an HMAC of our own: base64 of
/// HMAC-SHA1 keyed with the auth token, over the URL it calls and then each form field's
/// name and value, sorted by name.
pub fn twilio_signature(token: &str, url: &str, form: &[(&str, &str)]) -> String {
    use hmac::Mac;
    let mut sorted = form.to_vec();
    sorted.sort();
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}
