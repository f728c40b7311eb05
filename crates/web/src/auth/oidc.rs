//! Customers' bearer tokens: JWTs from an OpenID Connect issuer, checked against the
//! issuer's published keys (JWKS). Accepted: RS256/384/512, PS256/384/512, ES256/384, with
//! the configured issuer (`iss`) and audience (`aud`), unexpired (`exp` required; 30 s of
//! clock skew allowed). Symmetric (`HS*`) and `none` are refused: only the issuer can sign.
//!
//! Keys are fetched from `--oidc-jwks-url`, or from the `jwks_uri` of the issuer's
//! `/.well-known/openid-configuration`, kept for [`KEYS_FRESH_FOR`], and fetched again
//! sooner when a token names a key id not seen yet (an issuer rotating keys), at most once
//! per [`REFETCH_AT_MOST_EVERY`] so that forged key ids cannot make the service hammer the
//! issuer. A fetch takes at most [`FETCH_TIMEOUT`]; while the issuer is unreachable, the
//! keys fetched last still count.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::Mutex;
use tokio::time::Instant;

pub const KEYS_FRESH_FOR: Duration = Duration::from_secs(600);
pub const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(10);
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS or discovery document read.
const MAX_DOCUMENT: usize = 256 * 1024;

const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// How customers' tokens are checked.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    pub issuer: String,
    pub audience: String,
    /// None: discovered from the issuer.
    pub jwks_url: Option<String>,
    /// The claim holding the user id (a positive integer, or a string of one).
    pub user_claim: String,
}

/// Why a customer token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a valid token (malformed, bad signature, expired, wrong issuer or audience,
    /// unknown key, refused algorithm): 401.
    Invalid(String),
    /// A valid token without a usable user id: 403.
    NoUser(String),
}

struct Keys {
    by_id: HashMap<String, DecodingKey>,
    fetched: Option<Instant>,
    tried: Option<Instant>,
}

/// The issuer's keys, shared by every request of a service.
#[derive(Clone)]
pub struct Oidc {
    settings: Arc<OidcSettings>,
    http: reqwest::Client,
    keys: Arc<std::sync::RwLock<Arc<HashMap<String, DecodingKey>>>>,
    state: Arc<Mutex<Keys>>,
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !settings.audience.is_empty(),
            "--oidc-audience is required with --oidc-issuer (the audience tokens must be issued for)"
        );
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()?;
        Ok(Self {
            settings: Arc::new(settings),
            http,
            keys: Default::default(),
            state: Arc::new(Mutex::new(Keys {
                by_id: HashMap::new(),
                fetched: None,
                tried: None,
            })),
        })
    }

    /// Fetches the keys once at start-up; an issuer that does not answer is logged, not
    /// fatal (tokens are refused until it does).
    pub async fn warm_up(&self) {
        if let Err(err) = self.refresh(true).await {
            tracing::warn!(
                issuer = %self.settings.issuer,
                error = format!("{err:#}"),
                "could not fetch the issuer's keys; customer tokens are refused until they can be fetched"
            );
        }
    }

    /// The user id the token is for.
    pub async fn user_of(&self, token: &str) -> Result<i64, Refusal> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Refusal::Invalid(format!("not a JWT: {e}")))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(Refusal::Invalid(format!(
                "algorithm {:?} is not accepted (use RS256, PS256 or ES256)",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| Refusal::Invalid("the token names no key id (kid)".into()))?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                let _ = self.refresh(false).await;
                self.key(&kid).ok_or_else(|| {
                    Refusal::Invalid(format!("key id {kid:?} is not one of the issuer's keys"))
                })?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| Refusal::Invalid(describe(&e)))?
        .claims;
        let claim = &self.settings.user_claim;
        let user = match claims.get(claim) {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.parse::<i64>().ok(),
            _ => None,
        };
        user.filter(|id| *id > 0).ok_or_else(|| {
            Refusal::NoUser(format!(
                "the token's claim {claim:?} is not a user id (a positive integer)"
            ))
        })
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        keys.get(kid).cloned()
    }

    /// Fetches the keys again, unless they were tried within [`REFETCH_AT_MOST_EVERY`]
    /// (and, when `only_if_stale`, unless they are fresh).
    async fn refresh(&self, only_if_stale: bool) -> anyhow::Result<()> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if state.tried.is_some_and(|t| now - t < REFETCH_AT_MOST_EVERY) {
            return Ok(());
        }
        if only_if_stale && state.fetched.is_some_and(|t| now - t < KEYS_FRESH_FOR) {
            return Ok(());
        }
        state.tried = Some(now);
        let fetched = self.fetch_keys().await?;
        tracing::info!(issuer = %self.settings.issuer, keys = fetched.len(), "issuer keys fetched");
        state.by_id = fetched;
        state.fetched = Some(now);
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(state.by_id.clone());
        Ok(())
    }

    /// Keeps the keys fresh every [`KEYS_FRESH_FOR`] until `stop`.
    pub fn spawn_refresh(&self, stop: tokio_util::sync::CancellationToken) {
        let oidc = self.clone();
        tokio::spawn(async move {
            oidc.warm_up().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(KEYS_FRESH_FOR) => {}
                }
                oidc.warm_up().await;
            }
        });
    }

    async fn fetch_keys(&self) -> anyhow::Result<HashMap<String, DecodingKey>> {
        let url = match &self.settings.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    self.settings.issuer.trim_end_matches('/')
                );
                let document: serde_json::Value = self.get_json(&discovery).await?;
                document
                    .get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| anyhow::anyhow!("{discovery} names no jwks_uri"))?
                    .to_string()
            }
        };
        let set: JwkSet = self.get_json(&url).await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = &jwk.common.key_id else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid.clone(), key);
                }
                Err(err) => tracing::warn!(kid, %err, "an issuer key is not usable; skipped"),
            }
        }
        Ok(keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> anyhow::Result<T> {
        use anyhow::Context;
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?
            .error_for_status()
            .with_context(|| format!("GET {url}"))?;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("GET {url}"))?
        {
            body.extend_from_slice(&chunk);
            anyhow::ensure!(
                body.len() <= MAX_DOCUMENT,
                "{url} answered more than {MAX_DOCUMENT} bytes"
            );
        }
        serde_json::from_slice(&body)
            .with_context(|| format!("{url} did not answer the expected JSON"))
    }
}

fn describe(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the token is from another issuer".into(),
        ErrorKind::InvalidAudience => "the token is for another audience".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim:?} claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        other => format!("the token is not valid: {other:?}"),
    }
}
