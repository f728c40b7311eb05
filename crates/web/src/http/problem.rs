//! RFC 9457 problem details: the body of every 4xx and 5xx answer, and the field errors
//! a 422 names.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use store::storage::StorageFault;

/// One invalid field: a JSON pointer into the request (or a query parameter name) and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem details body, served as `application/problem+json`. `type` names
/// the problem, stable for machines to match on: `/problems/` and one of `invalid-fields`,
/// `invalid-parameter`, `malformed-json`, `unreadable-body`, `unsupported-media-type`,
/// `body-too-large`, `headers-too-large`, `uri-too-long`, `method-not-allowed`,
/// `request-timeout`, `not-found`, `unauthorized`, `forbidden`, `overloaded`, `busy`,
/// `broker-unavailable`, `storage-full`, `storage-read-only`,
/// `storage-unavailable`, `storage-busy`, `starting`, `missing-host`, `invalid-host`,
/// `invalid-content-length`, `malformed-head`, `internal`, or an operation's own
/// (`idempotency-key-reused`, `order-not-cancellable`).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "/problems/invalid-fields")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds for the `Retry-After` header of the answer, if it should have one (not part
    /// of the body).
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

impl Problem {
    /// `slug` names the problem type (`/problems/<slug>`), stable for machines to match on.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_: format!("/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// The problem as a response telling the client to try again in a second
    /// (`Retry-After: 1`): for refusals under load, where nothing was done.
    pub fn retry_in_a_second(self) -> Response {
        self.retry_after(1).into_response()
    }

    /// The answer will carry `Retry-After: <seconds>`.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 503 for a database that could not do what the request asked (full, read-only,
    /// away, busy: [`StorageFault`]), with `Retry-After`. Nothing of the request was kept
    /// (a commit lost with its connection is the one case that may have been: the detail
    /// says to retry with the same `Idempotency-Key`).
    pub fn storage(fault: StorageFault) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            fault.slug(),
            fault.title(),
            fault.detail(),
        )
        .retry_after(fault.retry_after())
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// 422: the request was well-formed JSON but some fields are invalid.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-fields",
            "Invalid request fields",
            detail,
        )
        .with_errors(errors)
    }

    /// 404 for a resource that does not exist.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", what)
    }

    /// 400 for a malformed query or path parameter.
    pub fn bad_parameter(name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "Invalid parameter",
            format!("{name}: {message}"),
        )
        .with_errors(vec![FieldError::new(name, message)])
    }

    /// 503 for a storage fault ([`Problem::storage`]; logged at most once a minute per
    /// fault, [`store::storage::log_request_fault`]) or 500, logged here with its cause
    /// chain; the body never leaks internals.
    pub fn internal(err: anyhow::Error) -> Self {
        let fault = err
            .chain()
            .filter_map(|e| e.downcast_ref::<sqlx::Error>())
            .find_map(StorageFault::of);
        if let Some(fault) = fault {
            store::storage::log_request_fault(fault, &format_args!("{err:#}"));
            Self::storage(fault)
        } else {
            tracing::error!(error = format!("{err:#}"), "request failed");
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the request failed unexpectedly; nothing was written",
            )
        }
    }
}

impl From<anyhow::Error> for Problem {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(err)
    }
}

impl From<sqlx::Error> for Problem {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(err.into())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let mut response = (status, Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
