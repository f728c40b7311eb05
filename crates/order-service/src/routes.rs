//! The orders HTTP API: `POST /api/orders`, `GET /api/orders/{id}`,
//! `GET /api/orders?userId=&page=&size=`, `POST /api/orders/{id}/cancel`,
//! `GET /api/orders/{id}/events` (server-sent events); for operators,
//! `GET /admin/orders/stuck` and `GET /admin/orders/counts`. `POST /api/orders` and
//! `GET /api/orders/{id}` honour `Prefer: wait=N` (RFC 7240): they answer once the order is
//! decided, or after N seconds ([`crate::waits`]). Every error is an RFC 9457 problem.
//!
//! Layout: `orders` (place, show, cancel and list orders), `follow` (an order's event
//! stream), `admin` (the operators' stuck orders and counts), `prefer` (the `Prefer: wait`
//! preference and the wait for a decision).

use std::collections::HashMap;
use std::time::Duration;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use contracts::Topics;
use platform::auth::Routes;
use platform::db::Database;
use platform::http::Problem;

use crate::intake::Intake;
use crate::waits::Waits;

mod admin;
mod follow;
mod orders;
mod prefer;

pub use admin::{DEFAULT_STUCK_LIMIT, MAX_STUCK_LIMIT};
pub use orders::{DEFAULT_PAGE_SIZE, MAX_IDEMPOTENCY_KEY_LEN, MAX_PAGE_SIZE};
pub use prefer::requested_wait;

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub topics: Topics,
    pub intake: Intake,
    /// Where an order's contact webhook may point.
    pub webhooks: contracts::destinations::Destinations,
    /// Requests waiting for orders' decisions.
    pub waits: Waits,
    /// `--stuck-after`: a PENDING order older than this is listed as stuck.
    pub stuck_after: Duration,
}

/// The order API is the customers' (each sees and cancels only their own orders); the
/// list of stuck orders and the counts by status are the operators'; the AsyncAPI document
/// is public.
pub fn routes(state: AppState) -> Routes {
    let customers = Router::new()
        .route("/api/orders", get(orders::list).post(orders::create))
        .route("/api/orders/{id}", get(orders::show))
        .route("/api/orders/{id}/events", get(follow::events))
        .route(
            "/api/orders/{id}/cancel",
            axum::routing::post(orders::cancel),
        )
        .with_state(state.clone());
    let operators = Router::new()
        .route("/admin/orders/stuck", get(admin::stuck))
        .route("/admin/orders/counts", get(admin::counts))
        .with_state(state);
    let contracts = Router::new()
        .route("/asyncapi.json", get(asyncapi))
        .merge(platform::http::openapi::routes(&openapi()));
    Routes::default()
        .public(contracts)
        .customers(customers)
        .operators(operators)
}

/// order-service's OpenAPI document (`/openapi.json`, `docs/api/order-service.openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    platform::http::openapi::document(Api::openapi())
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "OpenOrder order-service",
        description = "Accepts orders (202, then PENDING until inventory decides: CONFIRMED, REJECTED or FAILED), shows them, follows them and cancels them; with `Prefer: wait=N` a request answers once the order is decided, or after N seconds (at most 30). Every error is an RFC 9457 problem (application/problem+json)."
    ),
    paths(orders::create, orders::show, follow::events, orders::cancel, orders::list, admin::stuck,
        admin::counts, asyncapi),
    tags((name = "orders", description = "A customer's orders: with customer authentication, only the caller's own."),
         (name = "contracts", description = "Published contracts, open to anyone."))
)]
struct Api;

/// The AsyncAPI 3.0 document of every topic (also `docs/api/asyncapi.json`).
#[utoipa::path(get, path = "/asyncapi.json", tag = "contracts", security(()),
    responses((status = 200, description = "AsyncAPI 3.0", body = serde_json::Value)))]
async fn asyncapi() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        serde_json::to_string_pretty(&contracts::asyncapi::document()).expect("JSON") + "\n"
    });
    ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

/// 404 for the order `id` names: there is none (or it is another customer's).
fn order_not_found(id: &str) -> Problem {
    Problem::not_found(format!("no order with id {id}"))
}

/// The order id in a path: a positive integer; anything else names no order (404).
fn parse_order_id(id: &str) -> Result<i64, Problem> {
    id.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| order_not_found(id))
}

fn int_param(
    query: &HashMap<String, String>,
    name: &str,
    default: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, Problem> {
    let value = match (query.get(name), default) {
        (Some(raw), _) => raw.parse::<i64>().map_err(|_| {
            Problem::bad_parameter(name, format!("must be an integer, got {raw:?}"))
        })?,
        (None, Some(default)) => default,
        (None, None) => return Err(Problem::bad_parameter(name, "is required")),
    };
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Problem::bad_parameter(
            name,
            format!(
                "must be between {} and {}, got {value}",
                range.start(),
                range.end()
            ),
        ))
    }
}
