//! The console through its router, on both brokers: its JSON endpoints and pages on a real
//! stack (topics, a page of records filtered by key, an order's timeline, the lifecycle's
//! picture, dead letters decoded and replayed from the page, the overview), escaping of
//! untrusted record values, CSRF and cross-site refusals, and sign-in when operators are
//! configured (limited per client address); orders counted by state and the stuck ones
//! listed (order-service's counts on SQLite and PostgreSQL), and a user's notification
//! preferences beside their notifications.
//!
//! A module per part: [`flow`] (the flow and dead letters, on both brokers), [`sign_in`]
//! and [`orders`] (counts, stuck orders, preferences). Their browser of the console's router
//! is here.

mod flow;
mod orders;
mod sign_in;

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::Stack;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

/// A browser of the console's router: keeps its session cookie. With a `peer`, its
/// requests come from that address (as the console's accept loop marks them).
struct Browser {
    router: axum::Router,
    cookie: Option<String>,
    peer: Option<SocketAddr>,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    retry_after: Option<String>,
    content_type: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("a form with a CSRF field: {}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    /// Asserts that the body holds `text` (the body shown if not).
    #[track_caller]
    fn assert_shows(&self, text: &str) {
        assert!(self.body.contains(text), "{}", self.body);
    }

    /// Asserts that the body does not hold `text` (the body shown if it does).
    #[track_caller]
    fn assert_lacks(&self, text: &str) {
        assert!(!self.body.contains(text), "{}", self.body);
    }

    /// Asserts that the body holds `text`; `why` says what that shows, should it not.
    #[track_caller]
    fn assert_shows_with(&self, text: &str, why: &str) {
        assert!(self.body.contains(text), "{why}: {}", self.body);
    }

    /// Asserts that the body does not hold `text`; `why` says what that shows, should it.
    #[track_caller]
    fn assert_lacks_with(&self, text: &str, why: &str) {
        assert!(!self.body.contains(text), "{why}: {}", self.body);
    }
}

impl Browser {
    async fn new(stack: &Stack, hashes: Vec<platform::auth::operators::Entry>) -> Self {
        let args = console::ConsoleArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            order_url: stack.order_url.clone(),
            inventory_url: stack.inventory_url.clone(),
            notification_url: stack.notification_url.clone(),
            operator_tokens_file: None,
            operator_token_hashes: hashes,
            transport: Default::default(),
            // Often, so that the overview's charts have lines soon.
            history: console::history::HistoryArgs {
                console_history_every: Duration::from_millis(500),
            },
            kafka: stack.kafka.broker.clone(),
        };
        let console = console::Console::new(&args).await.unwrap();
        // Without `console::serve`, the charts' sampler is started here; it stops with the
        // console (it holds it weakly).
        console::history::spawn(&console, platform::CancellationToken::new());
        Self {
            router: console::router(console),
            cookie: None,
            peer: None,
        }
    }

    async fn send(&mut self, mut request: Request<Body>) -> Answer {
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        let text = |name: header::HeaderName| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let set_cookie = text(header::SET_COOKIE);
        if let Some(c) = &set_cookie {
            self.cookie = Some(c.split(';').next().unwrap().to_string());
        }
        let status = response.status();
        let location = text(header::LOCATION);
        let retry_after = text(header::RETRY_AFTER);
        let content_type = text(header::CONTENT_TYPE);
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .unwrap();
        Answer {
            status,
            location,
            retry_after,
            content_type,
            set_cookie,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let mut request = Request::get(path);
        if let Some(c) = &self.cookie {
            request = request.header(header::COOKIE, c);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Answer {
        let body: String = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    console::pages::encode(k),
                    console::pages::encode(v)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let mut request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "console.test");
        if let Some(c) = &self.cookie {
            request = request.header(header::COOKIE, c);
        }
        if let Some(o) = origin {
            request = request.header(header::ORIGIN, o);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    /// GETs `path` until `done` holds of its JSON (at most 60 s).
    async fn wait_json(&mut self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self.get(path).await;
            assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
            let v = answer.json();
            if done(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never became what was waited for: {v}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn titles(timeline: &Value) -> Vec<String> {
    timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap().to_string())
        .collect()
}
