//! `POST /admin/dlt/replay`: dead letters sent back to their topic, chosen by position,
//! order id or all; one of them edited first with a JSON merge patch.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::{
    broker_problem, count_replayed, dead_letter_topic, max_replays_error, rate_of, replayed_by,
    DltState, DEFAULT_MAX_REPLAYS,
};
use crate::http::problems_doc::{BrokerAway, JsonBody, NotOneJsonObject, OperatorOnly};
use crate::http::{ApiJson, FieldError, Problem};
use dead_letters::read::{self, InvalidEdit, ReplayRequest, ReplayResult, Selection};

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
    if let Some(error) = max_replays_error(body.max_replays) {
        return Err(Problem::invalid_fields(vec![error]));
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
        by: replayed_by(body.by, caller),
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
    count_replayed(&state, &results);
    Ok(Json(results))
}
