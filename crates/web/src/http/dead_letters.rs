//! The dead-letter admin API, JSON for tools and a UI (the same operations as `openorder dlt`,
//! from [`messaging::dead_letters::read`]):
//! - `GET /admin/dlt?topic=T`: summaries of every dead letter (of every `*.DLT` topic by default);
//! - `GET /admin/dlt/{topic}/{partition}/{offset}`: one dead letter, headers decoded, value as JSON;
//! - `POST /admin/dlt/replay` with `{"topic", "partition"+"offset" | "orderId" | "all": true,
//!   "dryRun", "force", "maxReplays", "by"}`: replay, answering what happened to each.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use serde::Deserialize;

use crate::http::{ApiJson, FieldError, Problem};
use kafka_clients::KafkaArgs;
use messaging::dead_letters::read::{self, ReplayRequest, ReplayResult, Selection, Summary};
use telemetry::metrics::Metrics;

/// Default cap on `openorder-replay-count`.
pub const DEFAULT_MAX_REPLAYS: u32 = 3;

/// Most dead letters one list answers (`?limit=`, default [`DEFAULT_LIMIT`]).
pub const MAX_LIMIT: usize = 1_000;
pub const DEFAULT_LIMIT: usize = 100;
/// Most scans of dead-letter topics at once; one more is `503 /problems/busy`.
pub const MAX_SCANS: usize = 2;

#[derive(Clone)]
pub struct DltState {
    pub kafka: KafkaArgs,
    pub metrics: Metrics,
    scans: std::sync::Arc<tokio::sync::Semaphore>,
}

impl DltState {
    pub fn new(kafka: KafkaArgs, metrics: Metrics) -> Self {
        Self {
            kafka,
            metrics,
            scans: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_SCANS)),
        }
    }

    /// A scan slot, or `503 /problems/busy` when [`MAX_SCANS`] are running.
    fn scan(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Problem> {
        self.scans.clone().try_acquire_owned().map_err(|_| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "Busy",
                format!("{MAX_SCANS} dead-letter scans are already running; try again shortly"),
            )
        })
    }
}

/// `topic` must be a dead-letter topic of this deployment: this API reads nothing else.
fn dead_letter_topic(state: &DltState, topic: &str, field: &str) -> Result<(), Problem> {
    if read::is_dead_letter_topic(&state.kafka.broker, topic) {
        return Ok(());
    }
    Err(Problem::invalid_fields(vec![FieldError::new(
        field,
        format!(
            "must be a dead-letter topic of this deployment (`{}<topic>.DLT`), got {topic:?}",
            state.kafka.topics().prefix()
        ),
    )]))
}

/// The documentation of the routes above, for the document of the service that serves them.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, show, replay), tags((name = "dead letters", description = "For operators: the dead-letter topics, read and replayed (as `openorder dlt` does).")))]
pub struct Api;

/// The routes above, served by inventory-service's admin port (any service could).
pub fn router(state: DltState) -> Router {
    Router::new()
        .route("/admin/dlt", get(list))
        .route("/admin/dlt/replay", post(replay))
        .route("/admin/dlt/{topic}/{partition}/{offset}", get(show))
        .with_state(state)
}

fn broker_problem(err: anyhow::Error) -> Problem {
    tracing::warn!(error = format!("{err:#}"), "dead-letter request failed");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "broker-unavailable",
        "Broker unavailable",
        format!("{err:#}"),
    )
}

/// Dead letters, oldest first: error, attempts, origin, replays.
#[utoipa::path(get, path = "/admin/dlt", tag = "dead letters",
    security(("operatorToken" = [])),
    params(
        ("topic" = Option<String>, Query, description = "One dead-letter topic (`<prefix><topic>.DLT`); default: all of them", pattern = "[.]DLT$"),
        ("limit" = Option<usize>, Query, description = "1 to 1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "Summaries", body = Vec<Summary>),
        (status = 400, description = "`limit` out of range (`invalid-parameter`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid operator token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer's token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`topic` is not a dead-letter topic of this deployment", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker did not answer, or too many scans at once; retry", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<DltState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Summary>>, Problem> {
    let topic = query.get("topic").cloned();
    if let Some(topic) = &topic {
        dead_letter_topic(&state, topic, "topic")?;
    }
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-parameter",
                    "Invalid parameter",
                    format!("limit must be 1 to {MAX_LIMIT}, got {raw:?}"),
                )
            })?,
    };
    let permit = state.scan()?;
    let summaries = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        read::summaries(&state.kafka.broker, topic.as_deref(), limit)
    })
    .await
    .map_err(|e| Problem::internal(e.into()))?
    .map_err(broker_problem)?;
    Ok(Json(summaries))
}

/// One dead letter with its headers and value.
#[utoipa::path(get, path = "/admin/dlt/{topic}/{partition}/{offset}", tag = "dead letters",
    security(("operatorToken" = [])),
    params(
        ("topic" = String, Path, description = "A dead-letter topic"),
        ("partition" = i32, Path, minimum = 0), ("offset" = i64, Path, minimum = 0),
    ),
    responses(
        (status = 200, description = "The dead letter", body = serde_json::Value),
        (status = 400, description = "`partition` or `offset` is not an integer in range", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid operator token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer's token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No dead letter there (or not a dead-letter topic)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker did not answer; retry", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<DltState>,
    Path((topic, partition, offset)): Path<(String, i32, i64)>,
) -> Result<Json<serde_json::Value>, Problem> {
    if !read::is_dead_letter_topic(&state.kafka.broker, &topic) {
        return Err(Problem::not_found(format!(
            "{topic} is not a dead-letter topic"
        )));
    }
    let permit = state.scan()?;
    let letter = {
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            read::read_one(&state.kafka.broker, &topic, partition, offset)
        })
        .await
        .map_err(|e| Problem::internal(e.into()))?
        .map_err(broker_problem)?
    };
    letter.map(|d| Json(d.detail())).ok_or_else(|| {
        Problem::not_found(format!("no dead letter at {topic}/{partition}/{offset}"))
    })
}

/// Which dead letters to send back to their topic: exactly one of `partition` and
/// `offset`, `orderId`, or `all: true`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayBody {
    #[schema(pattern = "[.]DLT$")]
    topic: String,
    partition: Option<i32>,
    offset: Option<i64>,
    order_id: Option<i64>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    force: bool,
    /// Refuse a dead letter replayed this many times already (default 3) unless `force`.
    #[schema(minimum = 0, maximum = 1000)]
    max_replays: Option<u32>,
    /// Who replays, for the ledger (default: the operator's token name).
    by: Option<String>,
}

/// Largest `maxReplays` a replay takes (the schema's maximum).
const MAX_REPLAYS_LIMIT: u32 = 1000;

/// Replay dead letters (or preview with `dryRun`).
#[utoipa::path(post, path = "/admin/dlt/replay", tag = "dead letters",
    security(("operatorToken" = [])),
    request_body = ReplayBody,
    responses(
        (status = 200, description = "What happened to each selected dead letter", body = Vec<ReplayResult>),
        (status = 400, description = "Not one JSON object", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid operator token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer's token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No dead letter at that position", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a dead-letter topic, or not exactly one selection", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker did not answer; retry", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn replay(
    State(state): State<DltState>,
    caller: crate::auth::Caller,
    ApiJson(body): ApiJson<ReplayBody>,
) -> Result<Json<Vec<ReplayResult>>, Problem> {
    dead_letter_topic(&state, &body.topic, "/topic")?;
    if body.max_replays.is_some_and(|n| n > MAX_REPLAYS_LIMIT) {
        return Err(Problem::invalid_fields(vec![FieldError::new(
            "/maxReplays",
            format!("at most {MAX_REPLAYS_LIMIT}"),
        )]));
    }
    let selection = match (body.partition, body.offset, body.order_id, body.all) {
        (Some(partition), Some(offset), None, false) => Selection::Position { partition, offset },
        (None, None, Some(id), false) => Selection::OrderId(id),
        (None, None, None, true) => Selection::All,
        _ => {
            return Err(Problem::invalid_fields(vec![FieldError::new(
                "/",
                "say which, exactly one of: partition and offset, orderId, or all: true",
            )]))
        }
    };
    let request = ReplayRequest {
        topic: body.topic.clone(),
        selection,
        dry_run: body.dry_run,
        force: body.force,
        max_replays: body.max_replays.unwrap_or(DEFAULT_MAX_REPLAYS),
        by: body.by.unwrap_or_else(|| match caller {
            crate::auth::Caller::Operator(name) => name,
            _ => "admin-api".into(),
        }),
    };
    let _permit = state.scan()?;
    let results = read::replay(&state.kafka, &request).await.map_err(|err| {
        if err.to_string().starts_with("no dead letter at") {
            Problem::not_found(err.to_string())
        } else {
            broker_problem(err)
        }
    })?;
    for r in results.iter().filter(|r| r.outcome == "replayed") {
        state.metrics.inc(
            "openorder_records_replayed_total",
            &[("topic", &r.target_topic)],
        );
    }
    Ok(Json(results))
}
