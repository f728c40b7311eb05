//! The entries of a timeline: what each record of the order says (the status it moved the
//! order to, a dead letter's error), where it comes in the flow, and what a delivery waits
//! for.

use contracts::api::DeliveryView;
use contracts::headers;
use contracts::topics as t;
use serde_json::Value;

use super::{Entry, Position};
use crate::records::RecordView;

/// What a record's entry says: its title, the status it moved the order to, its detail.
type Said = (String, Option<&'static str>, Option<String>);

/// Where a topic (without prefix) comes in the flow, for entries at the same millisecond.
pub(super) fn flow_rank(topic: &str) -> usize {
    [
        t::ORDER_CREATED,
        t::ORDER_CREATED_DLT,
        t::INVENTORY_RESERVED,
        t::INVENTORY_REJECTED,
        t::ORDER_CANCELLED,
        t::INVENTORY_RELEASED,
        t::NOTIFICATION_FAILED,
    ]
    .iter()
    .position(|x| *x == topic)
    .unwrap_or(9)
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The value of the record's last header `name`.
fn header(r: &RecordView, name: &str) -> Option<String> {
    r.headers
        .iter()
        .rev()
        .find(|h| h.name == name)
        .map(|h| h.value.clone())
}

/// The entry of one record of the order (`topic` without the deployment's prefix).
pub(super) fn record_entry(r: &RecordView, topic: &str) -> Entry {
    let parked = topic.ends_with(t::PARKED_SUFFIX);
    let (title, status, detail) = if topic.ends_with(t::DLT_SUFFIX) || parked {
        dead_letter(r, parked)
    } else {
        flow(r, topic)
    };
    Entry {
        at_ms: r.timestamp_ms,
        kind: "record",
        title,
        detail,
        status,
        record: Some(Position {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
        }),
    }
}

/// A dead letter (or, `parked`, a record that failed again after a replay): who gave up on
/// it after how many attempts, and its error.
fn dead_letter(r: &RecordView, parked: bool) -> Said {
    let group = header(r, headers::DLT_ORIGINAL_CONSUMER_GROUP).unwrap_or_default();
    let error = format!(
        "{}: {}",
        header(r, headers::DLT_EXCEPTION_FQCN).unwrap_or_else(|| "unknown".into()),
        header(r, headers::DLT_EXCEPTION_MESSAGE).unwrap_or_default()
    );
    let attempts = header(r, headers::ATTEMPTS).unwrap_or_else(|| "?".into());
    let what = if parked {
        "parked (failed again after a replay)"
    } else {
        "dead-lettered"
    };
    (
        format!("{what} by {group} after {attempts} attempt(s)"),
        None,
        Some(error),
    )
}

/// A record of the order's flow, by its topic.
fn flow(r: &RecordView, topic: &str) -> Said {
    let value = r.json().unwrap_or(Value::Null);
    match topic {
        t::ORDER_CREATED => order_created(r, &value),
        t::INVENTORY_RESERVED => (
            "stock reserved (inventory.reserved)".into(),
            Some("CONFIRMED"),
            None,
        ),
        t::INVENTORY_REJECTED => inventory_rejected(&value),
        t::ORDER_CANCELLED => (
            "cancelled by the customer (order.cancelled)".into(),
            Some("CANCELLED"),
            None,
        ),
        t::INVENTORY_RELEASED => ("stock released (inventory.released)".into(), None, None),
        t::NOTIFICATION_FAILED => (
            "a notification failed (notification.failed)".into(),
            None,
            text(&value, "error").or_else(|| text(&value, "reason")),
        ),
        other => (other.to_string(), None, None),
    }
}

/// `order.created`: the order placed (or replayed), with its items.
fn order_created(r: &RecordView, value: &Value) -> Said {
    let replay = header(r, headers::REPLAY_COUNT)
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n > 0);
    let items = value
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    format!(
                        "{} × {}",
                        text(i, "qty").unwrap_or_default(),
                        text(i, "sku").unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let title = match replay {
        Some(n) => format!("order.created, replay #{n}"),
        None => "order placed (order.created)".to_string(),
    };
    (title, Some("PENDING"), Some(items))
}

/// `inventory.rejected`: why, and each SKU short.
fn inventory_rejected(value: &Value) -> Said {
    let shortages = value.get("shortages").and_then(Value::as_array).map(|s| {
        s.iter()
            .map(|x| {
                format!(
                    "{}: {} asked, {} available",
                    text(x, "sku").unwrap_or_default(),
                    text(x, "requested").unwrap_or_default(),
                    text(x, "available").unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    });
    let reason = text(value, "reason").unwrap_or_else(|| "rejected".into());
    (
        format!("rejected: {reason} (inventory.rejected)"),
        Some("REJECTED"),
        shortages,
    )
}

/// What a delivery waits for or stands in for, as notification-service lists it: held by
/// the user's quiet hours or a digest window until its due time, gathered into a digest, or
/// a fallback for another channel (empty when none of these).
pub(super) fn delivery_waiting(d: &DeliveryView) -> String {
    let due = d.next_attempt_at.as_deref().unwrap_or_default();
    let mut out = match (d.status.as_str(), d.held.as_deref()) {
        ("PENDING", Some("quietHours")) => format!(", held by quiet hours until {due}"),
        ("PENDING", Some("digest")) => format!(", a digest due {due}"),
        ("GATHERED", _) => format!(
            ", gathered into digest {}",
            d.digest.as_deref().unwrap_or_default()
        ),
        _ => String::new(),
    };
    if let Some(of) = &d.fallback_of {
        out.push_str(&format!(", instead of {of}"));
        if let Some(reason) = &d.fallback_reason {
            out.push_str(&format!(" ({reason})"));
        }
    }
    out
}
