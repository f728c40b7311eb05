//! The HTTP API:
//! - `GET /api/notifications?orderId=`: an order's notifications with each channel's
//!   delivery (status, attempts, last error, times), or the latest 100.
//! - `GET /api/users/{userId}/contact`, `PUT /api/users/{userId}/contact`: the defaults a
//!   user registers (`{"email": …, "webhookUrl": …, "phone": …}`, all optional; PUT
//!   replaces).
//! - `GET /api/users/{userId}/notification-preferences`, `PUT …`: the channels a user wants
//!   per kind of notification, and quiet hours, critical kinds and a digest window
//!   ([`crate::preferences`]; PUT replaces).
//! - `GET /api/push/vapid-public-key`: the key pages subscribe to Web Push with (public).
//! - `GET|POST /api/users/{userId}/push-subscriptions`,
//!   `DELETE /api/users/{userId}/push-subscriptions/{subscriptionId}`: a user's browsers'
//!   Web Push subscriptions (POST takes what `PushSubscription.toJSON()` gives, as it is).
//! - `POST /callbacks/sms`: an SMS provider's delivery receipts; no credential, each
//!   request signed with the SMS auth token (`X-Twilio-Signature`).
//!
//! Here, the state, the router, the OpenAPI document and the listing; the routes of users'
//! defaults in `routes/users.rs`, of Web Push in `routes/push.rs`, the SMS callback in
//! `routes/callbacks.rs`.

mod callbacks;
mod push;
mod users;

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use contracts::destinations::Destinations;
use contracts::values::UserId;
use contracts::Topics;
use platform::auth::{Caller, Routes};
use platform::db::Database;
use platform::http::problems_doc::CustomerAuth;
use platform::http::Problem;
use platform::metrics::Metrics;

use crate::delivery::channels::sms;
use crate::store::{self, Notification};

/// What the handlers need.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    /// Where a registered webhook may point.
    pub webhooks: Destinations,
    /// How SMS delivery receipts are checked, when messages ask for them.
    pub sms: Option<sms::Callbacks>,
    /// For `notification.failed`, when a receipt says an SMS failed.
    pub topics: Topics,
    pub metrics: Metrics,
    /// Where an SMS a receipt says failed falls back to (`--notify-fallback`), with the
    /// channels configured and the clock.
    pub fallback: Vec<String>,
    pub channels: std::sync::Arc<crate::delivery::channels::Channels>,
    pub clock: crate::schedule::Clock,
}

impl axum::extract::FromRef<AppState> for Database {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

/// The customers' routes (a customer reads and changes only their own notifications,
/// contact and preferences), and the SMS provider's callback, open to anyone who can sign.
pub fn routes(state: AppState) -> Routes {
    let customers = Router::new()
        .route("/api/notifications", get(list))
        .route(
            "/api/users/{user_id}/contact",
            get(users::get_contact).put(users::put_contact),
        )
        .route(
            "/api/users/{user_id}/notification-preferences",
            get(users::get_preferences).put(users::put_preferences),
        )
        .route(
            "/api/users/{user_id}/push-subscriptions",
            get(push::list_push_subscriptions).post(push::add_push_subscription),
        )
        .route(
            "/api/users/{user_id}/push-subscriptions/{subscription_id}",
            delete(push::remove_push_subscription),
        )
        .with_state(state.clone());
    let push_key = Router::new()
        .route("/api/push/vapid-public-key", get(push::vapid_public_key))
        .with_state(state.clone());
    let callbacks = Router::new()
        .route("/callbacks/sms", post(callbacks::sms_status))
        .with_state(state);
    let docs = platform::http::openapi::routes(&openapi());
    Routes::default()
        .public(docs)
        .public(push_key)
        .public(callbacks)
        .customers(customers)
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
    paths(list, users::get_contact, users::put_contact, users::get_preferences,
        users::put_preferences, push::vapid_public_key, push::list_push_subscriptions,
        push::add_push_subscription, push::remove_push_subscription, callbacks::sms_status),
    tags(
        (name = "notifications", description = "With customer authentication, only the caller's own."),
        (name = "push", description = "Web Push: the key pages subscribe with (public), and each user's subscriptions (with customer authentication, only the caller's own)."),
        (name = "callbacks", description = "Called by providers: no credential, every request signed."),
    )
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
        CustomerAuth,
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

/// A `userId` path parameter: a positive integer, or why it is not.
fn user_id(raw: &str) -> Result<i64, Problem> {
    raw.parse::<i64>()
        .map_err(|_| format!("must be a positive integer, got {raw:?}"))
        .and_then(UserId::parse)
        .map(UserId::get)
        .map_err(|m| Problem::bad_parameter("userId", m))
}
