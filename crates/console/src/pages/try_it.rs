//! `/try`: place an order from the browser (items, user, optional contact and
//! Idempotency-Key), as the book's curl examples do, then open its timeline.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use contracts::api::Accepted;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::form::{FormRejection, HtmlForm};
use crate::session::Session;
use crate::Shared;

pub async fn form(Extension(session): Extension<Session>) -> Markup {
    render(&session, None)
}

fn render(session: &Session, problem: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(p) = problem { (super::notice("error", p)) }
        form #try method="post" action="/try" {
            (super::csrf(session))
            label { "user id " input type="number" name="userId" value="42" min="1" required; }
            fieldset {
                legend { "items (SKU and quantity; empty rows are left out)" }
                @for (i, (sku, qty)) in [("ABC-001", "2"), ("", ""), ("", "")].iter().enumerate() {
                    div.item {
                        input type="text" name="sku" value=(sku) placeholder="SKU" aria-label=(format!("SKU {}", i + 1));
                        input type="number" name="qty" value=(qty) min="1" placeholder="qty" aria-label=(format!("quantity {}", i + 1));
                    }
                }
            }
            label { "e-mail (optional) " input type="email" name="email"; }
            label { "webhook URL (optional) " input type="url" name="webhookUrl"; }
            label { "Idempotency-Key (optional) " input type="text" name="idempotencyKey" maxlength="255"; }
            button type="submit" { "Place order" }
        }
        p.small { "Try SKU FAIL (fails every attempt, so it is dead-lettered) or FLAKY (fails once, then succeeds)." }
    };
    super::page("Try it", "/try", session, body)
}

/// The order form: a `sku` and a `qty` field for each item row, in the same order.
#[derive(Deserialize)]
pub struct OrderForm {
    #[serde(default)]
    csrf: String,
    #[serde(default, rename = "userId")]
    user_id: String,
    #[serde(default)]
    sku: Vec<String>,
    #[serde(default)]
    qty: Vec<String>,
    #[serde(default)]
    email: String,
    #[serde(default, rename = "webhookUrl")]
    webhook_url: String,
    #[serde(default, rename = "idempotencyKey")]
    idempotency_key: String,
}

/// A single field's value, trimmed; `None` when left empty.
fn filled(value: &str) -> Option<String> {
    Some(value.trim().to_string()).filter(|v| !v.is_empty())
}

pub async fn place(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    form: Result<HtmlForm<OrderForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(HtmlForm(form)) => form,
        Err(FormRejection::Fields(err)) => {
            return render(
                &session,
                Some(&format!("The form could not be read: {err}.")),
            )
            .into_response()
        }
        Err(rejection @ FormRejection::Body(_)) => return rejection.into_response(),
    };
    if !super::csrf_ok(&session, form.csrf.trim()) {
        return super::csrf_refused();
    }
    let mut items = Vec::new();
    for (sku, qty) in form.sku.iter().zip(&form.qty) {
        let sku = sku.trim();
        if sku.is_empty() {
            continue;
        }
        let Ok(qty) = qty.trim().parse::<i64>() else {
            return render(
                &session,
                Some(&format!("The quantity of {sku} must be a whole number.")),
            )
            .into_response();
        };
        items.push(json!({"sku": sku, "qty": qty}));
    }
    let Some(user) = filled(&form.user_id).and_then(|u| u.parse::<i64>().ok()) else {
        return render(&session, Some("The user id must be a whole number.")).into_response();
    };
    let mut order = json!({"userId": user, "items": items});
    let mut contact = serde_json::Map::new();
    if let Some(e) = filled(&form.email) {
        contact.insert("email".into(), Value::String(e));
    }
    if let Some(w) = filled(&form.webhook_url) {
        contact.insert("webhookUrl".into(), Value::String(w));
    }
    if !contact.is_empty() {
        order["contact"] = Value::Object(contact);
    }
    // The order is the customer's: placed without the operator's token, as a shop would.
    let key = filled(&form.idempotency_key);
    if key
        .as_deref()
        .is_some_and(|k| HeaderValue::from_str(k).is_err())
    {
        return render(&session, Some("The Idempotency-Key must be visible ASCII."))
            .into_response();
    }
    let reply = match console.services.place_order(&order, key.as_deref()).await {
        Ok(reply) => reply,
        Err(err) => return render(&session, Some(&format!("{err:#}"))).into_response(),
    };
    if reply.ok() {
        // 202 with an `Accepted`, or 201 with the decided `OrderView`, read as one too.
        return match reply.read::<Accepted>("order-service") {
            Ok(accepted) => {
                let timeline = format!("/orders/{}", accepted.order_id);
                Redirect::to(&timeline).into_response()
            }
            Err(err) => render(&session, Some(&format!("{err:#}"))).into_response(),
        };
    }
    // A problem: its title and detail, and each invalid field.
    let mut why = reply.why();
    if let Some(errors) = reply.body.get("errors").and_then(Value::as_array) {
        for e in errors {
            why.push_str(&format!(
                "; {} {}",
                e.get("field").and_then(Value::as_str).unwrap_or_default(),
                e.get("message").and_then(Value::as_str).unwrap_or_default()
            ));
        }
    }
    render(
        &session,
        Some(&format!("order-service refused the order: {why}")),
    )
    .into_response()
}
