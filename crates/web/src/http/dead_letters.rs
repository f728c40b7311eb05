//! The dead-letter admin API, JSON for tools and a UI (the same operations as `openorder dlt`,
//! from [`dead_letters::read`]):
//! - `GET /admin/dlt?topic=T`: summaries of every dead letter (of every `*.DLT` topic by
//!   default; `parked=true`: of every `*.PARKED` parking lot), narrowed by the filter's
//!   parameters (`class`, `originalTopic`, `since`, `until`, `orderIds`, `match`);
//! - `GET /admin/dlt/{topic}/{partition}/{offset}`: one dead letter, headers decoded, value as JSON;
//! - `POST /admin/dlt/replay` with `{"topic", "partition"+"offset" | "orderId" | "all": true,
//!   "dryRun", "force", "maxReplays", "by", "patch", "rate"}`: replay, answering what happened
//!   to each; with `patch` (one position), the value edited and checked against its schema
//!   first (`422 /problems/invalid-edit` listing every error, nothing sent);
//! - `POST /admin/dlt/redrive` with a filter, `dryRun`, `rate` and `limit`: bulk replay,
//!   answering counts and what happened to each.

mod filter_text;
mod listing;
mod redrive;
mod replay;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

use crate::http::{FieldError, Problem};
use dead_letters::read::{self, ReplayResult};
use kafka_clients::KafkaArgs;
use telemetry::metrics::Metrics;

pub use listing::{list, show};
pub use redrive::{redrive, RedriveBody};
pub use replay::{replay, ReplayBody};

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

/// `topic` must be a dead-letter topic (or parking lot) of this deployment: this API reads
/// nothing else.
fn dead_letter_topic(state: &DltState, topic: &str, field: &str) -> Result<(), Problem> {
    if read::is_replayable_topic(&state.kafka.broker, topic) {
        return Ok(());
    }
    Err(Problem::invalid_fields(vec![FieldError::new(
        field,
        format!(
            "must be a dead-letter topic (`{0}<topic>.DLT`) or parking lot (`{0}<topic>.PARKED`) of this deployment, got {topic:?}",
            state.kafka.topics().prefix()
        ),
    )]))
}

/// Most records a second a replay or redrive may be paced to.
pub const MAX_RATE: f64 = 10_000.0;

/// The lowest `rate` a request may ask for, records a second: a redrive of the most records a
/// request takes then lasts at most some 17 minutes, not days.
pub const MIN_RATE: f64 = 1.0;

/// The documentation of the routes above, for the document of the service that serves them.
#[derive(utoipa::OpenApi)]
#[openapi(paths(listing::list, listing::show, replay::replay, redrive::redrive), tags((name = "dead letters", description = "For operators: the dead-letter topics, read and replayed (as `openorder dlt` does).")))]
pub struct Api;

/// The routes above, served by inventory-service's admin port (any service could).
pub fn router(state: DltState) -> Router {
    Router::new()
        .route("/admin/dlt", get(list))
        .route("/admin/dlt/replay", post(replay))
        .route("/admin/dlt/redrive", post(redrive))
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

/// The `rate` of a body, checked: at least [`MIN_RATE`], at most [`MAX_RATE`].
fn rate_of(rate: Option<f64>) -> Result<Option<f64>, Problem> {
    match rate {
        Some(r) if !(r.is_finite() && (MIN_RATE..=MAX_RATE).contains(&r)) => {
            Err(Problem::invalid_fields(vec![FieldError::new(
                "/rate",
                format!("records a second: at least {MIN_RATE}, at most {MAX_RATE}"),
            )]))
        }
        _ => Ok(rate),
    }
}

/// Largest `maxReplays` a replay takes (the schema's maximum).
const MAX_REPLAYS_LIMIT: u32 = 1000;

/// `maxReplays` over [`MAX_REPLAYS_LIMIT`], as the field error both routes answer.
fn max_replays_error(max_replays: Option<u32>) -> Option<FieldError> {
    max_replays
        .filter(|&n| n > MAX_REPLAYS_LIMIT)
        .map(|_| FieldError::new("/maxReplays", format!("at most {MAX_REPLAYS_LIMIT}")))
}

/// Who replays, for the ledger: `by` when given, else the operator's token name (else
/// `admin-api`).
fn replayed_by(by: Option<String>, caller: crate::auth::Caller) -> String {
    by.unwrap_or_else(|| match caller {
        crate::auth::Caller::Operator(name) => name,
        _ => "admin-api".into(),
    })
}

/// Counts each result that was replayed in `openorder_records_replayed_total`, by the
/// topic it went to.
fn count_replayed(state: &DltState, results: &[ReplayResult]) {
    for r in results.iter().filter(|r| r.outcome == "replayed") {
        state.metrics.inc(
            &telemetry::catalogue::RECORDS_REPLAYED,
            &[("topic", &r.target_topic)],
        );
    }
}

/// Runs `read_broker`, a blocking read of the broker, off the async threads on a scan slot
/// ([`DltState::scan`]: `503 /problems/busy` when none is free); a broker that does not
/// answer is `503 /problems/broker-unavailable`.
async fn scanning<T, F>(state: DltState, read_broker: F) -> Result<T, Problem>
where
    T: Send + 'static,
    F: FnOnce(&DltState) -> anyhow::Result<T> + Send + 'static,
{
    let permit = state.scan()?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        read_broker(&state)
    })
    .await
    .map_err(|e| Problem::internal(e.into()))?
    .map_err(broker_problem)
}
