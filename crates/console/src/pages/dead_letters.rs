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

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use platform::dead_letters::read::{RedriveReport, ReplayResult, Summary};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::form::{FormRejection, HtmlForm};
use crate::session::Session;
use crate::Shared;

use super::field as text;

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

/// The filter (it narrows the table, a GET), and the redrive of what it matches (a POST:
/// preview counts it, redrive sends it at the rate given).
fn filter_form(session: &Session, view: &View, letters: &[Summary]) -> Markup {
    let mut classes: Vec<String> = letters
        .iter()
        .filter_map(|l| l.error_class.clone())
        .collect();
    classes.retain(|c| !c.is_empty());
    classes.sort();
    classes.dedup();
    let mut origins: Vec<String> = letters.iter().map(|l| l.original_topic.clone()).collect();
    origins.sort();
    origins.dedup();
    html! {
        form.filter #filter method="get" action="/dead-letters" {
            @if view.parked { input type="hidden" name="view" value="parked"; }
            label { "Error class " input type="text" name="class" list="dlt-classes" value=(view.class) placeholder="any"; }
            datalist #dlt-classes { @for c in &classes { option value=(c) {} } }
            " "
            label { "original topic " input type="text" name="topic" list="dlt-topics" value=(view.topic) placeholder="any"; }
            datalist #dlt-topics { @for t in &origins { option value=(t) {} } }
            " "
            label { "error contains " input type="text" name="match" value=(view.text) placeholder="any text"; }
            " "
            button type="submit" { "Filter" }
            @if view.filtered() { " " a href=(if view.parked { "/dead-letters?view=parked" } else { "/dead-letters" }) { "clear" } }
        }
        form.redrive #redrive method="post" action="/dead-letters/redrive" {
            (super::csrf(session))
            @if view.parked { input type="hidden" name="view" value="parked"; }
            input type="hidden" name="class" value=(view.class);
            input type="hidden" name="topic" value=(view.topic);
            input type="hidden" name="match" value=(view.text);
            @if view.filtered() { "What the filter matches: " } @else { "Every dead letter here: " }
            label { " at most " input type="number" name="rate" value="50" min="1" max="10000"; " a second" }
            " "
            button type="submit" name="mode" value="dry-run" { "Preview (count)" }
            " "
            button type="submit" name="mode" value="redrive" { "Redrive" }
        }
    }
}

fn faults_form(session: &Session, faults: &Value) -> Markup {
    html! {
        form.faults method="post" action="/dead-letters/faults" {
            (super::csrf(session))
            "Faults: orders with an item of SKU "
            label { input type="text" name="failSku" value=(text(faults, "failSku")) placeholder="(off)"; " fail every attempt" }
            ", of SKU "
            label { input type="text" name="flakySku" value=(text(faults, "flakySku")) placeholder="(off)"; " fail their first" }
            " "
            button type="submit" name="set" value="set" { "Set" }
            " "
            button type="submit" name="set" value="off" { "Switch both off" }
        }
    }
}

/// A value the service may leave out (`null`) as text: empty when it did.
fn shown(value: Option<impl std::fmt::Display>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// A parked record's history of replays, one line each.
fn history(l: &Summary) -> Markup {
    html! {
        @if !l.history.is_empty() {
            ol.history {
                @for h in &l.history {
                    li {
                        "from " (h.from) " by " (h.by) " at " (h.at)
                        @if h.edited { " (edited)" }
                        ", after: " (h.error)
                    }
                }
            }
        }
    }
}

/// `/dead-letters/edit?…` for one dead letter.
fn edit_link(l: &Summary) -> String {
    format!(
        "/dead-letters/edit?topic={}&partition={}&offset={}",
        super::encode(&l.topic),
        l.partition,
        l.offset
    )
}

fn table(session: &Session, view: &View, letters: &[Summary]) -> Markup {
    let mut topics: Vec<String> = letters.iter().map(|l| l.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    html! {
        @if letters.is_empty() {
            p { @if view.parked { "Nothing parked." } @else if view.filtered() { "No dead letters match." } @else { "No dead letters." } }
        }
        @else {
            form #replay method="post" action="/dead-letters/replay" {
                (super::csrf(session))
                @if view.parked { input type="hidden" name="view" value="parked"; }
                table.deadletters {
                    thead { tr { th {} th { "topic" } th { "position" } th { "order" } th { "error" } th.num { "attempts" } th { "origin" } th { "age" } th.num { "replayed" } th.num { "replay #" } th {} } }
                    tbody {
                        @for l in letters {
                            @let position = format!("{}:{}:{}", l.topic, l.partition, l.offset);
                            tr data-order=(shown(l.order_id)) {
                                td { input type="checkbox" name="pick" value=(position) aria-label="select"; }
                                td { (l.topic) }
                                td { a href=(super::record_link(&l.topic, l.partition, l.offset)) { (l.partition) ":" (l.offset) } }
                                td { @match l.order_id { None => "-", Some(id) => a href=(format!("/orders/{id}")) { (id) } } }
                                td.error { (l.error) }
                                td.num { (shown(l.attempts)) }
                                td { (l.original_topic) @if l.original_offset.is_some() { "@" (shown(l.original_partition)) ":" (shown(l.original_offset)) } }
                                td { (age(l.timestamp_ms)) }
                                td.num { (l.replayed) }
                                td.num { (l.replay_count) (history(l)) }
                                td { a.edit href=(edit_link(l)) { "edit" } }
                            }
                        }
                    }
                }
                fieldset {
                    legend { "Replay" }
                    label { input type="radio" name="which" value="picked" checked; " the selected" }
                    label { input type="radio" name="which" value="all"; " all of topic " }
                    select name="topic" { @for t in &topics { option value=(t) { (t) } } }
                    label { " at most " input type="number" name="maxReplays" value="3" min="0" max="100"; " replays each" }
                    label { input type="checkbox" name="force" value="true"; " force (again, though replayed before)" }
                    " "
                    button type="submit" name="mode" value="dry-run" { "Preview (dry run)" }
                    " "
                    button type="submit" name="mode" value="replay" { "Replay" }
                }
            }
        }
    }
}

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
        Err(err) => {
            return render(
                &console,
                &session,
                &View::default(),
                Some(super::notice("error", &err)),
            )
            .await
        }
    };
    if !super::csrf_ok(&session, &form.csrf) {
        return super::csrf_refused();
    }
    let dry_run = form.mode != "replay";
    let max_replays: u32 = form
        .max_replays
        .as_deref()
        .and_then(|m| m.parse().ok())
        .unwrap_or(3);
    let force = form.force.is_some();
    let mut requests = Vec::new();
    match form.which.as_str() {
        "all" => match &form.topic {
            Some(t) => requests.push(json!({"topic": t, "all": true})),
            None => {
                return render(
                    &console,
                    &session,
                    &View::default(),
                    Some(super::notice("error", "Say which topic.")),
                )
                .await
            }
        },
        _ => {
            for p in &form.pick {
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
                return render(
                    &console,
                    &session,
                    &View::default(),
                    Some(super::notice("error", "Select at least one dead letter.")),
                )
                .await;
            }
        }
    }
    let who = by(&session);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for mut r in requests {
        r["dryRun"] = json!(dry_run);
        r["force"] = json!(force);
        r["maxReplays"] = json!(max_replays);
        r["by"] = json!(who);
        match console
            .services
            .call(
                Method::POST,
                &console.services.inventory,
                "/admin/dlt/replay",
                Some(&r),
                session.token(),
            )
            .await
        {
            Ok(reply) if reply.ok() => match reply.read::<Vec<ReplayResult>>("inventory-service") {
                Ok(results) => rows.extend(results),
                Err(err) => failures.push(format!("{err:#}")),
            },
            Ok(reply) => failures.push(reply.why()),
            Err(err) => failures.push(format!("{err:#}")),
        }
    }
    let outcome = html! {
        section.outcome #replay-outcome {
            h2 { @if dry_run { "Would replay (dry run: nothing sent)" } @else { "Replayed" } }
            @for f in &failures { (super::notice("error", f)) }
            (results_table(&rows))
        }
    };
    let view = View {
        parked: form.view == "parked",
        ..View::default()
    };
    render(&console, &session, &view, Some(outcome)).await
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
    if !super::csrf_ok(&session, &form.csrf) {
        return super::csrf_refused();
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
    let outcome = match console
        .services
        .call(
            Method::POST,
            &console.services.inventory,
            "/admin/dlt/redrive",
            Some(&body),
            session.token(),
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
            Err(err) => super::notice("error", &format!("{err:#}")),
        },
        Err(err) => super::notice("error", &format!("{err:#}")),
    };
    render(&console, &session, &view, Some(outcome)).await
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
#[allow(clippy::too_many_arguments)]
async fn render_edit(
    console: &Shared,
    session: &Session,
    topic: &str,
    partition: i32,
    offset: i64,
    patch: &str,
    outcome: Option<Markup>,
    errors: Option<Markup>,
) -> Response {
    let services = &console.services;
    let letter = services
        .get(
            &services.inventory,
            &format!("/admin/dlt/{}/{partition}/{offset}", super::encode(topic)),
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
            Ok(r) => (super::notice("error", &format!("inventory-service: {}", r.why()))),
            Err(err) => (super::notice("error", &format!("{err:#}"))),
        }
        form #edit method="post" action="/dead-letters/edit" {
            (super::csrf(session))
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
    super::page("Edit and replay", "/dead-letters", session, body).into_response()
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
        let body = super::notice(
            "error",
            "Say which dead letter: topic, partition and offset.",
        );
        return super::page("Edit and replay", "/dead-letters", &session, body).into_response();
    };
    render_edit(
        &console, &session, &topic, partition, offset, "{}", None, None,
    )
    .await
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
    if !super::csrf_ok(&session, &form.csrf) {
        return super::csrf_refused();
    }
    let (Ok(partition), Ok(offset)) = (form.partition.parse::<i32>(), form.offset.parse::<i64>())
    else {
        let body = super::notice(
            "error",
            "Say which dead letter: topic, partition and offset.",
        );
        return super::page("Edit and replay", "/dead-letters", &session, body).into_response();
    };
    let again = |outcome: Option<Markup>, errors: Option<Markup>| {
        render_edit(
            &console,
            &session,
            &form.topic,
            partition,
            offset,
            &form.patch,
            outcome,
            errors,
        )
    };
    let patch: Value = match serde_json::from_str(form.patch.trim()) {
        Ok(patch) => patch,
        Err(err) => {
            let errors = super::notice("error", &format!("The patch is not JSON: {err}"));
            return again(None, Some(errors)).await;
        }
    };
    let dry_run = form.mode != "replay";
    let body = json!({
        "topic": form.topic, "partition": partition, "offset": offset,
        "patch": patch, "dryRun": dry_run, "by": by(&session),
    });
    match console
        .services
        .call(
            Method::POST,
            &console.services.inventory,
            "/admin/dlt/replay",
            Some(&body),
            session.token(),
        )
        .await
    {
        Ok(reply) if reply.ok() => {
            let outcome = match reply.read::<Vec<ReplayResult>>("inventory-service") {
                Ok(rows) => html! {
                    section.outcome #edit-outcome {
                        h2 { @if dry_run { "The edit passes (dry run: nothing sent)" } @else { "Edited and replayed" } }
                        (results_table(&rows))
                    }
                },
                Err(err) => super::notice("error", &format!("{err:#}")),
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
                    (super::notice("error", &reply.why()))
                    @if !listed.is_empty() {
                        ul { @for e in &listed { li { code { (text(e, "field")) } ": " (text(e, "message")) } } }
                    }
                    p { "Nothing was sent." }
                }
            };
            again(None, Some(errors)).await
        }
        Ok(reply) => {
            let outcome = super::notice("error", &format!("inventory-service: {}", reply.why()));
            again(Some(outcome), None).await
        }
        Err(err) => again(Some(super::notice("error", &format!("{err:#}"))), None).await,
    }
}

#[derive(Deserialize)]
pub struct FaultsForm {
    csrf: String,
    #[serde(rename = "failSku", default)]
    fail_sku: String,
    #[serde(rename = "flakySku", default)]
    flaky_sku: String,
    set: Option<String>,
}

pub async fn faults(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Form(form): Form<FaultsForm>,
) -> Response {
    if !super::csrf_ok(&session, &form.csrf) {
        return super::csrf_refused();
    }
    let body = if form.set.as_deref() == Some("off") {
        json!({"failSku": "", "flakySku": ""})
    } else {
        json!({"failSku": form.fail_sku.trim(), "flakySku": form.flaky_sku.trim()})
    };
    let outcome = match console
        .services
        .call(
            Method::PUT,
            &console.services.inventory,
            "/admin/faults",
            Some(&body),
            session.token(),
        )
        .await
    {
        Ok(r) if r.ok() => super::notice(
            "ok",
            &format!(
                "Faults set: fail SKU {:?}, flaky SKU {:?}.",
                text(&r.body, "failSku"),
                text(&r.body, "flakySku")
            ),
        ),
        Ok(r) => super::notice("error", &format!("inventory-service: {}", r.why())),
        Err(err) => super::notice("error", &format!("{err:#}")),
    };
    render(&console, &session, &View::default(), Some(outcome)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_form_takes_every_pick_and_the_defaults_of_what_it_leaves_out() {
        let form: ReplayForm = crate::form::decode(
            b"csrf=c&pick=orders.DLT%3A0%3A2&pick=a%3Ab%3A1%3A7&force=&maxReplays=",
        )
        .unwrap();
        assert_eq!(form.csrf, "c");
        assert_eq!(form.pick, ["orders.DLT:0:2", "a:b:1:7"]);
        assert_eq!(form.which, "picked");
        assert_eq!(form.mode, "dry-run");
        assert_eq!(form.topic, None);
        assert_eq!(form.force.as_deref(), Some(""));
        assert_eq!(form.max_replays.as_deref(), Some(""));
        assert!(form.checked().is_ok());
    }

    #[test]
    fn a_replay_form_of_all_of_a_topic_keeps_it_even_empty() {
        let form: ReplayForm =
            crate::form::decode(b"which=all&topic=&mode=replay&view=parked").unwrap();
        assert_eq!(form.which, "all");
        assert_eq!(form.topic.as_deref(), Some(""));
        assert_eq!(form.mode, "replay");
        assert_eq!(form.view, "parked");
    }

    #[test]
    fn a_dead_letter_shows_what_the_service_left_out_as_before_and_is_escaped() {
        let letters: Vec<Summary> = serde_json::from_value(json!([{
            "topic": "order.created.DLT", "partition": 0, "offset": 7, "key": null,
            "orderId": null, "error": "Boom: <no>", "attempts": null, "replayCount": 1,
            "replayed": 2, "parked": false, "errorClass": null, "failureKind": null,
            "history": [{
                "from": "order.created.DLT/0/3", "error": "Boom", "attempts": 3,
                "replayCount": 1, "by": "console:ops", "at": "2026-01-01T10:00:00.000Z",
                "edited": true
            }],
            "originalTopic": "order.created", "originalPartition": 1, "originalOffset": null,
            "consumerGroup": null, "timestampMs": null
        }]))
        .expect("GET /admin/dlt's answer");
        let session = crate::session::Sessions::default().open();
        let html = table(&session, &View::default(), &letters).into_string();
        for shown in [
            "<tr data-order=\"\">",
            "value=\"order.created.DLT:0:7\"",
            ">0:7</a>",
            "<td>-</td>",
            "<td class=\"error\">Boom: &lt;no&gt;</td>",
            "<td class=\"num\"></td>",
            "<td>order.created</td>",
            "<td class=\"num\">2</td>",
            "from order.created.DLT/0/3 by console:ops at 2026-01-01T10:00:00.000Z (edited), after: Boom",
            "/dead-letters/edit?topic=order.created.DLT&amp;partition=0&amp;offset=7",
        ] {
            assert!(html.contains(shown), "{shown} in {html}");
        }
    }

    #[test]
    fn replay_results_show_the_order_and_the_edit_only_when_there_is_one() {
        let rows: Vec<ReplayResult> = serde_json::from_value(json!([
            {"position": "t/0/1", "orderId": null, "targetTopic": "order.created",
             "replayCount": 1, "outcome": "would-replay"},
            {"position": "t/0/2", "orderId": 12, "targetTopic": "order.created",
             "replayCount": 2, "outcome": "replayed", "edited": true}
        ]))
        .expect("POST /admin/dlt/replay's answer");
        let html = results_table(&rows).into_string();
        assert!(
            html.contains("<td>t/0/1</td><td></td><td>order.created</td><td>1</td><td class=\"outcome\">would-replay</td>"),
            "{html}"
        );
        assert!(
            html.contains("<td>12</td>") && html.contains(">replayed (edited)</td>"),
            "{html}"
        );
    }

    #[test]
    fn a_replay_form_picking_more_than_a_thousand_is_refused() {
        let body = vec!["pick=t%3A0%3A1"; MAX_PICKS + 1].join("&");
        let form: ReplayForm = crate::form::decode(body.as_bytes()).unwrap();
        assert!(form.checked().is_err());
    }
}
