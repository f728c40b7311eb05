//! The inventory HTTP API: `GET /api/inventory`, `GET /api/inventory/{sku}`,
//! `PUT /api/inventory/{sku}` with `{"available": n}`; and the admin API:
//! `GET`/`PUT /admin/faults` (fault injection), and `/admin/dlt` ([`platform::http::dead_letters`]).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use contracts::values::Sku;
use platform::auth::Routes;
use platform::db::Database;
use platform::http::problems_doc::{
    CustomerAuth, DatabaseAwayOnWrite, JsonBody, NotOneJsonObject, OperatorOnly,
};
use platform::http::{ApiJson, FieldError, Problem};
use serde::Deserialize;

use crate::faults::{FaultChange, FaultConfig, Faults};
use crate::store::{self, StockItem};

/// Most units one SKU may hold.
pub const MAX_AVAILABLE: i64 = 1_000_000_000;

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub faults: Faults,
    pub dlt: platform::http::dead_letters::DltState,
}

impl axum::extract::FromRef<AppState> for Database {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

/// Stock levels are the customers' to read; setting them, faults and dead letters are the operators'.
pub fn routes(state: AppState) -> Routes {
    let dead_letters = platform::http::dead_letters::router(state.dlt.clone());
    let customers = Router::new()
        .route("/api/inventory", get(list))
        .route("/api/inventory/{sku}", get(show))
        .with_state(state.clone());
    let operators = Router::new()
        .route("/api/inventory/{sku}", axum::routing::put(set))
        .route("/admin/faults", get(get_faults).put(set_faults))
        .with_state(state)
        .merge(dead_letters);
    let docs = platform::http::openapi::routes(&openapi());
    Routes::default()
        .public(docs)
        .customers(customers)
        .operators(operators)
}

/// inventory-service's OpenAPI document (`/openapi.json`, `docs/api/inventory-service.openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut api = Api::openapi();
    api.merge(platform::http::dead_letters::Api::openapi());
    platform::http::openapi::document(api)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "OpenOrder inventory-service",
        description = "Stock levels (read by anyone the customer rule admits, set by operators), fault injection and the dead-letter API. Every error is an RFC 9457 problem (application/problem+json)."
    ),
    paths(list, show, set, get_faults, set_faults),
    tags((name = "stock", description = "Available and reserved units per SKU."),
         (name = "faults", description = "For operators: switch the FAIL and FLAKY SKUs."))
)]
struct Api;

/// The fault switches.
#[utoipa::path(get, path = "/admin/faults", tag = "faults", security(("operatorToken" = [])),
    responses((status = 200, description = "The switches", body = FaultConfig), OperatorOnly))]
async fn get_faults(State(state): State<AppState>) -> Json<FaultConfig> {
    Json(state.faults.get())
}

/// Change fault switches (an absent field stays; empty turns it off). Kept across restarts.
#[utoipa::path(put, path = "/admin/faults", tag = "faults", security(("operatorToken" = [])),
    request_body = FaultChange,
    responses(
        (status = 200, description = "The switches now", body = FaultConfig),
        NotOneJsonObject,
        OperatorOnly,
        JsonBody,
        (status = 422, description = "No switch named, or not a SKU", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
async fn set_faults(
    State(state): State<AppState>,
    ApiJson(change): ApiJson<FaultChange>,
) -> Result<Json<FaultConfig>, Problem> {
    if change == FaultChange::default() {
        return Err(Problem::invalid_fields(vec![FieldError::new(
            "",
            "name at least one switch to change: failSku, flakySku",
        )]));
    }
    let mut changes = Vec::new();
    for (field, name, sku) in [
        ("/failSku", "fail", &change.fail_sku),
        ("/flakySku", "flaky", &change.flaky_sku),
    ] {
        let Some(sku) = sku else { continue };
        if !sku.is_empty() {
            Sku::parse(sku)
                .map_err(|e| Problem::invalid_fields(vec![FieldError::new(field, e)]))?;
        }
        changes.push((name, sku.as_str()));
    }
    store::set_fault_switches(&state.db, &changes).await?;
    let config = state.faults.get().with(&change);
    state.faults.set(config.clone());
    tracing::warn!(fail_sku = %config.fail_sku, flaky_sku = %config.flaky_sku, "fault injection changed");
    Ok(Json(config))
}

/// Every SKU's stock.
#[utoipa::path(get, path = "/api/inventory", tag = "stock",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    responses((status = 200, description = "All stock items", body = Vec<StockItem>), CustomerAuth))]
#[tracing::instrument(skip_all)]
async fn list(State(db): State<Database>) -> Result<Json<Vec<StockItem>>, Problem> {
    Ok(Json(store::list_stock(&db).await?))
}

fn parse_sku(sku: &str) -> Result<Sku, Problem> {
    Sku::parse(sku).map_err(|e| Problem::bad_parameter("sku", e))
}

/// One SKU's stock.
#[utoipa::path(get, path = "/api/inventory/{sku}", tag = "stock",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("sku" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 200, description = "The stock item", body = StockItem),
        (status = 400, description = "Not a SKU (`invalid-parameter`)", body = Problem, content_type = "application/problem+json"),
        CustomerAuth,
        (status = 404, description = "No such SKU", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(sku = %sku))]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetStock {
    #[schema(minimum = 0, maximum = 1000000000)]
    available: i64,
}

/// Set a SKU's available units (creating it).
#[utoipa::path(put, path = "/api/inventory/{sku}", tag = "stock",
    security(("operatorToken" = [])),
    params(("sku" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body = SetStock,
    responses(
        (status = 200, description = "The stock item now", body = StockItem),
        (status = 400, description = "Not a SKU, or not one JSON object", body = Problem, content_type = "application/problem+json"),
        OperatorOnly,
        JsonBody,
        (status = 422, description = "`available` out of range", body = Problem, content_type = "application/problem+json"),
        DatabaseAwayOnWrite,
    ))]
#[tracing::instrument(skip_all, fields(sku = %sku))]
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
