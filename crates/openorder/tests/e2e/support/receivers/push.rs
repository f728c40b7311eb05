//! A Web Push service on loopback (axum) that hands out subscriptions as a browser makes
//! them, checks each push's VAPID token and decrypts it as the subscribing browser would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde_json::Value;

use super::{header_of, serve_on_loopback, wait_for};

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
        header_of(&self.headers, name)
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
