//! `/sign-in` and `/sign-out`: an operator signs in with an operator token (one the
//! console's token hashes accept, as the services' do); the console keeps it in the session
//! and presents it to the services for the operator's actions.
//!
//! The page names no file or directory (it is shown to anyone who reaches the console), and
//! a client that sent too many wrong tokens is refused for a while without its token being
//! looked at ([`crate::sign_in_limit`]).

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use platform::http::Problem;
use serde::Deserialize;

use crate::session::{self, Session};
use crate::sign_in_limit::{self, Outcome};
use crate::transport::Client;
use crate::Shared;

/// Where to go after signing in: a path of the console only.
fn next_of(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".into(),
    }
}

pub async fn form(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Query(q): Query<HashMap<String, String>>,
) -> Markup {
    render(&console, &session, q.get("next").map(String::as_str), None)
}

fn render(
    console: &Shared,
    session: &Session,
    next: Option<&str>,
    problem: Option<&str>,
) -> Markup {
    let body = html! {
        @if let Some(p) = problem { (super::notice("error", p)) }
        @if !console.needs_sign_in() {
            p { "This console asks no sign-in: the services it is set up with take no operator tokens." }
        }
        form #sign-in method="post" action="/sign-in" {
            (super::csrf(session))
            input type="hidden" name="next" value=(next_of(next));
            label { "operator token " input type="password" name="token" autocomplete="current-password" required; }
            " " button type="submit" { "Sign in" }
        }
        @if console.needs_sign_in() {
            p.small {
                "Sign in with an operator token: the one " code { "openorder up" }
                " printed when it started, or one configured for the services."
            }
        }
    };
    super::page("Sign in", "", session, body)
}

#[derive(Deserialize)]
pub struct SignInForm {
    csrf: String,
    token: String,
    next: Option<String>,
}

pub async fn submit(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Extension(client): Extension<Client>,
    Form(form): Form<SignInForm>,
) -> Response {
    if !super::csrf_ok(&session, &form.csrf) {
        return super::csrf_refused();
    }
    let token = form.token.trim().to_string();
    let outcome = console
        .sign_in_limit
        .attempt(client.ip, Instant::now(), || console.operators.who(&token));
    let name = match outcome {
        Outcome::Accepted(name) => name,
        Outcome::Wrong { log } => {
            let source = sign_in_limit::Source::of(client.ip);
            if log {
                tracing::warn!(
                    client = %source,
                    "console sign-in refused from {source}: unknown operator token (further \
                     refusals from it are summed up once a minute)"
                );
            }
            return render(
                &console,
                &session,
                form.next.as_deref(),
                Some("That is not an operator token this console accepts."),
            )
            .into_response();
        }
        Outcome::Refused { retry_after, log } => {
            let source = sign_in_limit::Source::of(client.ip);
            if log {
                tracing::warn!(
                    client = %source,
                    "console sign-in refused from {source}: too many wrong operator tokens \
                     (further refusals from it are summed up once a minute)"
                );
            }
            return too_many(sign_in_limit::retry_after_secs(retry_after));
        }
    };
    tracing::info!(operator = %name, client = %client.ip, "operator signed in to the console");
    let signed = console.sessions.sign_in(Some(&session), name, token);
    let mut response = Redirect::to(&next_of(form.next.as_deref())).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&signed, client.https)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The answer to a client over the sign-in limit: `429`, a problem, `Retry-After`.
fn too_many(retry_after: u32) -> Response {
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-sign-in-attempts",
        "Too many sign-in attempts",
        format!(
            "{} wrong operator tokens came from this address within the last {} s, so this \
             token was not checked; try again in {retry_after} s",
            sign_in_limit::MAX_FAILURES,
            sign_in_limit::WINDOW.as_secs()
        ),
    )
    .retry_after(retry_after)
    .into_response()
}

#[derive(Deserialize)]
pub struct SignOutForm {
    csrf: String,
}

pub async fn sign_out(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Extension(client): Extension<Client>,
    Form(form): Form<SignOutForm>,
) -> Response {
    if !super::csrf_ok(&session, &form.csrf) {
        return super::csrf_refused();
    }
    console.sessions.close(&session);
    let mut response = Redirect::to("/sign-in").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(client.https)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_signing_in_the_console_goes_only_to_a_page_of_its_own() {
        assert_eq!(next_of(Some("/orders/7?x=1")), "/orders/7?x=1");
        assert_eq!(next_of(Some("//evil.example/")), "/");
        assert_eq!(next_of(Some("https://evil.example/")), "/");
        assert_eq!(next_of(Some("/\\evil.example")), "/");
        assert_eq!(next_of(None), "/");
    }

    #[tokio::test]
    async fn the_sign_in_page_names_no_file_or_directory() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            console: crate::ConsoleArgs,
        }
        let dir = std::env::temp_dir().join(format!("x-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("operator.token");
        let entry = platform::auth::operators::Entry::for_token("alice", "oo_secret");
        std::fs::write(&file, format!("{}\n", entry.line())).unwrap();
        let cli =
            Cli::try_parse_from(["console", "--operator-tokens-file", file.to_str().unwrap()])
                .unwrap();
        let console = crate::Console::new(&cli.console).await.unwrap();
        assert!(console.needs_sign_in());
        let session = console.sessions.open();
        for problem in [
            None,
            Some("That is not an operator token this console accepts."),
        ] {
            let html = render(&console, &session, Some("/topics"), problem).into_string();
            assert!(html.contains("operator token"), "{html}");
            for path in [
                file.to_str().unwrap(),
                dir.to_str().unwrap(),
                "operator.token",
                "openorder-data",
                "operator-token",
            ] {
                assert!(!html.contains(path), "the page names {path}: {html}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
