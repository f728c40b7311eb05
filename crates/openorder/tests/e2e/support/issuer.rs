//! A fake OpenID Connect issuer on loopback: discovery document and JWKS served over HTTP,
//! tokens signed here with keys made at start (ES256 and RS256), as a real issuer would.

use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};

pub const AUDIENCE: &str = "openorder-api";

/// A signing key the issuer holds.
enum Key {
    Es(EcdsaKeyPair),
    Rs(RsaKeyPair),
}

/// The issuer's keys by key id.
type Keys = Arc<Mutex<Vec<(String, Arc<Key>)>>>;

pub struct Issuer {
    /// The issuer URL (its `iss`), also where discovery is served.
    pub url: String,
    keys: Keys,
    published: Arc<Mutex<Vec<Value>>>,
}

impl Issuer {
    /// Starts serving with one ES256 key (`es-1`) and one RS256 key (`rs-1`).
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let published: Arc<Mutex<Vec<Value>>> = Default::default();
        let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/keys")});
        let jwks = published.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let discovery = discovery.clone();
                    async move { axum::Json(discovery) }
                }),
            )
            .route(
                "/keys",
                axum::routing::get(move || {
                    let keys = jwks.lock().unwrap().clone();
                    async move { axum::Json(json!({ "keys": keys })) }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let issuer = Self {
            url,
            keys: Default::default(),
            published,
        };
        issuer.add_es_key("es-1");
        issuer.add_rs_key("rs-1");
        issuer
    }

    /// Makes a new ES256 key and publishes it (an issuer rotating keys).
    pub fn add_es_key(&self, kid: &str) {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = key.public_key().as_ref().to_vec();
        self.published.lock().unwrap().push(json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        }));
        self.keys
            .lock()
            .unwrap()
            .push((kid.to_string(), Arc::new(Key::Es(key))));
    }

    fn add_rs_key(&self, kid: &str) {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = key.public_key();
        self.published.lock().unwrap().push(json!({
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
            "e": B64.encode(public.exponent().big_endian_without_leading_zero()),
        }));
        self.keys
            .lock()
            .unwrap()
            .push((kid.to_string(), Arc::new(Key::Rs(key))));
    }

    /// Standard claims for `user`, valid for five minutes.
    pub fn claims(&self, user: i64) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": self.url, "aud": AUDIENCE, "sub": user.to_string(), "iat": now, "exp": now + 300})
    }

    /// A token for `user` signed with `es-1`.
    pub fn token(&self, user: i64) -> String {
        self.sign("es-1", &self.claims(user))
    }

    /// `claims` signed with the key `kid` (its algorithm in the header).
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let key = self
            .keys
            .lock()
            .unwrap()
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| key.clone())
            .expect("a key the issuer has");
        let alg = match *key {
            Key::Es(_) => "ES256",
            Key::Rs(_) => "RS256",
        };
        let input = format!(
            "{}.{}",
            B64.encode(json!({"alg": alg, "typ": "JWT", "kid": kid}).to_string()),
            B64.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let signature = match &*key {
            Key::Es(key) => key.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Key::Rs(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
                    .unwrap();
                signature
            }
        };
        format!("{input}.{}", B64.encode(signature))
    }

    /// A token with `header` as given and no valid signature (for `alg: none`, `HS256`).
    pub fn unsigned(header: &Value, claims: &Value, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string()),
            B64.encode(signature)
        )
    }
}
