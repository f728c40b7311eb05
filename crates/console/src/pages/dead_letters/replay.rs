//! Replaying dead letters: those picked in the table or all of a topic
//! (`POST /dead-letters/replay`, inventory-service's `/admin/dlt/replay`), and redriving
//! what the filter matches (`POST /dead-letters/redrive`, its `/admin/dlt/redrive`); each a
//! dry run first unless told otherwise.

use axum::extract::{Form, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::html;
use platform::dead_letters::read::{RedriveReport, ReplayResult};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{by, inventory, render, results_table, View};
use crate::form::{FormRejection, HtmlForm};
use crate::pages;
use crate::session::Session;
use crate::Shared;

/// A replay form: the positions picked (`topic:partition:offset`, one `pick` field each)
/// or all of `topic`.
#[derive(Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    view: String,
    #[serde(default = "picked")]
    which: String,
    #[serde(default, deserialize_with = "crate::form::present")]
    topic: Option<String>,
    #[serde(default)]
    pick: Vec<String>,
    #[serde(
        default,
        rename = "maxReplays",
        deserialize_with = "crate::form::present"
    )]
    max_replays: Option<String>,
    /// A checkbox: sent (whatever its value) is on.
    #[serde(default, deserialize_with = "crate::form::present")]
    force: Option<String>,
    #[serde(default = "dry_run")]
    mode: String,
}

/// A form without `which` replays the picked ones, never all of a topic.
fn picked() -> String {
    "picked".into()
}

/// A form without `mode` only previews.
fn dry_run() -> String {
    "dry-run".into()
}

/// At most this many dead letters picked at a time.
const MAX_PICKS: usize = 1000;

impl ReplayForm {
    /// Refuses a form that picks more than [`MAX_PICKS`].
    fn checked(self) -> Result<Self, String> {
        if self.pick.len() > MAX_PICKS {
            return Err(
                "Select at most 1,000 dead letters at a time (or replay all of a topic).".into(),
            );
        }
        Ok(self)
    }

    /// What to ask `/admin/dlt/replay` for, one request each, without the options: all of
    /// the topic, or each position picked that can be read; or why there is nothing to ask.
    fn requests(&self) -> Result<Vec<Value>, &'static str> {
        let mut requests = Vec::new();
        match self.which.as_str() {
            "all" => match &self.topic {
                Some(t) => requests.push(json!({"topic": t, "all": true})),
                None => return Err("Say which topic."),
            },
            _ => {
                for p in &self.pick {
                    let mut parts = p.rsplitn(3, ':');
                    let (Some(o), Some(pt), Some(t)) = (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    let (Ok(o), Ok(pt)) = (o.parse::<i64>(), pt.parse::<i32>()) else {
                        continue;
                    };
                    requests.push(json!({"topic": t, "partition": pt, "offset": o}));
                }
                if requests.is_empty() {
                    return Err("Select at least one dead letter.");
                }
            }
        }
        Ok(requests)
    }
}

/// The list again, with `why` the form was not taken above it.
async fn not_taken(console: &Shared, session: &Session, why: &str) -> Response {
    let notice = pages::notice("error", why);
    render(console, session, &View::default(), Some(notice)).await
}

pub async fn replay(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    form: Result<HtmlForm<ReplayForm>, FormRejection>,
) -> Response {
    let checked = match form {
        Ok(HtmlForm(form)) => form.checked(),
        Err(FormRejection::Fields(err)) => Err(format!("The form could not be read: {err}.")),
        Err(rejection @ FormRejection::Body(_)) => return rejection.into_response(),
    };
    let form = match checked {
        Ok(f) => f,
        Err(err) => return not_taken(&console, &session, &err).await,
    };
    if !pages::csrf_ok(&session, &form.csrf) {
        return pages::csrf_refused();
    }
    let dry_run = form.mode != "replay";
    let max_replays: u32 = form
        .max_replays
        .as_deref()
        .and_then(|m| m.parse().ok())
        .unwrap_or(3);
    let force = form.force.is_some();
    let requests = match form.requests() {
        Ok(requests) => requests,
        Err(why) => return not_taken(&console, &session, why).await,
    };
    let (rows, failures) = send(&console, &session, requests, dry_run, force, max_replays).await;
    let outcome = html! {
        section.outcome #replay-outcome {
            h2 { @if dry_run { "Would replay (dry run: nothing sent)" } @else { "Replayed" } }
            @for f in &failures { (pages::notice("error", f)) }
            (results_table(&rows))
        }
    };
    let view = View {
        parked: form.view == "parked",
        ..View::default()
    };
    render(&console, &session, &view, Some(outcome)).await
}

/// Sends each of `requests` to `/admin/dlt/replay` with the options, as the operator: the
/// results, and what failed, one line each.
async fn send(
    console: &Shared,
    session: &Session,
    requests: Vec<Value>,
    dry_run: bool,
    force: bool,
    max_replays: u32,
) -> (Vec<ReplayResult>, Vec<String>) {
    let who = by(session);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for mut r in requests {
        r["dryRun"] = json!(dry_run);
        r["force"] = json!(force);
        r["maxReplays"] = json!(max_replays);
        r["by"] = json!(who);
        match inventory(console, session, Method::POST, "/admin/dlt/replay", &r).await {
            Ok(reply) if reply.ok() => match reply.read::<Vec<ReplayResult>>("inventory-service") {
                Ok(results) => rows.extend(results),
                Err(err) => failures.push(format!("{err:#}")),
            },
            Ok(reply) => failures.push(reply.why()),
            Err(err) => failures.push(format!("{err:#}")),
        }
    }
    (rows, failures)
}

/// The redrive form: the filter's fields, the rate, and preview or redrive.
#[derive(Deserialize)]
pub struct RedriveForm {
    csrf: String,
    #[serde(default)]
    view: String,
    #[serde(default)]
    class: String,
    #[serde(default)]
    topic: String,
    #[serde(default, rename = "match")]
    text: String,
    #[serde(default)]
    rate: String,
    #[serde(default)]
    mode: String,
}

/// Redrives (or, previewing, counts) what the filter matches (`/admin/dlt/redrive`).
pub async fn redrive(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Form(form): Form<RedriveForm>,
) -> Response {
    if !pages::csrf_ok(&session, &form.csrf) {
        return pages::csrf_refused();
    }
    let view = View {
        parked: form.view == "parked",
        class: form.class.trim().to_string(),
        topic: form.topic.trim().to_string(),
        text: form.text.trim().to_string(),
    };
    let dry_run = form.mode != "redrive";
    let mut body = json!({"dryRun": dry_run, "parked": view.parked, "by": by(&session)});
    for (name, value) in [
        ("class", &view.class),
        ("originalTopic", &view.topic),
        ("match", &view.text),
    ] {
        if !value.is_empty() {
            body[name] = json!(value);
        }
    }
    if let Ok(rate) = form.rate.trim().parse::<f64>() {
        if rate > 0.0 {
            body["rate"] = json!(rate);
        }
    }
    let outcome = match inventory(
        &console,
        &session,
        Method::POST,
        "/admin/dlt/redrive",
        &body,
    )
    .await
    {
        Ok(reply) => match reply.read::<RedriveReport>("inventory-service") {
            Ok(report) => html! {
                section.outcome #redrive-outcome {
                    h2 { @if dry_run { "Preview (dry run: nothing sent)" } @else { "Redriven" } }
                    p.counts {
                        (report.matched) " matched, " (report.selected) " selected, "
                        @if dry_run { (report.would_replay) " would be replayed" }
                        @else { (report.replayed) " replayed in " (report.elapsed_ms) " ms" }
                        @if report.truncated { " (at most 1,000 a time)" }
                    }
                    (results_table(&report.results))
                }
            },
            Err(err) => pages::notice("error", &format!("{err:#}")),
        },
        Err(err) => pages::notice("error", &format!("{err:#}")),
    };
    render(&console, &session, &view, Some(outcome)).await
}

#[cfg(test)]
mod tests;
