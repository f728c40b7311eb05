//! Edit and replay one dead letter (`/dead-letters/edit`): its value, a JSON merge patch in
//! a textarea, checked by a dry run or replayed edited (inventory-service's
//! `/admin/dlt/replay` with a `patch`), the schema's errors shown beside it.

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use platform::dead_letters::read::ReplayResult;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{by, inventory, results_table};
use crate::pages::{self, field as text};
use crate::session::Session;
use crate::Shared;

/// Which dead letter: where it is kept.
struct Letter<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
}

/// Pretty JSON of a dead letter's value (or its text, or a note that it has none).
fn pretty(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "(no value)".into(),
        Some(v) => serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()),
    }
}

/// The edit page: the dead letter, its value, and the patch form; `errors` (the schema's)
/// beside the textarea, `outcome` above.
async fn render_edit(
    console: &Shared,
    session: &Session,
    which: &Letter<'_>,
    patch: &str,
    outcome: Option<Markup>,
    errors: Option<Markup>,
) -> Response {
    let Letter {
        topic,
        partition,
        offset,
    } = *which;
    let services = &console.services;
    let letter = services
        .get(
            &services.inventory,
            &format!("/admin/dlt/{}/{partition}/{offset}", pages::encode(topic)),
            session.token(),
        )
        .await;
    let body = html! {
        p { a href="/dead-letters" { "← Dead letters" } " · " a href="/dead-letters?view=parked" { "Parking lot" } }
        @if let Some(o) = outcome { (o) }
        @match &letter {
            Ok(r) if r.ok() => {
                h2 { (topic) " " (partition) ":" (offset) }
                p.error { (text(&r.body["summary"], "error")) }
                h3 { "Value" }
                pre.value { (pretty(r.body.get("value"))) }
            }
            Ok(r) => (pages::notice("error", &format!("inventory-service: {}", r.why()))),
            Err(err) => (pages::notice("error", &format!("{err:#}"))),
        }
        form #edit method="post" action="/dead-letters/edit" {
            (pages::csrf(session))
            input type="hidden" name="topic" value=(topic);
            input type="hidden" name="partition" value=(partition);
            input type="hidden" name="offset" value=(offset);
            label for="patch" { "JSON merge patch (RFC 7396): members it names are set, " code { "null" } " removes one, arrays are replaced whole. The edited value must pass its event's schema and keep its orderId and eventId." }
            textarea #patch name="patch" rows="10" cols="80" spellcheck="false" { (patch) }
            @if let Some(e) = errors { (e) }
            p {
                button type="submit" name="mode" value="dry-run" { "Check (dry run)" }
                " "
                button type="submit" name="mode" value="replay" { "Edit and replay" }
            }
        }
    };
    pages::page("Edit and replay", "/dead-letters", session, body).into_response()
}

/// The edit page of no dead letter: it asks which (the partition or offset is missing or
/// not a number).
fn which_letter(session: &Session) -> Response {
    let body = pages::notice(
        "error",
        "Say which dead letter: topic, partition and offset.",
    );
    pages::page("Edit and replay", "/dead-letters", session, body).into_response()
}

/// `GET /dead-letters/edit?topic=…&partition=…&offset=…`: the edit page of one dead letter.
pub async fn edit_form(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let topic = q.get("topic").cloned().unwrap_or_default();
    let partition = q.get("partition").and_then(|p| p.parse::<i32>().ok());
    let offset = q.get("offset").and_then(|o| o.parse::<i64>().ok());
    let (Some(partition), Some(offset)) = (partition, offset) else {
        return which_letter(&session);
    };
    let letter = Letter {
        topic: &topic,
        partition,
        offset,
    };
    render_edit(&console, &session, &letter, "{}", None, None).await
}

/// The edit form.
#[derive(Deserialize)]
pub struct EditForm {
    csrf: String,
    topic: String,
    partition: String,
    offset: String,
    #[serde(default)]
    patch: String,
    #[serde(default)]
    mode: String,
}

/// `POST /dead-letters/edit`: checks the patch (a dry run) or replays the edited value;
/// the schema's errors are shown beside the patch.
pub async fn edit(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Form(form): Form<EditForm>,
) -> Response {
    if !pages::csrf_ok(&session, &form.csrf) {
        return pages::csrf_refused();
    }
    let (Ok(partition), Ok(offset)) = (form.partition.parse::<i32>(), form.offset.parse::<i64>())
    else {
        return which_letter(&session);
    };
    let letter = Letter {
        topic: &form.topic,
        partition,
        offset,
    };
    let again = |outcome: Option<Markup>, errors: Option<Markup>| {
        render_edit(&console, &session, &letter, &form.patch, outcome, errors)
    };
    let patch: Value = match serde_json::from_str(form.patch.trim()) {
        Ok(patch) => patch,
        Err(err) => {
            let errors = pages::notice("error", &format!("The patch is not JSON: {err}"));
            return again(None, Some(errors)).await;
        }
    };
    let dry_run = form.mode != "replay";
    let body = json!({
        "topic": form.topic, "partition": partition, "offset": offset,
        "patch": patch, "dryRun": dry_run, "by": by(&session),
    });
    match inventory(&console, &session, Method::POST, "/admin/dlt/replay", &body).await {
        Ok(reply) if reply.ok() => {
            let outcome = match reply.read::<Vec<ReplayResult>>("inventory-service") {
                Ok(rows) => html! {
                    section.outcome #edit-outcome {
                        h2 { @if dry_run { "The edit passes (dry run: nothing sent)" } @else { "Edited and replayed" } }
                        (results_table(&rows))
                    }
                },
                Err(err) => pages::notice("error", &format!("{err:#}")),
            };
            again(Some(outcome), None).await
        }
        Ok(reply) if reply.status == 422 => {
            let listed = reply
                .body
                .get("errors")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let errors = html! {
                section.schema-errors #edit-errors {
                    (pages::notice("error", &reply.why()))
                    @if !listed.is_empty() {
                        ul { @for e in &listed { li { code { (text(e, "field")) } ": " (text(e, "message")) } } }
                    }
                    p { "Nothing was sent." }
                }
            };
            again(None, Some(errors)).await
        }
        Ok(reply) => {
            let outcome = pages::notice("error", &format!("inventory-service: {}", reply.why()));
            again(Some(outcome), None).await
        }
        Err(err) => again(Some(pages::notice("error", &format!("{err:#}"))), None).await,
    }
}
