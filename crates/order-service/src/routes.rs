//! The orders HTTP API: `POST /api/orders`, `GET /api/orders/{id}`,
//! `GET /api/orders?userId=&page=&size=`, `POST /api/orders/{id}/cancel`.
//! Every error is an RFC 9457 problem.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use contracts::Topics;
use platform::auth::{Caller, Routes};
use platform::db::Database;
use platform::http::{ApiJson, FieldError, Problem};
use serde::Serialize;

use crate::domain::{CreateOrderBody, OrderRequest, OrderStatus};
use crate::intake::{Intake, IntakeError};
use crate::store::{self, CancelOutcome, Created, OrderView};

/// Default and largest page size of the order list.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub topics: Topics,
    pub intake: Intake,
    /// Where an order's contact webhook may point.
    pub webhooks: contracts::destinations::Destinations,
}

/// The order API is the customers' (each sees and cancels only their own orders); the
/// AsyncAPI document is public.
pub fn routes(state: AppState) -> Routes {
    let customers = Router::new()
        .route("/api/orders", get(list).post(create))
        .route("/api/orders/{id}", get(show))
        .route("/api/orders/{id}/cancel", axum::routing::post(cancel))
        .with_state(state);
    let contracts = Router::new()
        .route("/asyncapi.json", get(asyncapi))
        .merge(platform::http::openapi::routes(&openapi()));
    Routes::default().public(contracts).customers(customers)
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
        description = "Accepts orders (202, then PENDING until inventory decides: CONFIRMED, REJECTED or FAILED), shows them and cancels them. Every error is an RFC 9457 problem (application/problem+json)."
    ),
    paths(create, show, cancel, list, asyncapi),
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

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    order_id: i64,
    status: OrderStatus,
}

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = |why: &str| Problem::bad_parameter("Idempotency-Key", why.to_string());
    let key = value.to_str().map_err(|_| bad("must be visible ASCII"))?;
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(bad("must be 1 to 255 visible ASCII characters"));
    }
    Ok(Some(key.to_string()))
}

/// 503 with `Retry-After: 1`: the intake's queue is full (see [`crate::intake`]).
fn busy() -> Response {
    tracing::debug!("order refused: the intake queue is full");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "Too many orders at once",
        "more orders are waiting to be written than this service queues; nothing was written, retry in a second",
    )
    .retry_in_a_second()
}

/// Place an order.
///
/// 202 with the new order's id; it is PENDING until inventory decides. With an
/// `Idempotency-Key` header, a repeat of the same request within 24 h answers the same
/// (marked `Idempotent-Replayed: true`), and the same key with a different request is a 422.
#[utoipa::path(post, path = "/api/orders", tag = "orders",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    request_body = CreateOrderBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$")),
    responses(
        (status = 202, description = "Accepted, PENDING", body = Accepted,
            headers(("Location" = String, description = "/api/orders/{orderId}"),
                    ("Idempotent-Replayed" = String, description = "`true` on a replay"))),
        (status = 400, description = "Not one JSON object (`malformed-json`), or a bad `Idempotency-Key` (`invalid-parameter`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Customer authentication is on and no valid token was given", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`userId` is not the token's user", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (`invalid-fields`, each named by a JSON pointer), or an `Idempotency-Key` used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded or the database is away; nothing was written, retry (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateOrderBody>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let request = OrderRequest::parse(body, &state.webhooks).map_err(Problem::invalid_fields)?;
    let user_id = request.user_id.get();
    caller.may_act_for(user_id)?;
    let created = match state.intake.create(request, key).await {
        Ok(created) => created,
        Err(IntakeError::Busy) => return Ok(busy()),
        Err(IntakeError::Storage(fault)) => return Err(Problem::storage(fault)),
        Err(IntakeError::Database(err)) => return Err(err.into()),
    };
    let (order_id, replayed) = match created {
        Created::New(order_id) => {
            tracing::info!(order_id, user_id, "order accepted");
            (order_id, false)
        }
        Created::Replayed(order_id) => (order_id, true),
        Created::KeyReused => return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency key reused",
            "this Idempotency-Key was used for a different request; use a new key for a new order",
        )
        .with_errors(vec![FieldError::new(
            "Idempotency-Key",
            "already used for a different request",
        )])),
    };
    let accepted = Accepted {
        order_id,
        status: OrderStatus::Pending,
    };
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/orders/{order_id}"))],
        Json(accepted),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// One order.
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("id" = i64, Path, description = "The order id", minimum = 1)),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 401, description = "Customer authentication is on and no valid token was given", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or another customer's)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order = %id))]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, Problem> {
    let not_found = || Problem::not_found(format!("no order with id {id}"));
    let order_id: i64 = id.parse().ok().filter(|n| *n > 0).ok_or_else(not_found)?;
    store::get_order(&state.db, order_id)
        .await?
        .filter(|order| caller.may_see(order.user_id))
        .map(Json)
        .ok_or_else(not_found)
}

/// Cancel an order.
///
/// 200 with the order (CANCELLED), also when it already was; its reserved stock is given
/// back (`releasedAt` once it was).
#[utoipa::path(post, path = "/api/orders/{id}/cancel", tag = "orders",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("id" = i64, Path, description = "The order id", minimum = 1)),
    responses(
        (status = 200, description = "CANCELLED", body = OrderView),
        (status = 401, description = "Customer authentication is on and no valid token was given", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or another customer's)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "REJECTED or FAILED orders cannot be cancelled (`order-not-cancellable`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is away; nothing was written", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order = %id))]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, Problem> {
    let not_found = || Problem::not_found(format!("no order with id {id}"));
    let order_id: i64 = id.parse().ok().filter(|n| *n > 0).ok_or_else(not_found)?;
    let owner = caller.only_user();
    match store::cancel_order(&state.db, &state.topics, order_id, owner).await? {
        CancelOutcome::Cancelled(order) => {
            tracing::info!(order_id, "order cancelled");
            Ok(Json(order))
        }
        CancelOutcome::AlreadyCancelled(order) => Ok(Json(order)),
        CancelOutcome::NotCancellable(status) => Err(Problem::new(
            StatusCode::CONFLICT,
            "order-not-cancellable",
            "Order cannot be cancelled",
            format!(
                "order {order_id} is {}; only PENDING or CONFIRMED orders can be cancelled",
                status.as_str()
            ),
        )),
        CancelOutcome::NotFound => Err(not_found()),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Page {
    orders: Vec<OrderView>,
    page: i64,
    size: i64,
    has_more: bool,
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

#[tracing::instrument(skip_all)]
/// A user's orders, newest first.
///
/// `userId` is required, except from a customer, whose own it is.
#[utoipa::path(get, path = "/api/orders", tag = "orders",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(
        ("userId" = i64, Query, description = "Whose orders; a customer may leave it out (their own)", minimum = 1),
        ("page" = Option<i64>, Query, description = "From 0 (default 0)", minimum = 0, maximum = 1000000),
        ("size" = Option<i64>, Query, description = "1 to 100 (default 20)", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "One page", body = Page),
        (status = 400, description = "A parameter is not an integer in range (`invalid-parameter`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Customer authentication is on and no valid token was given", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`userId` is not the token's user", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Page>, Problem> {
    let user_id = int_param(&query, "userId", caller.only_user(), 1..=i64::MAX)?;
    caller.may_act_for(user_id)?;
    let page = int_param(&query, "page", Some(0), 0..=1_000_000)?;
    let size = int_param(&query, "size", Some(DEFAULT_PAGE_SIZE), 1..=MAX_PAGE_SIZE)?;
    let (orders, has_more) = store::list_orders(&state.db, user_id, page, size).await?;
    Ok(Json(Page {
        orders,
        page,
        size,
        has_more,
    }))
}
