//! An order's event stream (`GET /api/orders/{id}/events`): the order at once, then each
//! time its status changes, until a terminal status.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use contracts::lifecycle;
use platform::auth::Caller;
use platform::db::Database;
use platform::http::problems_doc::CustomerAuth;
use platform::http::Problem;

use super::prefer::too_many_waiters;
use super::{order_not_found, parse_order_id, AppState};
use crate::domain::OrderStatus;
use crate::store;
use crate::waits::{Watcher, Woke};

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
pub(super) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let order_id = parse_order_id(&id)?;
    store::get_order(&state.db, order_id)
        .await?
        .filter(|order| caller.may_see(order.user_id))
        .ok_or_else(|| order_not_found(&id))?;
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
