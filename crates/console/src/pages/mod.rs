//! The console's pages, rendered on the server: one module per page, each with its
//! handlers. Every value from a record, a service or a request goes through `maud`, which
//! escapes it; nothing is marked pre-escaped but the console's own markup (and the
//! lifecycle's picture, made from the table's constants with its text escaped).

pub mod assets;
pub mod chart;
pub mod dead_letters;
pub mod orders;
pub mod overview;
pub mod sign_in;
pub mod stock;
pub mod stuck;
pub mod topics;
pub mod try_it;

use maud::{html, Markup, DOCTYPE};

use crate::session::Session;

pub use console_data::age;

/// The sections of the navigation bar: path and label.
const SECTIONS: [(&str, &str); 7] = [
    ("/", "Overview"),
    ("/topics", "Topics"),
    ("/orders", "Orders"),
    ("/stuck", "Stuck orders"),
    ("/dead-letters", "Dead letters"),
    ("/stock", "Stock"),
    ("/try", "Try it"),
];

/// A whole page: navigation (`active` marks the section), who is signed in, `body`.
pub fn page(title: &str, active: &str, session: &Session, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · OpenOrder console" }
                link rel="stylesheet" href="/console.css";
                script src="/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "OpenOrder" }
                    nav {
                        @for (path, label) in SECTIONS {
                            a href=(path) class=[(path == active).then_some("active")] { (label) }
                        }
                    }
                    @if let Some((name, _)) = &session.operator {
                        form.signout method="post" action="/sign-out" {
                            (csrf(session))
                            span { "signed in as " b { (name) } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The hidden field every form carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// An error or notice box.
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { p class=(format!("notice {kind}")) role="status" { (text) } }
}

/// `ms` since the epoch as UTC, to the millisecond.
pub fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Percent-encodes `text` for a query value or a path segment.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The link to a record in the topic browser.
pub fn record_link(topic: &str, partition: i32, offset: i64) -> String {
    format!(
        "/topics/{}?partition={partition}&offset={offset}&limit=1",
        encode(topic)
    )
}

/// A table of `(label, value)` rows.
pub fn facts(rows: &[(&str, String)]) -> Markup {
    html! {
        table.facts { @for (k, v) in rows { tr { th { (k) } td { (v) } } } }
    }
}

/// A field of a service's JSON answer as text (empty when missing or null).
pub fn field(v: &serde_json::Value, key: &str) -> String {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Checks the form's CSRF field against the session's.
pub fn csrf_ok(session: &Session, field: &str) -> bool {
    crate::session::same_secret(&session.csrf, field)
}

/// The answer to a form whose CSRF field is wrong.
pub fn csrf_refused() -> axum::response::Response {
    use axum::response::IntoResponse;
    platform::http::Problem::new(
        axum::http::StatusCode::FORBIDDEN,
        "csrf-token-mismatch",
        "Form expired",
        "the form's token does not match this session: reload the page and send it again",
    )
    .into_response()
}
