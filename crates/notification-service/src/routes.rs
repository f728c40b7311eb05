//! The HTTP API:
//! - `GET /api/notifications?orderId=`: an order's notifications with each channel's
//!   delivery (status, attempts, last error, times), or the latest 100.
//! - `GET /api/users/{userId}/contact`, `PUT /api/users/{userId}/contact`: the defaults a
//!   user registers (`{"email": …, "webhookUrl": …}`, both optional; PUT replaces).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use contracts::destinations::Destinations;
use contracts::values::UserId;
use contracts::Contact;
use platform::auth::{Caller, Routes};
use platform::db::Database;
use platform::http::{ApiJson, FieldError, Problem};
use serde::Deserialize;

use crate::store::{self, Notification, UserContact};

/// What the handlers need.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    /// Where a registered webhook may point.
    pub webhooks: Destinations,
}

impl axum::extract::FromRef<AppState> for Database {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

/// Every route is the customers' (a customer reads only their own notifications and contact).
pub fn routes(state: AppState) -> Routes {
    let customers = Router::new()
        .route("/api/notifications", get(list))
        .route(
            "/api/users/{user_id}/contact",
            get(get_contact).put(put_contact),
        )
        .with_state(state);
    let docs = platform::http::openapi::routes(&openapi());
    Routes::default().public(docs).customers(customers)
}

/// notification-service's OpenAPI document (`/openapi.json`, `docs/api/notification-service.openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    platform::http::openapi::document(Api::openapi())
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "OpenOrder notification-service",
        description = "The notifications of each order with each channel's delivery, and where users are reached by default. Every error is an RFC 9457 problem (application/problem+json)."
    ),
    paths(list, get_contact, put_contact),
    tags((name = "notifications", description = "With customer authentication, only the caller's own."))
)]
struct Api;

/// An order's notifications, oldest first, or the latest 100, newest first; each with its
/// channels' deliveries (status, attempts, last error).
#[utoipa::path(get, path = "/api/notifications", tag = "notifications",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("orderId" = Option<i64>, Query, description = "One order's; default: the latest (a customer's own)", minimum = 1)),
    responses(
        (status = 200, description = "Notifications", body = Vec<Notification>),
        (status = 400, description = "`orderId` is not a positive integer", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Customer authentication is on and no valid token was given", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
async fn list(
    State(db): State<Database>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Notification>>, Problem> {
    let order_id = match query.get("orderId") {
        None => None,
        Some(raw) => Some(raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            Problem::bad_parameter(
                "orderId",
                format!("must be a positive integer, got {raw:?}"),
            )
        })?),
    };
    Ok(Json(
        store::list(&db, order_id, caller.only_user(), 100).await?,
    ))
}

/// `PUT /api/users/{userId}/contact` body. Unknown fields are refused (422).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ContactBody {
    /// An e-mail address, up to 254 characters.
    #[serde(default)]
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    /// An `https://` (or `http://`) URL of a public address.
    #[serde(default)]
    #[schema(format = "iri", pattern = "^https?://")]
    webhook_url: Option<String>,
}

fn user_id(raw: &str) -> Result<i64, Problem> {
    raw.parse::<i64>()
        .map_err(|_| format!("must be a positive integer, got {raw:?}"))
        .and_then(UserId::parse)
        .map(UserId::get)
        .map_err(|m| Problem::bad_parameter("userId", m))
}

/// Where a user is reached by default.
#[utoipa::path(get, path = "/api/users/{userId}/contact", tag = "notifications",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("userId" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "The contact", body = UserContact),
        (status = 400, description = "`userId` is not a positive integer", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Customer authentication is on and no valid token was given", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another user's", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "None registered", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(user = %raw))]
async fn get_contact(
    State(db): State<Database>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<UserContact>, Problem> {
    let user_id = user_id(&raw)?;
    caller.may_act_for(user_id)?;
    store::user_contact(&db.pool, user_id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("user {user_id} has registered no contact")))
}

/// Register (replace) where a user is reached: e-mail and webhook, both optional. An
/// order's own contact wins, field by field. A webhook must point at a public address.
#[utoipa::path(put, path = "/api/users/{userId}/contact", tag = "notifications",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("userId" = i64, Path, minimum = 1)),
    request_body = ContactBody,
    responses(
        (status = 200, description = "The contact now", body = UserContact),
        (status = 400, description = "`userId` is not a positive integer, or not one JSON object", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Customer authentication is on and no valid token was given", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another user's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an e-mail address, or a webhook URL that is not https/http to a public address", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is away; nothing was written", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(user = %raw))]
async fn put_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<ContactBody>,
) -> Result<Json<UserContact>, Problem> {
    let db = state.db;
    let user_id = user_id(&raw)?;
    caller.may_act_for(user_id)?;
    let contact = Contact::checked(
        body.email.as_deref(),
        body.webhook_url.as_deref(),
        &state.webhooks,
    )
    .map_err(|bad| {
        Problem::invalid_fields(
            bad.into_iter()
                .map(|(field, m)| FieldError::new(format!("/{field}"), m))
                .collect(),
        )
    })?;
    Ok(Json(store::put_user_contact(&db, user_id, &contact).await?))
}
