//! `/orders`: find an order by id, or list a user's orders, and the order lifecycle drawn
//! from its table; `/orders/{id}`: an order's timeline.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup, PreEscaped};
use serde_json::Value;

use crate::session::Session;
use crate::timeline::{self, Timeline};
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
            _ => page(
                &session,
                Some(super::notice(
                    "error",
                    "An order id is a positive whole number.",
                )),
                None,
            ),
        };
    }
    let listing = match get("userId") {
        None => None,
        Some(user) => Some(match user.parse::<i64>() {
            Ok(user) if user > 0 => user_orders(&console, &session, user).await,
            _ => super::notice("error", "A user id is a positive whole number."),
        }),
    };
    page(&session, None, listing)
}

fn page(session: &Session, problem: Option<Markup>, listing: Option<Markup>) -> Response {
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

async fn user_orders(console: &Shared, session: &Session, user: i64) -> Markup {
    let reply = console
        .services
        .get(
            &console.services.order,
            &format!("/api/orders?userId={user}&size=100"),
            session.token(),
        )
        .await;
    let reply = match reply {
        Ok(r) if r.ok() => r,
        Ok(r) => return super::notice("error", &format!("order-service: {}", r.why())),
        Err(err) => return super::notice("error", &format!("{err:#}")),
    };
    let orders: Vec<Value> = reply
        .body
        .get("content")
        .or_else(|| reply.body.get("orders"))
        .unwrap_or(&reply.body)
        .as_array()
        .cloned()
        .unwrap_or_default();
    let text = |o: &Value, k: &str| {
        o.get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default()
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
                            td { a href=(format!("/orders/{}", text(o, "orderId"))) { (text(o, "orderId")) } }
                            td { span class=(format!("status {}", text(o, "status"))) { (text(o, "status")) } }
                            td { (text(o, "createdAt")) }
                            td { (o.get("items").and_then(Value::as_array).map_or(0, Vec::len)) }
                        }
                    }
                }
            }
        }
    }
}

/// Gathers an order's timeline: the order, its notifications, its records.
pub async fn gather(console: &Shared, token: Option<&str>, order_id: i64) -> Timeline {
    let services = &console.services;
    let mut problems = Vec::new();
    let (order_path, notes_path) = (
        format!("/api/orders/{order_id}"),
        format!("/api/notifications?orderId={order_id}"),
    );
    let (order, notes) = tokio::join!(
        services.get(&services.order, &order_path, token),
        services.get(&services.notification, &notes_path, token),
    );
    let order = match order {
        Ok(r) if r.ok() => Some(r.body),
        Ok(r) if r.status == 404 => None,
        Ok(r) => {
            problems.push(format!("order-service: {}", r.why()));
            None
        }
        Err(err) => {
            problems.push(format!("{err:#}"));
            None
        }
    };
    let notifications = match notes {
        Ok(r) if r.ok() => r.body.as_array().cloned().unwrap_or_default(),
        Ok(r) => {
            problems.push(format!("notification-service: {}", r.why()));
            Vec::new()
        }
        Err(err) => {
            problems.push(format!("{err:#}"));
            Vec::new()
        }
    };
    // From a minute before the order was placed (its records cannot be older).
    let since = order
        .as_ref()
        .and_then(|o| o.get("createdAt"))
        .and_then(Value::as_str)
        .and_then(timeline::millis)
        .map(|ms| ms - 60_000);
    let c = console.clone();
    let records = crate::blocking(move || {
        let topics = c.readers.topics()?;
        c.readers.by_key(&topics, &order_id.to_string(), since)
    })
    .await
    .unwrap_or_else(|err| {
        problems.push(format!("The broker could not be read: {err:#}"));
        crate::records::Page {
            records: Vec::new(),
            scanned: 0,
            cut_short: false,
        }
    });
    timeline::build(
        order_id,
        order,
        &notifications,
        &records,
        console.prefix(),
        problems,
    )
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
    let t = gather(&console, session.token(), order_id).await;
    let title = format!("Order {order_id}");
    super::page(&title, "/orders", &session, render(&t)).into_response()
}

fn render(t: &Timeline) -> Markup {
    let text = |k: &str| {
        t.order
            .as_ref()
            .and_then(|o| o.get(k))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
    };
    html! {
        @for p in &t.problems { (super::notice("error", p)) }
        @match &t.order {
            None => (super::notice("error", "order-service does not know this order.")),
            Some(order) => {
                p.summary {
                    "Status " span #order-status class=(format!("status {}", text("status").unwrap_or_default())) { (text("status").unwrap_or_default()) }
                    " · user " (text("userId").unwrap_or_default())
                    " · placed " (text("createdAt").unwrap_or_default())
                    " · updated " (text("updatedAt").unwrap_or_default())
                }
                @if let Some(items) = order.get("items").and_then(Value::as_array) {
                    p { "Items: " (items.iter().map(|i| format!("{} × {}", i.get("qty").map(|v| v.to_string()).unwrap_or_default(), i.get("sku").and_then(Value::as_str).unwrap_or_default())).collect::<Vec<_>>().join(", ")) }
                }
                @if let Some(reason) = text("reason") { p { "Rejected: " (reason) } }
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
    }
}
