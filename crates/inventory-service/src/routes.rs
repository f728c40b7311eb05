//! The inventory HTTP API: `GET /api/inventory`, `GET /api/inventory/{sku}`,
//! `PUT /api/inventory/{sku}` with `{"available": n}`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use contracts::values::Sku;
use platform::db::Database;
use platform::http::{ApiJson, FieldError, Problem};
use serde::Deserialize;

use crate::store::{self, StockItem};

/// Most units one SKU may hold.
pub const MAX_AVAILABLE: i64 = 1_000_000_000;

pub fn router(db: Database) -> Router {
    Router::new()
        .route("/api/inventory", get(list))
        .route("/api/inventory/{sku}", get(show).put(set))
        .with_state(db)
}

#[tracing::instrument(skip_all)]
async fn list(State(db): State<Database>) -> Result<Json<Vec<StockItem>>, Problem> {
    Ok(Json(store::list_stock(&db).await?))
}

fn parse_sku(sku: &str) -> Result<Sku, Problem> {
    Sku::parse(sku).map_err(|e| Problem::bad_parameter("sku", e))
}

#[tracing::instrument(skip(db))]
async fn show(
    State(db): State<Database>,
    Path(sku): Path<String>,
) -> Result<Json<StockItem>, Problem> {
    let sku = parse_sku(&sku)?;
    store::get_stock(&db, sku.as_str())
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no stock item with SKU {sku}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStock {
    available: i64,
}

#[tracing::instrument(skip(db, body))]
async fn set(
    State(db): State<Database>,
    Path(sku): Path<String>,
    ApiJson(body): ApiJson<SetStock>,
) -> Result<Json<StockItem>, Problem> {
    let sku = parse_sku(&sku)?;
    if !(0..=MAX_AVAILABLE).contains(&body.available) {
        return Err(Problem::invalid_fields(vec![FieldError::new(
            "/available",
            format!(
                "must be between 0 and {MAX_AVAILABLE}, got {}",
                body.available
            ),
        )]));
    }
    Ok(Json(
        store::set_available(&db, sku.as_str(), body.available).await?,
    ))
}
