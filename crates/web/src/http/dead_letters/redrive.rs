//! `POST /admin/dlt/redrive`: every dead letter a filter matches sent back, paced and
//! bounded, or counted with `dryRun`.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::filter_text::FilterText;
use super::{
    broker_problem, count_replayed, dead_letter_topic, max_replays_error, rate_of, replayed_by,
    DltState, DEFAULT_MAX_REPLAYS,
};
use crate::http::problems_doc::{BrokerAwayOrBusy, JsonBody, NotOneJsonObject, OperatorOnly};
use crate::http::{ApiJson, FieldError, Problem};
use dead_letters::read::{self, RedriveReport, RedriveRequest};

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
    let mut errors: Vec<FieldError> = max_replays_error(body.max_replays).into_iter().collect();
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
        by: replayed_by(body.by, caller),
    };
    let _permit = state.scan()?;
    let report = read::redrive(&state.kafka, &request)
        .await
        .map_err(broker_problem)?;
    count_replayed(&state, &report.results);
    Ok(Json(report))
}
