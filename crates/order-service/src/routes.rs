//! The orders HTTP API: `POST /api/orders`, `GET /api/orders/{id}`,
//! `GET /api/orders?userId=&page=&size=`, `POST /api/orders/{id}/cancel`,
//! `GET /api/orders/{id}/events` (server-sent events); for operators,
//! `GET /admin/orders/stuck` and `GET /admin/orders/counts`. `POST /api/orders` and
//! `GET /api/orders/{id}` honour `Prefer: wait=N` (RFC 7240): they answer once the order is
//! decided, or after N seconds ([`crate::waits`]). Every error is an RFC 9457 problem.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use contracts::api::{Accepted, OrderCounts, Page, StuckPage};
use contracts::lifecycle;
use contracts::Topics;
use platform::auth::{Caller, Routes};
use platform::db::Database;
use platform::http::problems_doc::{
    CustomerAuth, DatabaseAway, DatabaseAwayOnWrite, JsonBody, OperatorOnly,
};
use platform::http::{ApiJson, FieldError, Problem};
use tokio::time::Instant;

use crate::domain::{CreateOrderBody, OrderRequest, OrderStatus};
use crate::intake::{Intake, IntakeError};
use crate::store::{self, CancelOutcome, Created, OrderView};
use crate::waits::{TooManyWaiters, Waits, Watcher, Woke, MAX_WAIT_SECONDS};

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
        .route("/api/orders", get(list).post(create))
        .route("/api/orders/{id}", get(show))
        .route("/api/orders/{id}/events", get(events))
        .route("/api/orders/{id}/cancel", axum::routing::post(cancel))
        .with_state(state.clone());
    let operators = Router::new()
        .route("/admin/orders/stuck", get(stuck))
        .route("/admin/orders/counts", get(counts))
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
    paths(create, show, events, cancel, list, stuck, counts, asyncapi),
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

/// `Preference-Applied`, the header that says a preference was honoured (RFC 7240).
const PREFERENCE_APPLIED: &str = "preference-applied";

/// The `wait` preference of a request's `Prefer` headers (RFC 7240), in seconds, cut to
/// [`MAX_WAIT_SECONDS`]. None when there is none, or when the first one is malformed
/// (not `wait=<digits>`): a preference a server cannot read is ignored, as RFC 7240 says;
/// only the first `wait` counts (its section 2). Other preferences are ignored.
pub fn requested_wait(headers: &HeaderMap) -> Option<u64> {
    for value in headers.get_all(header::HeaderName::from_static("prefer")) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for preference in split_unquoted(value, ',') {
            let head = split_unquoted(preference, ';')[0];
            let (name, word) = match head.split_once('=') {
                Some((name, word)) => (name.trim(), Some(word.trim())),
                None => (head.trim(), None),
            };
            if !name.eq_ignore_ascii_case("wait") {
                continue;
            }
            let word = word?;
            let digits = word
                .strip_prefix('"')
                .and_then(|w| w.strip_suffix('"'))
                .unwrap_or(word);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // More digits than a u64 holds: a very long wait, so the longest.
            let seconds = digits.parse::<u64>().unwrap_or(u64::MAX);
            return Some(seconds.min(MAX_WAIT_SECONDS));
        }
    }
    None
}

/// `text` split at each `separator` outside a quoted string (at least one part).
fn split_unquoted(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (at, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..at]);
            start = at + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Marks the answer to a request that asked to wait: `Preference-Applied: wait=N` (the
/// wait honoured, after the cut), and the time it waited, which request timing leaves out
/// ([`platform::http::Waited`]).
fn applied(response: &mut Response, wait: u64, started: Instant) {
    response.headers_mut().insert(
        header::HeaderName::from_static(PREFERENCE_APPLIED),
        HeaderValue::from_str(&format!("wait={wait}")).expect("digits are a header value"),
    );
    response
        .extensions_mut()
        .insert(platform::http::Waited(started.elapsed()));
}

/// 503 with `Retry-After: 1`: as many requests wait for orders as this instance lets
/// (`--max-order-waiters`); nothing was done.
fn too_many_waiters(refused: TooManyWaiters) -> Problem {
    tracing::debug!("wait refused: {refused}");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too-many-waiters",
        "Too many requests waiting",
        format!(
            "{} requests already wait for orders here (--max-order-waiters); nothing was done: retry in a second, or without Prefer: wait",
            refused.limit
        ),
    )
    .retry_after(1)
}

/// Reads the order once `watcher` watches it (a decision committed before is seen, one
/// committed after wakes the watcher), then once each time it is woken, until the order
/// is no longer PENDING, `deadline` passes or the service stops: the order as last read
/// (None once it is gone).
async fn wait_for_decision(
    db: &Database,
    mut watcher: Watcher,
    deadline: Instant,
) -> Result<Option<OrderView>, sqlx::Error> {
    loop {
        let order = store::get_order(db, watcher.order_id()).await?;
        if order
            .as_ref()
            .is_none_or(|o| o.status != OrderStatus::Pending)
        {
            return Ok(order);
        }
        match watcher.next(Some(deadline)).await {
            Woke::Told => {}
            Woke::TimedOut | Woke::Stopping => return Ok(order),
        }
    }
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
async fn create(
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
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let not_found = || Problem::not_found(format!("no order with id {id}"));
    let order_id: i64 = id.parse().ok().filter(|n| *n > 0).ok_or_else(not_found)?;
    let visible = |order: Option<OrderView>| {
        order
            .filter(|order| caller.may_see(order.user_id))
            .ok_or_else(not_found)
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

/// One event stream's state: the status it last sent.
struct Follow {
    db: Database,
    watcher: Watcher,
    last: Option<OrderStatus>,
    /// A terminal status was sent: nothing follows.
    done: bool,
}

impl Follow {
    /// The next event: the order, each time its status changed (the first: as it is now).
    /// None once a terminal status was sent, when the service stops, or when the order
    /// cannot be read (the client's `EventSource` reconnects, and is sent the order as it
    /// is then).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.done {
                return None;
            }
            if self.last.is_some() && self.watcher.next(None).await != Woke::Told {
                return None;
            }
            let order_id = self.watcher.order_id();
            let order = match store::get_order(&self.db, order_id).await {
                Ok(order) => order?,
                Err(err) => {
                    tracing::warn!(order_id, error = %err, "reading an order for its event stream failed; ending the stream");
                    return None;
                }
            };
            // Woken with no change of status (its stock released, a second telling).
            if self.last == Some(order.status) {
                continue;
            }
            self.last = Some(order.status);
            self.done = lifecycle::is_terminal(order.status);
            let data = serde_json::to_string(&order).expect("an order serializes");
            return Some(
                Event::default()
                    .event("status")
                    .id(order.updated_at.as_str())
                    .data(data),
            );
        }
    }
}

/// Follow an order.
///
/// Server-sent events (`text/event-stream`): an event `status` with the order (as
/// `GET /api/orders/{id}` shows it) at once, then one each time its status changes; the
/// stream ends after a terminal status (REJECTED, CANCELLED) and when the service stops.
/// Each open stream takes one of the waiting slots (`--max-order-waiters`).
#[utoipa::path(get, path = "/api/orders/{id}/events", tag = "orders",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("id" = i64, Path, description = "The order id", minimum = 1)),
    responses(
        (status = 200, description = "`event: status`, `id:` the order's `updatedAt`, `data:` the order as JSON; a comment every 15 s keeps the connection alive", body = String, content_type = "text/event-stream"),
        CustomerAuth,
        (status = 404, description = "No such order (or another customer's)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many requests waiting (`too-many-waiters`), or the database is away; retry (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order = %id))]
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let not_found = || Problem::not_found(format!("no order with id {id}"));
    let order_id: i64 = id.parse().ok().filter(|n| *n > 0).ok_or_else(not_found)?;
    store::get_order(&state.db, order_id)
        .await?
        .filter(|order| caller.may_see(order.user_id))
        .ok_or_else(not_found)?;
    let watcher = state
        .waits
        .admit()
        .map_err(too_many_waiters)?
        .watch(order_id);
    let follow = Follow {
        db: state.db.clone(),
        watcher,
        last: None,
        done: false,
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok::<Event, Infallible>(event), follow))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
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
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, Problem> {
    let not_found = || Problem::not_found(format!("no order with id {id}"));
    let order_id: i64 = id.parse().ok().filter(|n| *n > 0).ok_or_else(not_found)?;
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
        CancelOutcome::NotFound => Err(not_found()),
    }
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
        CustomerAuth,
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

/// Default and largest number of stuck orders listed at once.
pub const DEFAULT_STUCK_LIMIT: i64 = 100;
pub const MAX_STUCK_LIMIT: i64 = 1000;

/// Orders PENDING longer than `--stuck-after`, oldest first.
///
/// Why each is stuck is not known to order-service (inventory retrying it, a consumer
/// lagging, its event not yet published): see `/admin/status` of each service.
#[utoipa::path(get, path = "/admin/orders/stuck", tag = "operations",
    security(("operatorToken" = [])),
    params(("limit" = Option<i64>, Query, description = "1 to 1000 (default 100)", minimum = 1, maximum = 1000)),
    responses(
        (status = 200, description = "The stuck orders, oldest first", body = StuckPage),
        (status = 400, description = "`limit` is not an integer in range (`invalid-parameter`)", body = Problem, content_type = "application/problem+json"),
        OperatorOnly,
        DatabaseAway,
    ))]
#[tracing::instrument(skip_all)]
async fn stuck(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<StuckPage>, Problem> {
    let limit = int_param(
        &query,
        "limit",
        Some(DEFAULT_STUCK_LIMIT),
        1..=MAX_STUCK_LIMIT,
    )?;
    let cutoff = crate::stuck::cutoff(state.stuck_after);
    let (orders, has_more) = store::stuck_orders(&state.db, &cutoff, limit).await?;
    Ok(Json(StuckPage {
        stuck_after_seconds: state.stuck_after.as_secs(),
        orders,
        has_more,
    }))
}

/// How many orders are in each status, and how many are stuck.
///
/// Every status of the lifecycle is named, with 0 when no order is in it. One read of the
/// whole orders table (`GROUP BY status`): for an operator's page, not for polling (the
/// stuck count is also the gauge `openorder_orders_stuck`).
#[utoipa::path(get, path = "/admin/orders/counts", tag = "operations",
    security(("operatorToken" = [])),
    responses(
        (status = 200, description = "Orders per status, and the stuck ones", body = OrderCounts),
        OperatorOnly,
        DatabaseAway,
    ))]
#[tracing::instrument(skip_all)]
async fn counts(State(state): State<AppState>) -> Result<Json<OrderCounts>, Problem> {
    let cutoff = crate::stuck::cutoff(state.stuck_after);
    let (by_status, stuck) = store::count_by_status(&state.db, &cutoff).await?;
    Ok(Json(OrderCounts {
        counts: by_status
            .into_iter()
            .map(|(status, orders)| (status.as_str().to_string(), orders))
            .collect(),
        stuck,
        stuck_after_seconds: state.stuck_after.as_secs(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_of(values: &[&str]) -> Option<u64> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("prefer", HeaderValue::from_str(value).unwrap());
        }
        requested_wait(&headers)
    }

    #[test]
    fn the_wait_preference_is_read_as_rfc_7240_writes_it() {
        assert_eq!(wait_of(&[]), None);
        assert_eq!(wait_of(&["wait=5"]), Some(5));
        assert_eq!(
            wait_of(&["WAIT = 5"]),
            Some(5),
            "names are case-insensitive"
        );
        assert_eq!(wait_of(&["respond-async, wait=10"]), Some(10));
        assert_eq!(wait_of(&["return=minimal", "wait=3"]), Some(3));
        assert_eq!(
            wait_of(&["wait=7;foo=\"a,b\""]),
            Some(7),
            "parameters ignored"
        );
        assert_eq!(
            wait_of(&["x=\"wait=9, y\", wait=2"]),
            Some(2),
            "quoted commas"
        );
        assert_eq!(wait_of(&["wait=0"]), Some(0));
        assert_eq!(wait_of(&["wait=\"4\""]), Some(4));
    }

    #[test]
    fn a_long_wait_is_cut_and_a_malformed_one_ignored() {
        assert_eq!(wait_of(&["wait=3600"]), Some(MAX_WAIT_SECONDS));
        assert_eq!(
            wait_of(&["wait=99999999999999999999999"]),
            Some(MAX_WAIT_SECONDS)
        );
        assert_eq!(wait_of(&["wait"]), None);
        assert_eq!(wait_of(&["wait="]), None);
        assert_eq!(wait_of(&["wait=-1"]), None);
        assert_eq!(wait_of(&["wait=1.5"]), None);
        assert_eq!(wait_of(&["wait=soon"]), None);
        assert_eq!(
            wait_of(&["wait=x, wait=5"]),
            None,
            "only the first wait counts, even malformed"
        );
        assert_eq!(wait_of(&["waiting=5"]), None);
    }
}
