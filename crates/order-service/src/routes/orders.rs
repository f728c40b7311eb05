//! A customer's orders: place one (`POST /api/orders`), show one, cancel one, and list a
//! user's.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use contracts::api::{Accepted, Page};
use platform::auth::Caller;
use platform::http::problems_doc::{CustomerAuth, DatabaseAwayOnWrite, JsonBody};
use platform::http::{ApiJson, FieldError, Problem};
use tokio::time::Instant;

use super::prefer::{applied, requested_wait, too_many_waiters, wait_for_decision};
use super::{int_param, order_not_found, parse_order_id, AppState};
use crate::domain::{CreateOrderBody, OrderRequest, OrderStatus};
use crate::intake::IntakeError;
use crate::store::{self, CancelOutcome, Created, OrderView};

/// Default and largest page size of the order list.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;

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
/// With `Prefer: wait=N` it answers once the order is decided, 201 with the order, or
/// after N seconds (at most 30) the 202 as without it; `Preference-Applied: wait=N` says
/// so in both cases.
#[utoipa::path(post, path = "/api/orders", tag = "orders",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    request_body = CreateOrderBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
           ("Prefer" = Option<String>, Header, description = "`wait=N` (RFC 7240): answer once the order is decided, or after N seconds (at most 30); a malformed `wait` is ignored")),
    responses(
        (status = 201, description = "Placed and decided within the wait (`Prefer: wait`): the order, no longer PENDING", body = OrderView,
            headers(("Location" = String, description = "/api/orders/{orderId}"),
                    ("Preference-Applied" = String, description = "`wait=N`: the wait honoured, in seconds"),
                    ("Idempotent-Replayed" = String, description = "`true` on a replay"))),
        (status = 202, description = "Accepted, PENDING (with `Prefer: wait`: not decided within the wait)", body = Accepted,
            headers(("Location" = String, description = "/api/orders/{orderId}"),
                    ("Preference-Applied" = String, description = "`wait=N` when the request asked to wait"),
                    ("Idempotent-Replayed" = String, description = "`true` on a replay"))),
        (status = 400, description = "Not one JSON object (`malformed-json`), or a bad `Idempotency-Key` (`invalid-parameter`)", body = Problem, content_type = "application/problem+json"),
        CustomerAuth,
        (status = 403, description = "`userId` is not the token's user", body = Problem, content_type = "application/problem+json"),
        JsonBody,
        (status = 422, description = "Invalid fields (`invalid-fields`, each named by a JSON pointer), or an `Idempotency-Key` used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded, too many requests waiting (`too-many-waiters`, with `Prefer: wait`) or the database is away; nothing was written, retry (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateOrderBody>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let wait = requested_wait(&headers);
    let request = OrderRequest::parse(body, &state.webhooks).map_err(Problem::invalid_fields)?;
    let user_id = request.user_id.get();
    caller.may_act_for(user_id)?;
    // The slot is taken before the order is written, so that a refusal writes nothing.
    let admission = match wait {
        Some(seconds) if seconds > 0 => Some(state.waits.admit().map_err(too_many_waiters)?),
        _ => None,
    };
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
    let started = Instant::now();
    let decided = match admission {
        Some(admission) => {
            let seconds = wait.unwrap_or(0);
            let deadline = started + Duration::from_secs(seconds);
            match wait_for_decision(&state.db, admission.watch(order_id), deadline).await {
                Ok(order) => order.filter(|o| o.status != OrderStatus::Pending),
                Err(err) => {
                    // The order is kept all the same: answered 202, as without a wait.
                    tracing::warn!(order_id, error = %err, "reading the order while waiting for its decision failed; answering 202");
                    None
                }
            }
        }
        None => None,
    };
    let location = [(header::LOCATION, format!("/api/orders/{order_id}"))];
    let mut response = match decided {
        Some(order) => (StatusCode::CREATED, location, Json(order)).into_response(),
        None => {
            let accepted = Accepted {
                order_id,
                status: OrderStatus::Pending,
            };
            (StatusCode::ACCEPTED, location, Json(accepted)).into_response()
        }
    };
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Some(seconds) = wait {
        applied(&mut response, seconds, started);
    }
    Ok(response)
}

/// One order.
///
/// With `Prefer: wait=N`, a PENDING order is answered once it is decided, or after N
/// seconds (at most 30) as it is then; `Preference-Applied: wait=N` says so.
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("id" = i64, Path, description = "The order id", minimum = 1),
           ("Prefer" = Option<String>, Header, description = "`wait=N` (RFC 7240): while the order is PENDING, answer once it is decided, or after N seconds (at most 30); a malformed `wait` is ignored")),
    responses(
        (status = 200, description = "The order", body = OrderView,
            headers(("Preference-Applied" = String, description = "`wait=N` when the request asked to wait: the wait honoured, in seconds"))),
        CustomerAuth,
        (status = 404, description = "No such order (or another customer's)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many requests waiting (`too-many-waiters`, with `Prefer: wait`), or the database is away; retry (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order = %id))]
pub(super) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let order_id = parse_order_id(&id)?;
    let visible = |order: Option<OrderView>| {
        order
            .filter(|order| caller.may_see(order.user_id))
            .ok_or_else(|| order_not_found(&id))
    };
    let order = visible(store::get_order(&state.db, order_id).await?)?;
    let Some(wait) = requested_wait(&headers) else {
        return Ok(Json(order).into_response());
    };
    let started = Instant::now();
    let order = if order.status == OrderStatus::Pending && wait > 0 {
        let watcher = state
            .waits
            .admit()
            .map_err(too_many_waiters)?
            .watch(order_id);
        let deadline = started + Duration::from_secs(wait);
        visible(wait_for_decision(&state.db, watcher, deadline).await?)?
    } else {
        order
    };
    let mut response = Json(order).into_response();
    applied(&mut response, wait, started);
    Ok(response)
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
        CustomerAuth,
        (status = 404, description = "No such order (or another customer's)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "REJECTED or FAILED orders cannot be cancelled (`order-not-cancellable`)", body = Problem, content_type = "application/problem+json"),
        DatabaseAwayOnWrite,
    ))]
#[tracing::instrument(skip_all, fields(order = %id))]
pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, Problem> {
    let order_id = parse_order_id(&id)?;
    let owner = caller.only_user();
    match store::cancel_order(&state.db, &state.topics, order_id, owner, &state.waits).await? {
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
        CancelOutcome::NotFound => Err(order_not_found(&id)),
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
        CustomerAuth,
        (status = 403, description = "`userId` is not the token's user", body = Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn list(
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
