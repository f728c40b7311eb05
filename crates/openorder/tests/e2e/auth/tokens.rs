//! Customers' tokens the issuer did not make, or that do not fit (expired, another issuer
//! or audience, no expiry, unsigned or forged, not a JWT), are refused; RS256 works as
//! ES256 does; a key the issuer rotates in is fetched again.

use std::time::Duration;

use super::{Locked, ALICE};
use crate::support::issuer::Issuer;
use serde_json::{json, Value};

pub(super) async fn tokens_the_issuer_did_not_make_or_that_do_not_fit_are_refused(l: &Locked) {
    let orders = format!("{}?userId={ALICE}", l.orders());
    let claims = l.issuer.claims(ALICE);
    let with = |change: Value| {
        let mut claims = claims.clone();
        for (k, v) in change.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let now = chrono::Utc::now().timestamp();
    let refused = [
        (
            "expired",
            l.issuer.sign("es-1", &with(json!({"exp": now - 120}))),
        ),
        (
            "another issuer",
            l.issuer
                .sign("es-1", &with(json!({"iss": "https://evil.example"}))),
        ),
        (
            "another audience",
            l.issuer.sign("es-1", &with(json!({"aud": "someone-else"}))),
        ),
        (
            "no expiry",
            l.issuer.sign("es-1", &{
                let mut c = claims.clone();
                c.as_object_mut().unwrap().remove("exp");
                c
            }),
        ),
        (
            "alg none",
            Issuer::unsigned(&json!({"alg": "none", "kid": "es-1"}), &claims, b""),
        ),
        (
            "HS256",
            Issuer::unsigned(&json!({"alg": "HS256", "kid": "es-1"}), &claims, b"forged"),
        ),
        (
            "an unknown key id",
            Issuer::unsigned(&json!({"alg": "ES256", "kid": "nope"}), &claims, &[0; 64]),
        ),
        (
            "a forged signature",
            Issuer::unsigned(&json!({"alg": "ES256", "kid": "es-1"}), &claims, &[1; 64]),
        ),
        ("not a JWT", "hello".to_string()),
    ];
    for (what, token) in refused {
        let (status, problem) = l.get(&orders, &token).await;
        assert_eq!(status, 401, "{what}: {problem}");
        assert_eq!(problem["type"], "/problems/unauthorized", "{what}");
    }
    // RS256 works as ES256 does; a valid token without a user id is 403.
    let (status, _) = l.get(&orders, &l.issuer.sign("rs-1", &claims)).await;
    assert_eq!(status, 200);
    let (status, problem) = l
        .get(
            &orders,
            &l.issuer.sign("es-1", &with(json!({"sub": "alice"}))),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    // The issuer rotates in a new key: its tokens are accepted once its keys are fetched again.
    l.issuer.add_es_key("es-2");
    let token = l.issuer.sign("es-2", &claims);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = l.get(&orders, &token).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a rotated-in key was not fetched: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
