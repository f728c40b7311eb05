//! Who is using the console, and forms that only the console's own pages can submit.
//!
//! Every browser gets a session (a random id in an `HttpOnly`, `SameSite=Strict` cookie,
//! `Secure` too when the console is reached over HTTPS: [`crate::transport::Client`]);
//! the session holds a CSRF token that every form carries and every POST must return, and,
//! once signed in, the operator's name and token (in memory only, never in the cookie), which
//! the console presents to the services for the operator's actions. When the console is
//! given operator tokens (as the services are, `--operator-tokens-file` /
//! `--operator-token-hash`; `openorder up` gives it its own), every page but the sign-in
//! page needs a signed-in session; without any, it is open, as the services are.
//!
//! Sessions live 12 hours and at most [`MAX_SESSIONS`] are kept (past that, the oldest one
//! not signed in goes first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

/// The session cookie's name.
pub const COOKIE: &str = "openorder-console";
/// How long a session lives.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept.
pub const MAX_SESSIONS: usize = 10_000;

#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub csrf: String,
    /// The signed-in operator's name and token.
    pub operator: Option<(String, String)>,
    created: Instant,
}

impl Session {
    pub fn token(&self) -> Option<&str> {
        self.operator.as_ref().map(|(_, t)| t.as_str())
    }
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

fn random() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Sessions {
    /// The session the request's cookie names, if it is alive.
    pub fn of(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let mut all = self.by_id.lock().expect("never poisoned");
        match all.get(&id) {
            Some(s) if s.created.elapsed() < LIFETIME => Some(s.clone()),
            Some(_) => {
                all.remove(&id);
                None
            }
            None => None,
        }
    }

    /// A new session (not signed in).
    pub fn open(&self) -> Session {
        let session = Session {
            id: random(),
            csrf: random(),
            operator: None,
            created: Instant::now(),
        };
        let mut all = self.by_id.lock().expect("never poisoned");
        if all.len() >= MAX_SESSIONS {
            // The oldest session nobody signed in to goes first, so that clients that never
            // keep a cookie cannot push an operator out.
            let oldest = all
                .values()
                .min_by_key(|s| (s.operator.is_some(), s.created))
                .map(|s| s.id.clone());
            if let Some(oldest) = oldest {
                all.remove(&oldest);
            }
        }
        all.insert(session.id.clone(), session.clone());
        session
    }

    /// A new session for the operator `name` with `token` (a new id: the one used before
    /// signing in is dropped, so a planted cookie gains nothing).
    pub fn sign_in(&self, old: Option<&Session>, name: String, token: String) -> Session {
        if let Some(old) = old {
            self.close(old);
        }
        let mut session = self.open();
        session.operator = Some((name, token));
        self.by_id
            .lock()
            .expect("never poisoned")
            .insert(session.id.clone(), session.clone());
        session
    }

    pub fn close(&self, session: &Session) {
        self.by_id
            .lock()
            .expect("never poisoned")
            .remove(&session.id);
    }
}

/// The `Set-Cookie` value that keeps `session`; `https`: the request came over HTTPS, and
/// the browser is to send the cookie over HTTPS only (`Secure`).
pub fn set_cookie(session: &Session, https: bool) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session.id,
        LIFETIME.as_secs(),
        secure(https)
    )
}

/// The `Set-Cookie` value that forgets the session (`Secure` as [`set_cookie`]).
pub fn clear_cookie(https: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(https)
    )
}

fn secure(https: bool) -> &'static str {
    if https {
        "; Secure"
    } else {
        ""
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A POST comes from the console's own page: the browser says so (`Sec-Fetch-Site`, or an
/// `Origin` naming the host it was sent to), when it says anything.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => {
            origin
                .split_once("://")
                .map(|(_, rest)| rest)
                .unwrap_or(origin)
                == host
        }
        (Some(_), None) => false,
        _ => true,
    }
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    #[test]
    fn a_session_is_found_by_its_cookie_and_signing_in_gives_it_a_new_id() {
        let sessions = Sessions::default();
        let s = sessions.open();
        let found = sessions
            .of(&headers(&[("cookie", &format!("a=b; {COOKIE}={}", s.id))]))
            .unwrap();
        assert_eq!(found.csrf, s.csrf);
        let signed = sessions.sign_in(Some(&s), "ops".into(), "tok".into());
        assert_ne!(signed.id, s.id);
        assert!(sessions
            .of(&headers(&[("cookie", &format!("{COOKIE}={}", s.id))]))
            .is_none());
        assert_eq!(signed.token(), Some("tok"));
    }

    #[test]
    fn clients_that_keep_no_cookie_cannot_push_a_signed_in_operator_out() {
        let sessions = Sessions::default();
        let signed = sessions.sign_in(None, "ops".into(), "tok".into());
        for _ in 0..MAX_SESSIONS + 10 {
            sessions.open();
        }
        let cookie = headers(&[("cookie", &format!("{COOKIE}={}", signed.id))]);
        assert!(sessions.of(&cookie).is_some());
        assert_eq!(sessions.by_id.lock().unwrap().len(), MAX_SESSIONS);
    }

    /// The attributes of a `Set-Cookie` value, lower-cased, without the name and value.
    fn attributes(set_cookie: &str) -> Vec<String> {
        set_cookie
            .split(';')
            .skip(1)
            .map(|a| a.trim().to_ascii_lowercase())
            .collect()
    }

    #[test]
    fn the_session_cookie_is_secure_over_https_and_always_http_only_and_same_site_strict() {
        use crate::transport::Client;
        let session = Sessions::default().open();
        let peer = Some("10.0.0.5:41000".parse().unwrap());
        let proxied = headers(&[("x-forwarded-proto", "https")]);
        let cases = [
            // (how it was reached, Secure)
            (Client::of(peer, &HeaderMap::new(), false, false), false),
            (Client::of(peer, &HeaderMap::new(), true, false), true),
            (Client::of(peer, &proxied, false, false), false),
            (Client::of(peer, &proxied, false, true), true),
            (
                Client::of(
                    peer,
                    &headers(&[("x-forwarded-proto", "http")]),
                    false,
                    true,
                ),
                false,
            ),
        ];
        for (i, (client, secure)) in cases.into_iter().enumerate() {
            for cookie in [
                set_cookie(&session, client.https),
                clear_cookie(client.https),
            ] {
                let found = attributes(&cookie);
                assert!(found.contains(&"httponly".to_string()), "{i}: {cookie}");
                assert!(
                    found.contains(&"samesite=strict".to_string()),
                    "{i}: {cookie}"
                );
                assert_eq!(
                    found.contains(&"secure".to_string()),
                    secure,
                    "{i}: {cookie}"
                );
            }
        }
        assert!(set_cookie(&session, true).starts_with(&format!("{COOKIE}={};", session.id)));
    }

    #[test]
    fn a_post_from_another_site_is_told_apart_from_one_of_the_console() {
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:8081"),
            ("host", "127.0.0.1:8081")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8081")
        ])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(same_origin(&headers(&[])), "curl says nothing");
    }
}
