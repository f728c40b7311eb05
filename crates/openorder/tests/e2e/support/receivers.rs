//! Real servers on loopback that stand in for the outside world notifications go to:
//! an SMTP server (aiosmtpd from PyPI, via `scripts/smtp_sink.py`), an HTTP webhook
//! receiver (axum) that records every request and answers as told, an SMS provider
//! with Twilio's Messages API (axum) that checks its credentials and form, and a Web Push
//! service (axum) that hands out subscriptions, checks each push's VAPID token and decrypts
//! it as the subscribing browser would.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde_json::Value;

/// The Python that has aiosmtpd: `OPENORDER_TEST_SMTP_PYTHON`, or the one `scripts/smtp.sh
/// setup` prepares (run here if needed, so `cargo test` alone works on a machine with PyPI).
fn smtp_python() -> String {
    if let Ok(python) = std::env::var("OPENORDER_TEST_SMTP_PYTHON") {
        if !python.is_empty() {
            return python;
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/smtp.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("setup")
        .output()
        .expect("scripts/smtp.sh runs");
    assert!(
        out.status.success(),
        "scripts/smtp.sh setup failed (it installs aiosmtpd from PyPI): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A running SMTP server that keeps every message it accepts.
pub struct SmtpSink {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl SmtpSink {
    /// Starts the server; it refuses the first `fail_first` messages with a 451.
    pub fn start(fail_first: usize) -> Self {
        let port = super::free_port();
        let dir = super::temp_dir("smtp");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/smtp_sink.py");
        let mut child = Command::new(smtp_python())
            .arg(script)
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(&dir)
            .args(["--fail-first", &fail_first.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the SMTP sink starts");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(
            line.trim(),
            format!("ready {port}"),
            "SMTP sink did not start"
        );
        Self { port, dir, child }
    }

    /// Every message accepted so far, in order: envelope, headers and decoded parts.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits until at least `n` messages arrived (at most 60 s); returns all.
    pub async fn wait_messages(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.messages();
            if found.len() >= n {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} e-mails after 60 s, wanted {n}",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// One request the webhook receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
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
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
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

/// Base64url without padding, as Web Push writes keys and JWTs.
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// One push the push service got, as it checked it.
#[derive(Clone, Debug)]
pub struct PushRequest {
    pub path: String,
    pub headers: HeaderMap,
    /// The VAPID token's claims if it verified — ES256 by the key in `k=`, that key the one
    /// the subscription was made with, `aud` this service's origin, `exp` ahead and at most
    /// 24 hours away, `sub` present — or why not.
    pub vapid: Result<Value, String>,
    /// The notice: the body decrypted (aes128gcm) with the subscriber's private key and
    /// authentication secret, as JSON; or why it could not be.
    pub notice: Result<Value, String>,
    pub at: std::time::Instant,
}

impl PushRequest {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// How the push service answers a push whose token verifies (one that does not is
/// answered 401, as push services do; one to a path it never handed out, 404).
#[derive(Clone, Copy, Debug)]
pub enum PushBehaviour {
    /// 201 Created, with the message's URL in `Location`.
    Accept,
    /// 410 Gone: the browser unsubscribed.
    Gone,
    /// 404 Not Found: the subscription expired.
    NotFound,
    /// 429 with `Retry-After: 1` to the first `n` pushes, then as `Accept`.
    TooManyFirst(usize),
}

/// A browser's side of one subscription: its key pair and authentication secret, and the
/// application server key it subscribed with.
struct BrowserKeys {
    secret: p256::SecretKey,
    auth: [u8; 16],
    application_server_key: String,
}

/// A Web Push service on loopback (RFC 8030's push resource, plain HTTP): hands out
/// subscriptions ([`PushService::subscribe`]) and records every push, checked and
/// decrypted.
pub struct PushService {
    /// `http://127.0.0.1:<port>`: the origin its endpoints are on (the token's `aud`).
    pub origin: String,
    pub received: Arc<Mutex<Vec<PushRequest>>>,
    browsers: Arc<Mutex<HashMap<String, BrowserKeys>>>,
    server: tokio::task::JoinHandle<()>,
}

impl PushService {
    pub async fn start(behaviour: PushBehaviour) -> Self {
        use axum::response::IntoResponse;
        let received: Arc<Mutex<Vec<PushRequest>>> = Arc::default();
        let browsers: Arc<Mutex<HashMap<String, BrowserKeys>>> = Arc::default();
        let origin: Arc<std::sync::OnceLock<String>> = Arc::default();
        let (log, keys, own) = (received.clone(), browsers.clone(), origin.clone());
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let (log, keys, own) = (log.clone(), keys.clone(), own.clone());
                async move {
                    let origin = own.get().cloned().unwrap_or_default();
                    let path = uri.path().to_string();
                    let (vapid, notice) = {
                        let keys = keys.lock().unwrap();
                        let Some(browser) = keys.get(&path) else {
                            return StatusCode::NOT_FOUND.into_response();
                        };
                        let authorization = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        let encoding = headers
                            .get("content-encoding")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        (
                            vapid_claims(authorization, &origin, &browser.application_server_key),
                            decrypted(encoding, &body, browser),
                        )
                    };
                    let verified = vapid.is_ok();
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(PushRequest {
                            path,
                            headers,
                            vapid,
                            notice,
                            at: std::time::Instant::now(),
                        });
                        log.len()
                    };
                    if !verified {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    match behaviour {
                        PushBehaviour::Gone => StatusCode::GONE.into_response(),
                        PushBehaviour::NotFound => StatusCode::NOT_FOUND.into_response(),
                        PushBehaviour::TooManyFirst(k) if n <= k => (
                            StatusCode::TOO_MANY_REQUESTS,
                            [(axum::http::header::RETRY_AFTER, "1")],
                        )
                            .into_response(),
                        _ => (
                            StatusCode::CREATED,
                            [(
                                axum::http::header::LOCATION,
                                format!("{origin}/message/{n}"),
                            )],
                        )
                            .into_response(),
                    }
                }
            },
        );
        let (address, server) = serve_on_loopback(app).await;
        let base = format!("http://{address}");
        origin.set(base.clone()).expect("set once");
        Self {
            origin: base,
            received,
            browsers,
            server,
        }
    }

    /// A new subscription, as a browser makes one with `application_server_key` (the
    /// service's VAPID public key): its key pair and secret are made and kept here; returns
    /// what `PushSubscription.toJSON()` gives.
    pub fn subscribe(&self, application_server_key: &str) -> Value {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let secret = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
                break secret;
            }
        };
        let auth: [u8; 16] = rand::random();
        let p256dh = B64.encode(secret.public_key().to_encoded_point(false).as_bytes());
        let mut browsers = self.browsers.lock().unwrap();
        let path = format!(
            "/wpush/v2/{}-{}",
            browsers.len() + 1,
            uuid::Uuid::new_v4().simple()
        );
        let subscription = serde_json::json!({
            "endpoint": format!("{}{path}", self.origin),
            "expirationTime": null,
            "keys": {"p256dh": p256dh, "auth": B64.encode(auth)},
        });
        browsers.insert(
            path,
            BrowserKeys {
                secret,
                auth,
                application_server_key: application_server_key.to_string(),
            },
        );
        subscription
    }

    pub fn requests(&self) -> Vec<PushRequest> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` pushes arrived (at most 60 s); returns all.
    pub async fn wait_requests(&self, n: usize) -> Vec<PushRequest> {
        wait_for(&self.received, n, "push").await
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The claims of the VAPID token in `authorization` (`vapid t=<JWT>, k=<key>`), checked as
/// a push service checks them (see [`PushRequest::vapid`]), with jsonwebtoken (aws-lc-rs),
/// not the service's own code.
fn vapid_claims(authorization: &str, origin: &str, subscribed_with: &str) -> Result<Value, String> {
    let rest = authorization
        .strip_prefix("vapid ")
        .ok_or("the Authorization scheme is not vapid")?;
    let (mut token, mut key) = (None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(t) = part.strip_prefix("t=") {
            token = Some(t);
        } else if let Some(k) = part.strip_prefix("k=") {
            key = Some(k);
        }
    }
    let token = token.ok_or("no t= (token)")?;
    let key = key.ok_or("no k= (public key)")?;
    if key != subscribed_with {
        return Err("k= is not the key the subscription was made with".into());
    }
    let point = B64
        .decode(key)
        .map_err(|e| format!("k= is not base64url: {e}"))?;
    if point.len() != 65 || point[0] != 0x04 {
        return Err("k= is not an uncompressed P-256 point".into());
    }
    let decoding = jsonwebtoken::DecodingKey::from_ec_components(
        &B64.encode(&point[1..33]),
        &B64.encode(&point[33..65]),
    )
    .map_err(|e| format!("k= is no EC key: {e}"))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[origin]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .map_err(|e| format!("the token does not verify: {e}"))?;
    let exp = data.claims["exp"].as_i64().ok_or("exp is not a number")?;
    if exp > chrono::Utc::now().timestamp() + 24 * 60 * 60 {
        return Err(format!("exp {exp} is more than 24 hours away (RFC 8292)"));
    }
    Ok(data.claims)
}

/// The notice in a push body, decrypted as `browser`.
fn decrypted(encoding: &str, body: &[u8], browser: &BrowserKeys) -> Result<Value, String> {
    if encoding != "aes128gcm" {
        return Err(format!("Content-Encoding is {encoding:?}, not aes128gcm"));
    }
    let auth = web_push_native::Auth::clone_from_slice(&browser.auth);
    let plain = web_push_native::decrypt(body.to_vec(), &browser.secret, &auth)
        .map_err(|e| format!("the body does not decrypt with the subscriber's keys: {e}"))?;
    serde_json::from_slice(&plain).map_err(|e| format!("the plaintext is not JSON: {e}"))
}
