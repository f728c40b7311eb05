//! `GET /health/live` and `GET /health/ready`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rdkafka::producer::FutureProducer;

use store::db::Database;

/// What the health endpoints check.
#[derive(Clone)]
pub struct Health {
    pub db: Database,
    pub producer: FutureProducer,
    /// Keys the consumers wait on: reported, not a reason to be unready (the HTTP
    /// API works; taking the instance out of a load balancer would not help them).
    pub stalls: messaging::stalls::Stalls,
}

/// `GET /health/live` (the process answers) and `GET /health/ready` (database and broker
/// answer, and the database commits: 200, else 503). `checks.consumers` in the latter lists the keys the
/// consumers wait on ([`messaging::stalls`]); its status is `STALLED` when one waited too long.
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
    let (db, broker) = checks(&health).await;
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

/// Whether `GET /health/ready` would answer 200 now: the same checks, bounded the same
/// (the `openorder_ready` gauge is set from this, every few seconds).
pub async fn is_ready(health: &Health) -> bool {
    let (db, broker) = checks(health).await;
    db.is_ok() && broker.is_ok()
}

/// The database's check and the brokers', side by side: each is bounded (2 s), and both
/// answer within the larger.
async fn checks(health: &Health) -> (anyhow::Result<()>, anyhow::Result<()>) {
    tokio::join!(
        database_ready(&health.db),
        kafka_clients::ping(&health.producer)
    )
}

/// Longest a readiness check waits for the database.
const DATABASE_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The database answers (`SELECT 1`) and, while its commits are failing
/// ([`store::storage`]), commits again (a probe write: readiness comes back as soon as the
/// cause is gone, without waiting for traffic). Bounded by [`DATABASE_CHECK`].
async fn database_ready(db: &Database) -> anyhow::Result<()> {
    let check = async {
        if db.storage().failing().is_some() {
            if let Err(err) = db.probe_commit().await {
                let failing = db.storage().failing();
                let (fault, for_) = failing
                    .map(|f| (f.fault.slug(), f.for_.as_secs()))
                    .unwrap_or(("storage-unavailable", 0));
                anyhow::bail!("cannot commit ({fault}, for {for_} s): {err}");
            }
            return Ok(());
        }
        db.ping().await
    };
    tokio::time::timeout(DATABASE_CHECK, check)
        .await
        .unwrap_or_else(|_| anyhow::bail!("no answer within {} s", DATABASE_CHECK.as_secs()))
}
