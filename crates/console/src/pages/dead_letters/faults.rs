//! The fault switches (`POST /dead-letters/faults`, inventory-service's `/admin/faults`):
//! orders with an item of one SKU fail every attempt, of another their first.

use axum::extract::{Form, State};
use axum::response::Response;
use axum::Extension;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::{inventory, render, View};
use crate::pages::{self, field as text};
use crate::session::Session;
use crate::Shared;

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
    if !pages::csrf_ok(&session, &form.csrf) {
        return pages::csrf_refused();
    }
    let body = if form.set.as_deref() == Some("off") {
        json!({"failSku": "", "flakySku": ""})
    } else {
        json!({"failSku": form.fail_sku.trim(), "flakySku": form.flaky_sku.trim()})
    };
    let outcome = match inventory(&console, &session, Method::PUT, "/admin/faults", &body).await {
        Ok(r) if r.ok() => pages::notice(
            "ok",
            &format!(
                "Faults set: fail SKU {:?}, flaky SKU {:?}.",
                text(&r.body, "failSku"),
                text(&r.body, "flakySku")
            ),
        ),
        Ok(r) => pages::notice("error", &format!("inventory-service: {}", r.why())),
        Err(err) => pages::notice("error", &format!("{err:#}")),
    };
    render(&console, &session, &View::default(), Some(outcome)).await
}
