//! `/dead-letters`: every dead letter with its error, attempts, origin, age and replays
//! (inventory-service's `/admin/dlt`, the code `openorder dlt` runs); replay one, a selection
//! (an order's) or all of a topic, with a dry run first, the cap and `force`; and the
//! `FAIL` / `FLAKY` fault switches (`/admin/faults`).

use axum::extract::{Form, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

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

pub async fn list(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    render(&console, &session, None).await
}

async fn render(console: &Shared, session: &Session, outcome: Option<Markup>) -> Response {
    let services = &console.services;
    let (letters, faults) = tokio::join!(
        services.get(&services.inventory, "/admin/dlt", session.token()),
        services.get(&services.inventory, "/admin/faults", session.token()),
    );
    let body = html! {
        @if let Some(o) = outcome { (o) }
        @match &faults {
            Ok(f) if f.ok() => (faults_form(session, &f.body)),
            Ok(f) => (super::notice("error", &format!("Faults: inventory-service: {}", f.why()))),
            Err(err) => (super::notice("error", &format!("Faults: {err:#}"))),
        }
        @match &letters {
            Ok(r) if r.ok() => (table(session, r.body.as_array().map(Vec::as_slice).unwrap_or_default())),
            Ok(r) => (super::notice("error", &format!("inventory-service: {}", r.why()))),
            Err(err) => (super::notice("error", &format!("{err:#}"))),
        }
    };
    super::page("Dead letters", "/dead-letters", session, body).into_response()
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

fn table(session: &Session, letters: &[Value]) -> Markup {
    let mut topics: Vec<String> = letters.iter().map(|l| text(l, "topic")).collect();
    topics.sort();
    topics.dedup();
    html! {
        @if letters.is_empty() { p { "No dead letters." } }
        @else {
            form #replay method="post" action="/dead-letters/replay" {
                (super::csrf(session))
                table.deadletters {
                    thead { tr { th {} th { "topic" } th { "position" } th { "order" } th { "error" } th.num { "attempts" } th { "origin" } th { "age" } th.num { "replayed" } } }
                    tbody {
                        @for l in letters {
                            @let position = format!("{}:{}:{}", text(l, "topic"), text(l, "partition"), text(l, "offset"));
                            tr data-order=(text(l, "orderId")) {
                                td { input type="checkbox" name="pick" value=(position) aria-label="select"; }
                                td { (text(l, "topic")) }
                                td { a href=(super::record_link(&text(l, "topic"), l.get("partition").and_then(Value::as_i64).unwrap_or(0) as i32, l.get("offset").and_then(Value::as_i64).unwrap_or(0))) { (text(l, "partition")) ":" (text(l, "offset")) } }
                                td { @let id = text(l, "orderId"); @if id.is_empty() { "-" } @else { a href=(format!("/orders/{id}")) { (id) } } }
                                td.error { (text(l, "error")) }
                                td.num { (text(l, "attempts")) }
                                td { (text(l, "originalTopic")) @if !text(l, "originalOffset").is_empty() { "@" (text(l, "originalPartition")) ":" (text(l, "originalOffset")) } }
                                td { (age(l.get("timestampMs").and_then(Value::as_i64))) }
                                td.num { (text(l, "replayed")) }
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

/// A replay form: the positions picked (`topic:partition:offset`) or all of `topic`.
struct ReplayForm {
    csrf: String,
    which: String,
    topic: Option<String>,
    pick: Vec<String>,
    max_replays: Option<String>,
    force: Option<String>,
    mode: String,
}

pub async fn replay(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    body: axum::body::Bytes,
) -> Response {
    // Repeated fields (`pick`) in a form body: parsed by hand, as serde_urlencoded has no sequences.
    let form = match parse_replay(&body) {
        Ok(f) => f,
        Err(err) => return render(&console, &session, Some(super::notice("error", &err))).await,
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
                    Some(super::notice("error", "Select at least one dead letter.")),
                )
                .await;
            }
        }
    }
    let by = session
        .operator
        .as_ref()
        .map(|(n, _)| format!("console:{n}"))
        .unwrap_or_else(|| "console".into());
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for mut r in requests {
        r["dryRun"] = json!(dry_run);
        r["force"] = json!(force);
        r["maxReplays"] = json!(max_replays);
        r["by"] = json!(by);
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
            Ok(reply) if reply.ok() => {
                rows.extend(reply.body.as_array().cloned().unwrap_or_default())
            }
            Ok(reply) => failures.push(reply.why()),
            Err(err) => failures.push(format!("{err:#}")),
        }
    }
    let outcome = html! {
        section.outcome #replay-outcome {
            h2 { @if dry_run { "Would replay (dry run: nothing sent)" } @else { "Replayed" } }
            @for f in &failures { (super::notice("error", f)) }
            table {
                thead { tr { th { "position" } th { "order" } th { "to" } th { "replay #" } th { "outcome" } } }
                tbody { @for r in &rows { tr {
                    td { (text(r, "position")) } td { (text(r, "orderId")) } td { (text(r, "targetTopic")) }
                    td { (text(r, "replayCount")) } td.outcome { (text(r, "outcome")) }
                } } }
            }
        }
    };
    render(&console, &session, Some(outcome)).await
}

fn parse_replay(body: &[u8]) -> Result<ReplayForm, String> {
    let mut form = ReplayForm {
        csrf: String::new(),
        which: "picked".into(),
        topic: None,
        pick: Vec::new(),
        max_replays: None,
        force: None,
        mode: "dry-run".into(),
    };
    for (k, v) in form_pairs(body) {
        match k.as_str() {
            "csrf" => form.csrf = v,
            "which" => form.which = v,
            "topic" => form.topic = Some(v),
            "pick" => form.pick.push(v),
            "maxReplays" => form.max_replays = Some(v),
            "force" => form.force = Some(v),
            "mode" => form.mode = v,
            _ => {}
        }
    }
    if form.pick.len() > 1000 {
        return Err(
            "Select at most 1,000 dead letters at a time (or replay all of a topic).".into(),
        );
    }
    Ok(form)
}

/// The `key=value` pairs of a form body, decoded.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    match (
                        bytes.get(i + 1).and_then(|b| hex(*b)),
                        bytes.get(i + 2).and_then(|b| hex(*b)),
                    ) {
                        (Some(h), Some(l)) => {
                            out.push(h * 16 + l);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
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
    render(&console, &session, Some(outcome)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_body_decodes_repeated_fields_plus_signs_and_percent_escapes() {
        let pairs = form_pairs(b"pick=a%3A1%3A2&pick=b+c&bad=%zz&tail=%4");
        assert_eq!(
            pairs,
            vec![
                ("pick".to_string(), "a:1:2".to_string()),
                ("pick".to_string(), "b c".to_string()),
                ("bad".to_string(), "%zz".to_string()),
                ("tail".to_string(), "%4".to_string()),
            ]
        );
    }
}
