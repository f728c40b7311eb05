//! The operators' view of orders: those stuck PENDING (`GET /admin/orders/stuck`) and the
//! counts by status (`GET /admin/orders/counts`).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use contracts::api::{OrderCounts, StuckPage};
use platform::http::problems_doc::{DatabaseAway, OperatorOnly};
use platform::http::Problem;

use super::{int_param, AppState};
use crate::store;

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
pub(super) async fn stuck(
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
pub(super) async fn counts(State(state): State<AppState>) -> Result<Json<OrderCounts>, Problem> {
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
