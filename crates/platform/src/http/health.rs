//! `GET /health/live` and `GET /health/ready`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rdkafka::producer::FutureProducer;

use crate::db::Database;

/// What the health endpoints check.
#[derive(Clone)]
pub struct Health {
    pub db: Database,
    pub producer: FutureProducer,
    /// Keys the consumers wait on: reported, not a reason to be unready (the HTTP
    /// API works; taking the instance out of a load balancer would not help them).
    pub stalls: crate::stalls::Stalls,
}

/// `GET /health/live` (the process answers) and `GET /health/ready` (database and broker
/// answer: 200, else 503). `checks.consumers` in the latter lists the keys the
/// consumers wait on ([`crate::stalls`]); its status is `STALLED` when one waited too long.
pub fn health_router(health: Health) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(serde_json::json!({"status": "UP"})) }),
        )
        .route("/health/ready", get(ready))
        .with_state(health)
}

async fn ready(State(health): State<Health>) -> Response {
    let db = health.db.ping().await;
    let broker = crate::kafka::ping(&health.producer).await;
    let status = |r: &anyhow::Result<()>| match r {
        Ok(()) => serde_json::json!({"status": "UP"}),
        Err(e) => serde_json::json!({"status": "DOWN", "error": format!("{e:#}")}),
    };
    let waiting = health.stalls.report();
    let consumers = serde_json::json!({
        "status": if waiting.iter().any(|w| w.stalled) { "STALLED" } else { "UP" },
        "waiting": waiting,
    });
    let body = serde_json::json!({
        "status": if db.is_ok() && broker.is_ok() { "UP" } else { "DOWN" },
        "checks": {"database": status(&db), "broker": status(&broker), "consumers": consumers},
    });
    let code = if db.is_ok() && broker.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
