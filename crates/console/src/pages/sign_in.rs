//! `/sign-in` and `/sign-out`: an operator signs in with an operator token (one the
//! console's token hashes accept, as the services' do); the console keeps it in the session
//! and presents it to the services for the operator's actions.

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use crate::session::{self, Session};
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
        @if let Some(hint) = &console.token_hint {
            p.small { "`openorder up` keeps its operator token in " code { (hint) } "." }
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
    Form(form): Form<SignInForm>,
) -> Response {
    if !super::csrf_ok(&session, &form.csrf) {
        return super::csrf_refused();
    }
    let token = form.token.trim().to_string();
    let Some(name) = console.operators.who(&token) else {
        tracing::warn!("console sign-in refused: unknown operator token");
        return render(
            &console,
            &session,
            form.next.as_deref(),
            Some("That is not an operator token this console accepts."),
        )
        .into_response();
    };
    tracing::info!(operator = %name, "operator signed in to the console");
    let signed = console.sessions.sign_in(Some(&session), name, token);
    let mut response = Redirect::to(&next_of(form.next.as_deref())).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&signed)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
pub struct SignOutForm {
    csrf: String,
}

pub async fn sign_out(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Form(form): Form<SignOutForm>,
) -> Response {
    if !super::csrf_ok(&session, &form.csrf) {
        return super::csrf_refused();
    }
    console.sessions.close(&session);
    let mut response = Redirect::to("/sign-in").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
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
}
