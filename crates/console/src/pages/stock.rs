//! `/stock`: every SKU with available and reserved (inventory-service's `GET /api/inventory`,
//! read as its `StockItem`s); set a SKU's stock (inventory-service's
//! `PUT /api/inventory/{sku}`, as the signed-in operator).

use axum::extract::{Form, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::session::Session;
use crate::Shared;

pub async fn list(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    render(&console, &session, None).await
}

async fn render(console: &Shared, session: &Session, outcome: Option<Markup>) -> Response {
    let stock = console.services.stock(session.token()).await;
    let body = html! {
        @if let Some(o) = outcome { (o) }
        form.setstock method="post" action="/stock" {
            (super::csrf(session))
            label { "SKU " input type="text" name="sku" required maxlength="64"; }
            label { " available " input type="number" name="available" min="0" required; }
            " " button type="submit" { "Set stock" }
        }
        @match &stock {
            Ok(items) => {
                table.stock {
                    thead { tr { th { "SKU" } th.num { "available" } th.num { "reserved" } th { "updated" } } }
                    tbody { @for i in items { tr data-sku=(i.sku) {
                        td { (i.sku) } td.num { (i.available) } td.num { (i.reserved) } td { (i.updated_at) }
                    } } }
                }
            },
            Err(err) => (super::notice("error", &format!("{err:#}"))),
        }
    };
    super::page("Stock", "/stock", session, body).into_response()
}

#[derive(Deserialize)]
pub struct SetForm {
    csrf: String,
    sku: String,
    available: String,
}

pub async fn set(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Form(form): Form<SetForm>,
) -> Response {
    if !super::csrf_ok(&session, &form.csrf) {
        return super::csrf_refused();
    }
    let sku = form.sku.trim();
    let outcome = match form.available.trim().parse::<i64>() {
        Err(_) => super::notice("error", "Available must be a whole number."),
        Ok(available) => {
            let path = format!("/api/inventory/{}", super::encode(sku));
            match console
                .services
                .call(
                    Method::PUT,
                    &console.services.inventory,
                    &path,
                    Some(&json!({"available": available})),
                    session.token(),
                )
                .await
            {
                Ok(r) if r.ok() => super::notice("ok", &format!("{sku}: {available} available.")),
                Ok(r) => super::notice("error", &format!("inventory-service: {}", r.why())),
                Err(err) => super::notice("error", &format!("{err:#}")),
            }
        }
    };
    render(&console, &session, Some(outcome)).await
}
