//! The list's markup: the filter and the redrive of what it matches, the fault switches,
//! and the table of dead letters (or parked records) with the replay of those picked.

use maud::{html, Markup};
use platform::dead_letters::read::Summary;
use serde_json::Value;

use super::{age, shown, View};
use crate::pages::{self, field as text};
use crate::session::Session;

/// The filter (it narrows the table, a GET), and the redrive of what it matches (a POST:
/// preview counts it, redrive sends it at the rate given).
pub(super) fn filter_form(session: &Session, view: &View, letters: &[Summary]) -> Markup {
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
            (pages::csrf(session))
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

pub(super) fn faults_form(session: &Session, faults: &Value) -> Markup {
    html! {
        form.faults method="post" action="/dead-letters/faults" {
            (pages::csrf(session))
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
        pages::encode(&l.topic),
        l.partition,
        l.offset
    )
}

pub(super) fn table(session: &Session, view: &View, letters: &[Summary]) -> Markup {
    let mut topics: Vec<String> = letters.iter().map(|l| l.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    html! {
        @if letters.is_empty() {
            p { @if view.parked { "Nothing parked." } @else if view.filtered() { "No dead letters match." } @else { "No dead letters." } }
        }
        @else {
            form #replay method="post" action="/dead-letters/replay" {
                (pages::csrf(session))
                @if view.parked { input type="hidden" name="view" value="parked"; }
                table.deadletters {
                    thead { tr { th {} th { "topic" } th { "position" } th { "order" } th { "error" } th.num { "attempts" } th { "origin" } th { "age" } th.num { "replayed" } th.num { "replay #" } th {} } }
                    tbody {
                        @for l in letters {
                            @let position = format!("{}:{}:{}", l.topic, l.partition, l.offset);
                            tr data-order=(shown(l.order_id)) {
                                td { input type="checkbox" name="pick" value=(position) aria-label="select"; }
                                td { (l.topic) }
                                td { a href=(pages::record_link(&l.topic, l.partition, l.offset)) { (l.partition) ":" (l.offset) } }
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
