//! The reading routes: `GET /admin/dlt` (summaries, filtered) and
//! `GET /admin/dlt/{topic}/{partition}/{offset}` (one dead letter).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;

use super::filter_text::FilterText;
use super::{dead_letter_topic, scanning, DltState, DEFAULT_LIMIT, MAX_LIMIT};
use crate::http::problems_doc::{BrokerAway, BrokerAwayOrBusy, OperatorOnly};
use crate::http::Problem;
use dead_letters::read::{self, Listing, Summary};

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
    let summaries = scanning(state, move |state| {
        read::summaries_of(&state.kafka.broker, &listing)
    })
    .await?;
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
    let letter = {
        let topic = topic.clone();
        scanning(state, move |state| {
            read::read_one(&state.kafka.broker, &topic, partition, offset)
        })
        .await?
    };
    letter.map(|d| Json(read::detail(&d))).ok_or_else(|| {
        Problem::not_found(format!("no dead letter at {topic}/{partition}/{offset}"))
    })
}
