//! `/dead-letters`: every dead letter with its error, attempts, origin, age and replays
//! (inventory-service's `/admin/dlt`, the code `openorder dlt` runs, read as its `Summary`s
//! and its `ReplayResult`s and `RedriveReport`); replay one, a selection
//! (an order's) or all of a topic, with a dry run first, the cap and `force`; and the
//! `FAIL` / `FLAKY` fault switches (`/admin/faults`).
//!
//! The redrive workbench: a filter (error class, original topic, text in the error) that
//! narrows the table and redrives what it matches (`/admin/dlt/redrive`: a preview counts
//! it, a rate paces it); edit and replay one dead letter (`/dead-letters/edit`: its value,
//! a merge patch in a textarea, the schema's errors shown beside it); and the parking lot
//! (`?view=parked`): records that failed again after a replay, with their history.
//!
//! One module per part: `list` (the list's markup), `replay` (replay and redrive),
//! `edit` (edit and replay one), `faults` (the fault switches).

mod edit;
mod faults;
mod list;
mod replay;

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use platform::dead_letters::read::ReplayResult;
use reqwest::Method;
use serde_json::Value;

use crate::services::Reply;
use crate::session::Session;
use crate::Shared;
use list::{faults_form, filter_form, table};

pub use edit::{edit, edit_form, EditForm};
pub use faults::{faults, FaultsForm};
pub use replay::{redrive, replay, RedriveForm, ReplayForm};

fn age(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "-".into() };
    let secs = ((chrono::Utc::now().timestamp_millis() - ms) / 1000).max(0);
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86399 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86400),
    }
}

/// What the page shows: the DLTs or the parking lot, narrowed by a filter.
#[derive(Clone, Debug, Default)]
struct View {
    parked: bool,
    class: String,
    topic: String,
    text: String,
}

impl View {
    fn from_query(q: &HashMap<String, String>) -> Self {
        let get = |k: &str| q.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        Self {
            parked: get("view") == "parked",
            class: get("class"),
            topic: get("topic"),
            text: get("match"),
        }
    }

    /// `/admin/dlt`'s query for this view.
    fn list_query(&self) -> String {
        let mut query = String::from("limit=1000");
        if self.parked {
            query.push_str("&parked=true");
        }
        for (name, value) in [
            ("class", &self.class),
            ("originalTopic", &self.topic),
            ("match", &self.text),
        ] {
            if !value.is_empty() {
                query.push_str(&format!("&{name}={}", super::encode(value)));
            }
        }
        query
    }

    fn filtered(&self) -> bool {
        !(self.class.is_empty() && self.topic.is_empty() && self.text.is_empty())
    }
}

pub async fn list(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    render(&console, &session, &View::from_query(&q), None).await
}

async fn render(
    console: &Shared,
    session: &Session,
    view: &View,
    outcome: Option<Markup>,
) -> Response {
    let services = &console.services;
    let list_query = view.list_query();
    let (letters, faults) = tokio::join!(
        services.dead_letters(&list_query, session.token()),
        services.get(&services.inventory, "/admin/faults", session.token()),
    );
    let body = html! {
        nav.tabs {
            @if view.parked { a href="/dead-letters" { "Dead letters" } " · " strong { "Parking lot" } }
            @else { strong { "Dead letters" } " · " a href="/dead-letters?view=parked" { "Parking lot" } }
        }
        @if let Some(o) = outcome { (o) }
        @match &faults {
            Ok(f) if f.ok() => (faults_form(session, &f.body)),
            Ok(f) => (super::notice("error", &format!("Faults: inventory-service: {}", f.why()))),
            Err(err) => (super::notice("error", &format!("Faults: {err:#}"))),
        }
        @match &letters {
            Ok(letters) => {
                (filter_form(session, view, letters))
                (table(session, view, letters))
            }
            Err(err) => (super::notice("error", &format!("{err:#}"))),
        }
    };
    let title = if view.parked {
        "Parking lot"
    } else {
        "Dead letters"
    };
    super::page(title, "/dead-letters", session, body).into_response()
}

/// A value the service may leave out (`null`) as text: empty when it did.
fn shown(value: Option<impl std::fmt::Display>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// Who the ledger says replayed: the operator signed in, through the console.
fn by(session: &Session) -> String {
    session
        .operator
        .as_ref()
        .map(|(n, _)| format!("console:{n}"))
        .unwrap_or_else(|| "console".into())
}

/// The rows of replay results.
fn results_table(rows: &[ReplayResult]) -> Markup {
    html! {
        table {
            thead { tr { th { "position" } th { "order" } th { "to" } th { "replay #" } th { "outcome" } } }
            tbody { @for r in rows { tr {
                td { (r.position) } td { (shown(r.order_id)) } td { (r.target_topic) }
                td { (r.replay_count) } td.outcome { (r.outcome) @if r.edited { " (edited)" } }
            } } }
        }
    }
}

/// `method` inventory-service's `path` with `body`, as the operator signed in.
async fn inventory(
    console: &Shared,
    session: &Session,
    method: Method,
    path: &str,
    body: &Value,
) -> anyhow::Result<Reply> {
    let services = &console.services;
    services
        .call(
            method,
            &services.inventory,
            path,
            Some(body),
            session.token(),
        )
        .await
}

#[cfg(test)]
mod tests;
