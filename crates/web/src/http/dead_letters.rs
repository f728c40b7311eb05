//! The dead-letter admin API, JSON for tools and a UI (the same operations as `openorder dlt`,
//! from [`messaging::dead_letters::read`]):
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

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use serde::Deserialize;

use crate::http::problems_doc::{
    BrokerAway, BrokerAwayOrBusy, JsonBody, NotOneJsonObject, OperatorOnly,
};
use crate::http::{ApiJson, FieldError, Problem};
use kafka_clients::KafkaArgs;
use messaging::dead_letters::filter::{parse_order_ids, parse_time};
use messaging::dead_letters::read::{
    self, Filter, InvalidEdit, Listing, RedriveReport, RedriveRequest, ReplayRequest, ReplayResult,
    Selection, Summary,
};
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

/// The filter's fields, as text (a query or a body), each checked: errors name `field`
/// under `at` (`""` for query parameters, `/` for a body's JSON pointers).
#[derive(Default)]
struct FilterText<'a> {
    class: Option<&'a str>,
    original_topic: Option<&'a str>,
    since: Option<&'a str>,
    until: Option<&'a str>,
    order_ids: Option<&'a str>,
    text: Option<&'a str>,
}

impl FilterText<'_> {
    fn parse(&self, at: &str) -> Result<Filter, Vec<FieldError>> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        fn non_empty(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let mut errors = Vec::new();
        let mut time = |name: &str, v: Option<&str>| {
            non_empty(v).and_then(|v| match parse_time(v, now_ms) {
                Ok(ms) => Some(ms),
                Err(message) => {
                    errors.push(FieldError::new(format!("{at}{name}"), message));
                    None
                }
            })
        };
        let since_ms = time("since", self.since);
        let until_ms = time("until", self.until);
        let order_ids = non_empty(self.order_ids).and_then(|v| match parse_order_ids(v) {
            Ok(range) => Some(range),
            Err(message) => {
                errors.push(FieldError::new(format!("{at}orderIds"), message));
                None
            }
        });
        if errors.is_empty() {
            Ok(Filter {
                class: non_empty(self.class).map(str::to_string),
                original_topic: non_empty(self.original_topic).map(str::to_string),
                since_ms,
                until_ms,
                order_ids,
                text: non_empty(self.text).map(str::to_string),
            })
        } else {
            Err(errors)
        }
    }
}

/// The documentation of the routes above, for the document of the service that serves them.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, show, replay, redrive), tags((name = "dead letters", description = "For operators: the dead-letter topics, read and replayed (as `openorder dlt` does).")))]
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

/// Dead letters, oldest first: error, attempts, origin, replays, history. The parking lots
/// with `parked=true`. The filter's parameters narrow the list (each given must hold).
#[utoipa::path(get, path = "/admin/dlt", tag = "dead letters",
    security(("operatorToken" = [])),
    params(
        ("topic" = Option<String>, Query, description = "One dead-letter topic (`<prefix><topic>.DLT`) or parking lot (`<prefix><topic>.PARKED`); default: all the DLTs (or all the parking lots with `parked=true`)", pattern = "[.](DLT|PARKED)$"),
        ("parked" = Option<bool>, Query, description = "List the parking lots (records that failed again after a replay) instead of the DLTs"),
        ("limit" = Option<usize>, Query, description = "1 to 1000 (default 100)", minimum = 1, maximum = 1000),
        ("class" = Option<String>, Query, description = "Only this error class (`kafka_dlt-exception-fqcn`), exactly"),
        ("originalTopic" = Option<String>, Query, description = "Only records that came from this topic (with or without the prefix)"),
        ("since" = Option<String>, Query, description = "Dead-lettered at or after: RFC 3339, or an age (`2h`: two hours ago)"),
        ("until" = Option<String>, Query, description = "Dead-lettered before: RFC 3339, or an age"),
        ("orderIds" = Option<String>, Query, description = "Order ids `A-B` (both included) or one id"),
        ("match" = Option<String>, Query, description = "Text the error (class and message) contains, case ignored"),
    ),
    responses(
        (status = 200, description = "Summaries", body = Vec<Summary>),
        (status = 400, description = "`limit` or `parked` out of range (`invalid-parameter`)", body = Problem, content_type = "application/problem+json"),
        OperatorOnly,
        (status = 422, description = "`topic` is not a dead-letter topic of this deployment, or a filter parameter does not parse", body = Problem, content_type = "application/problem+json"),
        BrokerAwayOrBusy,
    ))]
pub async fn list(
    State(state): State<DltState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Summary>>, Problem> {
    let topic = query.get("topic").cloned();
    if let Some(topic) = &topic {
        dead_letter_topic(&state, topic, "topic")?;
    }
    let parked = match query.get("parked").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Problem::bad_parameter(
                "parked",
                format!("true or false, got {other:?}"),
            ))
        }
    };
    let filter = FilterText {
        class: query.get("class").map(String::as_str),
        original_topic: query.get("originalTopic").map(String::as_str),
        since: query.get("since").map(String::as_str),
        until: query.get("until").map(String::as_str),
        order_ids: query.get("orderIds").map(String::as_str),
        text: query.get("match").map(String::as_str),
    }
    .parse("")
    .map_err(Problem::invalid_fields)?;
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
    let listing = Listing {
        topic,
        parked,
        filter,
        max: limit,
    };
    let permit = state.scan()?;
    let summaries = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        read::summaries_of(&state.kafka.broker, &listing)
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
        ("topic" = String, Path, description = "A dead-letter topic or parking lot"),
        ("partition" = i32, Path, minimum = 0), ("offset" = i64, Path, minimum = 0),
    ),
    responses(
        (status = 200, description = "The dead letter", body = serde_json::Value),
        (status = 400, description = "`partition` or `offset` is not an integer in range", body = Problem, content_type = "application/problem+json"),
        OperatorOnly,
        (status = 404, description = "No dead letter there (or not a dead-letter topic)", body = Problem, content_type = "application/problem+json"),
        BrokerAway,
    ))]
pub async fn show(
    State(state): State<DltState>,
    Path((topic, partition, offset)): Path<(String, i32, i64)>,
) -> Result<Json<serde_json::Value>, Problem> {
    if !read::is_replayable_topic(&state.kafka.broker, &topic) {
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
/// `offset`, `orderId`, or `all: true`; from a DLT or a parking lot.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayBody {
    #[schema(pattern = "[.](DLT|PARKED)$")]
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
    /// Edit and retry: a JSON merge patch (RFC 7396) applied to the value of the one dead
    /// letter at `partition` and `offset` before it is sent. The edited value must pass its
    /// event's JSON Schema and keep its `orderId` and `eventId`, else `422
    /// /problems/invalid-edit` lists every error and nothing is sent. The record carries
    /// `openorder-edited: true` and `openorder-patch-sha256`; the ledger keeps the patch;
    /// the dead letter stays where it is. Arrays are replaced whole (`{"items": [...]}`).
    patch: Option<serde_json::Value>,
    /// Records a second, at most (default: no limit).
    #[schema(minimum = 1, maximum = 10000)]
    rate: Option<f64>,
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

/// An edit refused: `422 /problems/invalid-edit`, each error's field a JSON pointer into
/// the edited value under `/value`.
fn edit_refused(invalid: &InvalidEdit) -> Problem {
    let errors = invalid
        .errors
        .iter()
        .map(|(pointer, message)| FieldError::new(format!("/value{pointer}"), message.clone()))
        .collect();
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-edit",
        "Edited value refused",
        invalid.to_string(),
    )
    .with_errors(errors)
}

/// Largest `maxReplays` a replay takes (the schema's maximum).
const MAX_REPLAYS_LIMIT: u32 = 1000;

/// Replay dead letters (or preview with `dryRun`); one edited with `patch`.
#[utoipa::path(post, path = "/admin/dlt/replay", tag = "dead letters",
    security(("operatorToken" = [])),
    request_body = ReplayBody,
    responses(
        (status = 200, description = "What happened to each selected dead letter", body = Vec<ReplayResult>),
        NotOneJsonObject,
        OperatorOnly,
        JsonBody,
        (status = 404, description = "No dead letter at that position", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a dead-letter topic, not exactly one selection, a patch without a position (`invalid-fields`); or the edited value breaks its event's schema, each error's field a pointer under `/value` (`invalid-edit`): nothing was sent", body = Problem, content_type = "application/problem+json"),
        BrokerAway,
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
    let rate = rate_of(body.rate)?;
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
        patch: body.patch,
        rate,
    };
    if request.patch.is_some() && !matches!(request.selection, Selection::Position { .. }) {
        return Err(Problem::invalid_fields(vec![FieldError::new(
            "/patch",
            "a patch edits one dead letter: give its partition and offset",
        )]));
    }
    let _permit = state.scan()?;
    let results = read::replay(&state.kafka, &request).await.map_err(|err| {
        if let Some(invalid) = err.downcast_ref::<InvalidEdit>() {
            edit_refused(invalid)
        } else if err.to_string().starts_with("no dead letter at") {
            Problem::not_found(err.to_string())
        } else {
            broker_problem(err)
        }
    })?;
    for r in results.iter().filter(|r| r.outcome == "replayed") {
        state.metrics.inc(
            &telemetry::catalogue::RECORDS_REPLAYED,
            &[("topic", &r.target_topic)],
        );
    }
    Ok(Json(results))
}

/// Which dead letters a bulk redrive takes (every field given must hold), and how it sends
/// them.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedriveBody {
    /// One dead-letter topic or parking lot; default: every DLT (every parking lot with
    /// `parked`).
    #[schema(pattern = "[.](DLT|PARKED)$")]
    topic: Option<String>,
    /// Every parking lot instead of every DLT (without `topic`).
    #[serde(default)]
    parked: bool,
    /// The error class (`kafka_dlt-exception-fqcn`), exactly.
    class: Option<String>,
    /// The topic the records came from (with or without the prefix).
    original_topic: Option<String>,
    /// Dead-lettered at or after: RFC 3339, or an age (`2h`: two hours ago).
    since: Option<String>,
    /// Dead-lettered before: RFC 3339, or an age.
    until: Option<String>,
    /// Order ids `A-B` (both included), or one id.
    order_ids: Option<String>,
    /// Text the error (class and message) contains, case ignored.
    #[serde(rename = "match")]
    text: Option<String>,
    /// Count and list exactly what would go; send nothing.
    #[serde(default)]
    dry_run: bool,
    /// Replay even dead letters the ledger says were replayed already.
    #[serde(default)]
    force: bool,
    /// Refuse a dead letter replayed this many times already (default 3).
    #[schema(minimum = 0, maximum = 1000)]
    max_replays: Option<u32>,
    /// Records a second, at most (default: no limit): a redrive of n records at rate r
    /// takes at least (n − 1) / r seconds.
    #[schema(minimum = 1, maximum = 10000)]
    rate: Option<f64>,
    /// Most dead letters taken, 1 to 1000 (default 1000); what matched beyond is counted.
    #[schema(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Who redrives, for the ledger (default: the operator's token name).
    by: Option<String>,
}

/// Replay every dead letter a filter matches, paced and bounded (or count them with `dryRun`).
#[utoipa::path(post, path = "/admin/dlt/redrive", tag = "dead letters",
    security(("operatorToken" = [])),
    request_body = RedriveBody,
    responses(
        (status = 200, description = "Counts (matched, selected, replayed or would replay) and what happened to each selected dead letter", body = RedriveReport),
        NotOneJsonObject,
        OperatorOnly,
        JsonBody,
        (status = 422, description = "Not a dead-letter topic, a filter field that does not parse, `rate` or `limit` out of range", body = Problem, content_type = "application/problem+json"),
        BrokerAwayOrBusy,
    ))]
pub async fn redrive(
    State(state): State<DltState>,
    caller: crate::auth::Caller,
    ApiJson(body): ApiJson<RedriveBody>,
) -> Result<Json<RedriveReport>, Problem> {
    if let Some(topic) = &body.topic {
        dead_letter_topic(&state, topic, "/topic")?;
    }
    let mut errors = Vec::new();
    if body.max_replays.is_some_and(|n| n > MAX_REPLAYS_LIMIT) {
        errors.push(FieldError::new(
            "/maxReplays",
            format!("at most {MAX_REPLAYS_LIMIT}"),
        ));
    }
    if body
        .limit
        .is_some_and(|n| !(1..=read::MAX_PER_REQUEST).contains(&n))
    {
        errors.push(FieldError::new(
            "/limit",
            format!("1 to {}", read::MAX_PER_REQUEST),
        ));
    }
    let filter = FilterText {
        class: body.class.as_deref(),
        original_topic: body.original_topic.as_deref(),
        since: body.since.as_deref(),
        until: body.until.as_deref(),
        order_ids: body.order_ids.as_deref(),
        text: body.text.as_deref(),
    }
    .parse("/");
    let filter = match filter {
        Ok(filter) => Some(filter),
        Err(mut more) => {
            errors.append(&mut more);
            None
        }
    };
    let rate = match rate_of(body.rate) {
        Ok(rate) => rate,
        Err(problem) => {
            errors.extend(problem.errors);
            None
        }
    };
    let Some(filter) = filter.filter(|_| errors.is_empty()) else {
        return Err(Problem::invalid_fields(errors));
    };
    let request = RedriveRequest {
        topic: body.topic,
        parked: body.parked,
        filter,
        dry_run: body.dry_run,
        force: body.force,
        max_replays: body.max_replays.unwrap_or(DEFAULT_MAX_REPLAYS),
        rate,
        limit: body.limit.unwrap_or(read::MAX_PER_REQUEST),
        by: body.by.unwrap_or_else(|| match caller {
            crate::auth::Caller::Operator(name) => name,
            _ => "admin-api".into(),
        }),
    };
    let _permit = state.scan()?;
    let report = read::redrive(&state.kafka, &request)
        .await
        .map_err(broker_problem)?;
    for r in report.results.iter().filter(|r| r.outcome == "replayed") {
        state.metrics.inc(
            &telemetry::catalogue::RECORDS_REPLAYED,
            &[("topic", &r.target_topic)],
        );
    }
    Ok(Json(report))
}
