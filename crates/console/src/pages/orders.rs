//! `/orders`: find an order by id, or list a user's orders (with the user's notification
//! preferences), how many orders are in each state of the lifecycle (order-service's
//! `GET /admin/orders/counts`) and the lifecycle drawn from its table; `/orders/{id}`: an
//! order's timeline, and the notification preferences of its user.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use contracts::api::OrderCounts;
use contracts::lifecycle::{self, OrderStatus};
use maud::{html, Markup, PreEscaped};
use serde_json::Value;

use crate::session::Session;
use crate::timeline::{self, Preferences, Timeline};
use crate::Shared;

pub async fn find(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if let Some(id) = get("orderId") {
        return match id.parse::<i64>() {
            Ok(id) if id > 0 => Redirect::to(&format!("/orders/{id}")).into_response(),
            _ => {
                page(
                    &console,
                    &session,
                    Some(super::notice(
                        "error",
                        "An order id is a positive whole number.",
                    )),
                    None,
                )
                .await
            }
        };
    }
    let listing = match get("userId") {
        None => None,
        Some(user) => Some(match user.parse::<i64>() {
            Ok(user) if user > 0 => user_orders(&console, &session, user).await,
            _ => super::notice("error", "A user id is a positive whole number."),
        }),
    };
    page(&console, &session, None, listing).await
}

async fn page(
    console: &Shared,
    session: &Session,
    problem: Option<Markup>,
    listing: Option<Markup>,
) -> Response {
    let counts = order_counts(console, session.token()).await;
    let body = html! {
        @if let Some(p) = problem { (p) }
        form.find method="get" action="/orders" {
            label { "order id " input type="number" name="orderId" min="1"; }
            button type="submit" { "Open timeline" }
        }
        form.find method="get" action="/orders" {
            label { "user id " input type="number" name="userId" min="1"; }
            button type="submit" { "List orders" }
        }
        @if let Some(l) = listing { (l) }
        (counts_table(&counts))
        h2 { "Lifecycle" }
        p.small {
            "What moves an order, drawn from the table order-service applies ("
            code { "contracts::lifecycle" } "). A late or repeated event moves nothing."
        }
        // Made from constants, its text escaped (`contracts::lifecycle::svg`); no script.
        figure.lifecycle { (PreEscaped(contracts::lifecycle::svg())) }
    };
    super::page("Orders", "/orders", session, body).into_response()
}

/// order-service's `GET /admin/orders/counts`: how many orders are in each state and how
/// many are stuck, or what went wrong, in one line.
pub async fn order_counts(console: &Shared, token: Option<&str>) -> Result<OrderCounts, String> {
    console
        .services
        .order_counts(token)
        .await
        .map_err(|err| format!("{err:#}"))
}

/// The orders in each state of the lifecycle (its list of states, in its order), and the
/// stuck ones, linked to their page. The order list filters by user only, so a state's
/// count links nowhere.
fn counts_table(counts: &Result<OrderCounts, String>) -> Markup {
    html! {
        h2 { "Orders by state" }
        @match counts {
            Err(why) => (super::notice("error", why)),
            Ok(c) => {
                @let after = i64::try_from(c.stuck_after_seconds).ok();
                table.counts #order-counts {
                    thead { tr { th { "state" } th.num { "orders" } } }
                    tbody {
                        @for status in OrderStatus::ALL {
                            tr {
                                td { span class=(format!("status {}", status.as_str())) { (status.as_str()) } }
                                td class="num" data-count=(status.as_str()) { (c.counts.get(status.as_str()).map_or_else(|| "-".to_string(), |n| n.to_string())) }
                            }
                        }
                        tr {
                            td {
                                a href="/stuck" { "stuck" }
                                " (PENDING longer than "
                                (after.map_or_else(|| "--stuck-after".to_string(), super::age))
                                ")"
                            }
                            td class="num" data-count="stuck" { (c.stuck) }
                        }
                    }
                }
            }
        }
    }
}

/// Most kinds, and channels of a kind, shown from one answer.
const MOST_SHOWN: usize = 16;

/// A JSON value as text: a string as it is, anything else as JSON.
fn as_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// The kinds of notification a user chooses channels for: named as the order's decided
/// states (every state of the lifecycle but the one it starts in), then any other the
/// answer names.
fn kinds(set: &Value) -> Vec<String> {
    let mut kinds: Vec<String> = OrderStatus::ALL
        .into_iter()
        .filter(|s| *s != lifecycle::START)
        .map(|s| s.as_str().to_string())
        .collect();
    if let Some(Value::Object(chosen)) = set.get("channels") {
        for kind in chosen.keys().take(MOST_SHOWN) {
            if !kinds.contains(kind) {
                kinds.push(kind.clone());
            }
        }
    }
    kinds
}

/// The channels chosen for `kind`: a kind left out gets every channel, an empty list none.
fn channels_of(set: &Value, kind: &str) -> String {
    match set.get("channels").and_then(|c| c.get(kind)) {
        None | Some(Value::Null) => "every channel (not chosen)".to_string(),
        Some(Value::Array(list)) if list.is_empty() => "none".to_string(),
        Some(Value::Array(list)) => list
            .iter()
            .take(MOST_SHOWN)
            .map(as_text)
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => as_text(other),
    }
}

/// A user's notification preferences: the channels per kind, time zone, quiet hours,
/// critical kinds and digest window; or that none were set.
pub fn preferences(p: &Preferences) -> Markup {
    html! {
        section.preferences #preferences {
            h2 { "Notification preferences of user " (p.user_id) }
            @match &p.set {
                None => p.defaults {
                    "None set: the defaults apply. Every kind of notification goes to every channel, at once (no quiet hours, no digest)."
                },
                Some(set) => {
                    @let text = |k: &str| set.get(k).filter(|v| !v.is_null()).map(as_text);
                    @let zone = text("timeZone");
                    @let quiet = set.get("quietHours").filter(|q| q.is_object()).map(|q| {
                        format!(
                            "{} to {}",
                            q.get("start").map(as_text).unwrap_or_default(),
                            q.get("end").map(as_text).unwrap_or_default()
                        )
                    });
                    @let critical = set
                        .get("critical")
                        .and_then(Value::as_array)
                        .filter(|c| !c.is_empty())
                        .map(|c| c.iter().take(MOST_SHOWN).map(as_text).collect::<Vec<_>>().join(", "));
                    @let digest = set.get("digestMinutes").and_then(Value::as_i64).filter(|m| *m > 0);
                    table.facts {
                        @for kind in kinds(set) {
                            tr data-kind=(kind) { th { "channels for " (kind) } td { (channels_of(set, &kind)) } }
                        }
                        tr { th { "time zone" } td { (zone.clone().unwrap_or_else(|| "not set".to_string())) } }
                        tr {
                            th { "quiet hours" }
                            td {
                                @match (&quiet, &zone) {
                                    (Some(q), Some(z)) => { (q) " (" (z) "): held until they end" },
                                    (Some(q), None) => (q),
                                    (None, _) => "none",
                                }
                            }
                        }
                        tr { th { "critical (go at once)" } td { (critical.unwrap_or_else(|| "none".to_string())) } }
                        tr {
                            th { "digest window" }
                            td {
                                @match digest {
                                    Some(m) => { (m) " min: the notices inside one go as one message per channel" },
                                    None => "none",
                                }
                            }
                        }
                        tr { th { "set" } td { (text("updatedAt").unwrap_or_default()) } }
                    }
                }
            }
        }
    }
}

async fn user_orders(console: &Shared, session: &Session, user: i64) -> Markup {
    let (page, preferences) = tokio::join!(
        console.services.orders_of(user, 100, session.token()),
        timeline::preferences_of(&console.services, session.token(), user),
    );
    let preferences = match preferences {
        Ok(p) => self::preferences(&p),
        Err(why) => super::notice("error", &why),
    };
    let orders = match page {
        Ok(page) => page.orders,
        Err(err) => {
            let why = format!("{err:#}");
            return html! { (super::notice("error", &why)) (preferences) };
        }
    };
    html! {
        h2 { "Orders of user " (user) }
        @if orders.is_empty() { p { "None." } }
        @else {
            table.orders {
                thead { tr { th { "order" } th { "status" } th { "placed" } th { "items" } } }
                tbody {
                    @for o in &orders {
                        tr {
                            td { a href=(format!("/orders/{}", o.order_id)) { (o.order_id) } }
                            td { span class=(format!("status {}", o.status.as_str())) { (o.status.as_str()) } }
                            td { (o.created_at) }
                            td { (o.items.len()) }
                        }
                    }
                }
            }
        }
        (preferences)
    }
}

pub async fn timeline(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let Ok(order_id) = id.parse::<i64>() else {
        return super::page(
            "Order",
            "/orders",
            &session,
            super::notice("error", "An order id is a positive whole number."),
        )
        .into_response();
    };
    let t = timeline::gather(&console, session.token(), order_id).await;
    let title = format!("Order {order_id}");
    super::page(&title, "/orders", &session, render(&t)).into_response()
}

fn render(t: &Timeline) -> Markup {
    html! {
        @for p in &t.problems { (super::notice("error", p)) }
        @match &t.order {
            None => (super::notice("error", "order-service does not know this order.")),
            Some(order) => {
                p.summary {
                    "Status " span #order-status class=(format!("status {}", order.status.as_str())) { (order.status.as_str()) }
                    " · user " (order.user_id)
                    " · placed " (order.created_at)
                    " · updated " (order.updated_at)
                }
                p { "Items: " (order.items.iter().map(|i| format!("{} × {}", i.qty, i.sku)).collect::<Vec<_>>().join(", ")) }
                @if let Some(reason) = &order.reason { p { "Rejected: " (reason) } }
            }
        }
        ol.timeline {
            @for e in &t.entries {
                li class=(format!("entry {}", e.kind)) {
                    span.at { (super::time(e.at_ms)) }
                    " "
                    @match &e.record {
                        Some(r) => a href=(super::record_link(&r.topic, r.partition, r.offset)) { (e.title) },
                        None => span { (e.title) },
                    }
                    @if let Some(s) = e.status { " → " span class=(format!("status {s}")) { (s) } }
                    @if let Some(d) = &e.detail { div.detail { (d) } }
                }
            }
        }
        p.small {
            (t.scanned) " record(s) read to find this order's"
            @if t.cut_short { " (the read stopped at its bound: later records may be missing)" }
        }
        @if let Some(p) = &t.preferences { (preferences(p)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_users_preferences_show_the_channels_of_each_kind_and_when_notices_come() {
        let set = json!({
            "userId": 42,
            "channels": {"CONFIRMED": ["log", "webhook"], "FAILED": []},
            "timeZone": "Europe/Berlin",
            "quietHours": {"start": "23:00", "end": "07:00"},
            "critical": ["FAILED"],
            "digestMinutes": 10,
            "updatedAt": "2026-01-01T10:00:00.000Z"
        });
        let html = preferences(&Preferences {
            user_id: 42,
            set: Some(set),
        })
        .into_string();
        for shown in [
            "Notification preferences of user 42",
            "<tr data-kind=\"CONFIRMED\"><th>channels for CONFIRMED</th><td>log, webhook</td></tr>",
            "<th>channels for REJECTED</th><td>every channel (not chosen)</td>",
            "<th>channels for FAILED</th><td>none</td>",
            "23:00 to 07:00 (Europe/Berlin)",
            "<th>critical (go at once)</th><td>FAILED</td>",
            "10 min",
        ] {
            assert!(html.contains(shown), "{shown} in {html}");
        }
        assert!(
            !html.contains("channels for PENDING"),
            "no notification is sent for the state an order starts in: {html}"
        );
    }

    #[test]
    fn a_user_without_preferences_is_shown_the_defaults_and_every_value_is_escaped() {
        let html = preferences(&Preferences {
            user_id: 7,
            set: None,
        })
        .into_string();
        assert!(html.contains("None set: the defaults apply."), "{html}");
        let odd = json!({"channels": {"<i>NEW</i>": ["<script>"]}, "timeZone": "<b>"});
        let html = preferences(&Preferences {
            user_id: 7,
            set: Some(odd),
        })
        .into_string();
        assert!(
            html.contains("channels for &lt;i&gt;NEW&lt;/i&gt;"),
            "{html}"
        );
        assert!(
            !html.contains("<script>") && !html.contains("<b>") && !html.contains("<i>"),
            "{html}"
        );
    }

    #[test]
    fn the_counts_name_every_state_of_the_lifecycle_and_the_stuck_orders() {
        let counts = json!({"counts": {"PENDING": 3, "CONFIRMED": 40}, "stuck": 2, "stuckAfterSeconds": 300});
        let counts: OrderCounts = serde_json::from_value(counts).unwrap();
        let html = counts_table(&Ok(counts)).into_string();
        for status in OrderStatus::ALL {
            let cell = format!("data-count=\"{}\"", status.as_str());
            assert!(html.contains(&cell), "{cell} in {html}");
        }
        assert!(html.contains("data-count=\"PENDING\">3<"), "{html}");
        assert!(
            html.contains("data-count=\"FAILED\">-<"),
            "a state the answer leaves out: {html}"
        );
        assert!(html.contains("data-count=\"stuck\">2<"), "{html}");
        assert!(html.contains("href=\"/stuck\""), "{html}");
        assert!(html.contains("(PENDING longer than 5 min)"), "{html}");
        let failed = counts_table(&Err("order-service: HTTP 404".into())).into_string();
        assert!(failed.contains("order-service: HTTP 404"), "{failed}");
    }
}
