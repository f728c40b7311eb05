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
    let contracts = Router::new().route("/asyncapi.json", get(asyncapi));
    Routes::default().public(contracts).customers(customers)
}

/// `GET /asyncapi.json`: the AsyncAPI document of every topic (also `docs/api/asyncapi.json`).
async fn asyncapi() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        serde_json::to_string_pretty(&contracts::asyncapi::document()).expect("JSON") + "\n"
    });
    ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

#[derive(Serialize)]
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

/// `POST /api/orders`: 202 with the new order's id. With an `Idempotency-Key` header, a
/// repeat of the same request answers the same (marked `Idempotent-Replayed: true`), and
/// the same key with a different request is a 422.
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

/// `POST /api/orders/{id}/cancel`: 200 with the order (CANCELLED), also when it already was;
/// 409 for an order that is REJECTED or FAILED; 404 for an unknown order.
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

#[derive(Serialize)]
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
/// `?userId=` is required, except from a customer, whose own it is.
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
