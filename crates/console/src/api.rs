//! The console's data as JSON, for scripts and tests: the same reads the pages make.
//! - `GET /api/overview`: [`crate::live::Snapshot`];
//! - `GET /api/history`: the overview's samples of the last minutes, oldest first
//!   ([`crate::history::Sample`]), and how often they are taken;
//! - `GET /api/topics`: every topic with partitions and watermarks;
//! - `GET /api/topics/{topic}/records?partition&offset&time&key&type&q&limit`: a page;
//! - `GET /api/orders/{id}/timeline`: [`crate::timeline::Timeline`].
//!
//! Errors are RFC 9457 problems.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use platform::http::Problem;
use serde::Serialize;

use crate::history::Sample;
use crate::session::Session;
use crate::Shared;

pub fn router() -> Router<Shared> {
    Router::new()
        .route("/overview", get(overview))
        .route("/history", get(history))
        .route("/topics", get(topics))
        .route("/topics/{topic}/records", get(records))
        .route("/orders/{id}/timeline", get(timeline))
}

fn broker_problem(err: anyhow::Error) -> Response {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "broker-unavailable",
        "Broker unavailable",
        format!("{err:#}"),
    )
    .into_response()
}

async fn overview(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    Json(&*console.live.snapshot(&console, session.token()).await).into_response()
}

/// `GET /api/history`'s answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct History {
    /// How often a sample is taken, in milliseconds.
    every_ms: u64,
    samples: Vec<Sample>,
}

async fn history(State(console): State<Shared>) -> Response {
    let every = console.history.every().as_millis();
    Json(History {
        every_ms: u64::try_from(every).unwrap_or(u64::MAX),
        samples: console.history.samples(),
    })
    .into_response()
}

async fn topics(State(console): State<Shared>) -> Response {
    let c = console.clone();
    match crate::blocking(move || c.readers.topics()).await {
        Ok(t) => Json(t).into_response(),
        Err(err) => broker_problem(err),
    }
}

async fn records(
    State(console): State<Shared>,
    Path(topic): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = match crate::pages::topics::browse_query(&q) {
        Ok(query) => query,
        Err(err) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "Invalid parameter",
                err,
            )
            .into_response()
        }
    };
    let c = console.clone();
    let t = topic.clone();
    let found = crate::blocking(move || c.readers.browse(&t, &query)).await;
    match found {
        Ok(Some((_, page))) => Json(page).into_response(),
        Ok(None) => Problem::not_found(format!("no topic {topic:?}")).into_response(),
        Err(err) => broker_problem(err),
    }
}

async fn timeline(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    match id.parse::<i64>() {
        Ok(id) if id > 0 => {
            Json(crate::timeline::gather(&console, session.token(), id).await).into_response()
        }
        _ => Problem::bad_parameter("id", "an order id is a positive whole number").into_response(),
    }
}
