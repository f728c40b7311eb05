//! `GET /api/notifications?orderId=`: an order's notifications, or the latest 100.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use platform::db::Database;
use platform::http::Problem;

use crate::store::{self, Notification};

pub fn router(db: Database) -> Router {
    Router::new()
        .route("/api/notifications", get(list))
        .with_state(db)
}

#[tracing::instrument(skip(db))]
async fn list(
    State(db): State<Database>,
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
    Ok(Json(store::list(&db, order_id, 100).await?))
}
