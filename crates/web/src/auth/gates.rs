//! The gates in front of customers' and operators' routes ([`Auth::for_customers`],
//! [`Auth::for_operators`], [`Auth::for_metrics`]): the bearer token read, the
//! caller found or the request refused (401 with `WWW-Authenticate`, 403) before any
//! handler runs, and an operator's state-changing request logged.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::oidc::Refusal;
use super::{Auth, Caller};
use crate::http::Problem;

impl Auth {
    /// `router`'s routes for customers (and operators).
    pub fn for_customers(&self, router: Router) -> Router {
        router.route_layer(axum::middleware::from_fn_with_state(
            self.clone(),
            customer_gate,
        ))
    }

    /// `router`'s routes for operators only.
    pub fn for_operators(&self, router: Router) -> Router {
        router.route_layer(axum::middleware::from_fn_with_state(
            self.clone(),
            operator_gate,
        ))
    }

    /// `/metrics`: for operators when `--protect-metrics`, else open.
    pub fn for_metrics(&self, router: Router) -> Router {
        if self.protect_metrics {
            self.for_operators(router)
        } else {
            router
        }
    }

    async fn customer(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        let token = bearer(headers)?;
        if let Some(token) = token {
            if let Some(name) = self.operators.who(token) {
                return Ok(Caller::Operator(name));
            }
        }
        let Some(oidc) = &self.customers else {
            return Ok(Caller::Anyone);
        };
        let Some(token) = token else {
            return Err(Denied::unauthorized(
                None,
                "this needs a customer token: Authorization: Bearer <JWT>",
            ));
        };
        match oidc.user_of(token).await {
            Ok(user) => Ok(Caller::Customer(user)),
            Err(Refusal::Invalid(why)) => Err(Denied::unauthorized(Some("invalid_token"), why)),
            Err(Refusal::NoUser(why)) => Err(Denied::Forbidden(why)),
        }
    }

    async fn operator(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        if self.operators.is_unconfigured() {
            return Ok(Caller::Anyone);
        }
        let Some(token) = bearer(headers)? else {
            return Err(Denied::unauthorized(
                None,
                "this needs an operator token: Authorization: Bearer <token>",
            ));
        };
        if let Some(name) = self.operators.who(token) {
            return Ok(Caller::Operator(name));
        }
        if let Some(oidc) = &self.customers {
            if oidc.user_of(token).await.is_ok() {
                return Err(Denied::Forbidden(
                    "operators only: a customer token cannot do this".into(),
                ));
            }
        }
        Err(Denied::unauthorized(
            Some("invalid_token"),
            "the token is not an operator token",
        ))
    }
}

/// The bearer token of `Authorization`, if any; 401 for another scheme or a malformed one.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Denied> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        Denied::unauthorized(
            Some("invalid_request"),
            "Authorization must be `Bearer <token>`",
        )
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token))
}

/// A request refused before its handler.
enum Denied {
    /// 401: no credential, or one that is not valid; RFC 6750's `error` when a token was refused.
    Unauthorized(Option<&'static str>, String),
    /// 403: the caller is known but may not do this.
    Forbidden(String),
}

impl Denied {
    fn unauthorized(error: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self::Unauthorized(error, detail.into())
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Unauthorized(error, detail) => unauthorized(error, &detail),
            Denied::Forbidden(detail) => forbidden(detail).into_response(),
        }
    }
}

/// 401 with `WWW-Authenticate: Bearer`.
fn unauthorized(error: Option<&str>, detail: &str) -> Response {
    let mut response = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authentication required",
        detail,
    )
    .into_response();
    let challenge = match error {
        Some(error) => format!("Bearer realm=\"openorder\", error=\"{error}\""),
        None => "Bearer realm=\"openorder\"".to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// 403: the caller is known but may not do this.
pub fn forbidden(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
}

async fn customer_gate(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    match auth.customer(request.headers()).await {
        Ok(caller) => admitted(caller, request, next).await,
        Err(refused) => refused.into_response(),
    }
}

async fn operator_gate(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    match auth.operator(request.headers()).await {
        Ok(caller) => admitted(caller, request, next).await,
        Err(refused) => refused.into_response(),
    }
}

/// Runs the request as `caller`; an operator's state-changing request is logged with its outcome.
async fn admitted(caller: Caller, mut request: Request, next: Next) -> Response {
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let action = match (&caller, changes) {
        (Caller::Operator(name), true) => Some((
            name.clone(),
            request.method().clone(),
            request.uri().path().to_string(),
        )),
        _ => None,
    };
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    if let Some((operator, method, path)) = action {
        tracing::info!(operator, %method, path, status = response.status().as_u16(), "operator action");
    }
    response
}
