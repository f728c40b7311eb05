//! An order's timeline: every record of the order across all topics (found by its key on
//! the partition the key maps to, from a minute before it was placed), the status each
//! record moved it to, dead letters and replays, each notification and each channel's
//! delivery; in causal order (by time, then by the order of the flow), each record entry
//! pointing at the record in the topic browser; beside them, the notification preferences
//! of the order's user.

use contracts::api::{DeliveryView, Notification, OrderView};
use serde::Serialize;
use serde_json::Value;

use crate::records::{Page, RecordView};

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub at_ms: Option<i64>,
    /// `record`, `notification` or `delivery`.
    pub kind: &'static str,
    pub title: String,
    pub detail: Option<String>,
    /// The status the order went to, for a record that moves it.
    pub status: Option<&'static str>,
    /// The record it is, for a record entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Position>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    pub order_id: i64,
    /// The order as order-service shows it (None when it does not know it).
    pub order: Option<OrderView>,
    pub entries: Vec<Entry>,
    /// Records looked at to find the order's, and whether a bound cut that short.
    pub scanned: u64,
    pub cut_short: bool,
    /// What could not be read (a service down, say), one line each.
    pub problems: Vec<String>,
    /// The notification preferences of the order's user (None when they were not read: the
    /// order is unknown, or notification-service did not answer, as `problems` says).
    pub preferences: Option<Preferences>,
}

/// A user's notification preferences, as notification-service shows them
/// (`GET /api/users/{userId}/notification-preferences`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    pub user_id: i64,
    /// What the user set, as the service answered it; None: nothing (it answered 404), so
    /// the defaults apply: every kind of notification to every channel, at once.
    pub set: Option<Value>,
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn millis(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Where a topic (without prefix) comes in the flow, for entries at the same millisecond.
fn flow_rank(topic: &str) -> usize {
    use contracts::topics as t;
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

/// The entry of one record of the order (`topic` without the deployment's prefix).
fn record_entry(r: &RecordView, topic: &str) -> Entry {
    use contracts::topics as t;
    let value = r.json().unwrap_or(Value::Null);
    let header = |name: &str| {
        r.headers
            .iter()
            .rev()
            .find(|h| h.name == name)
            .map(|h| h.value.clone())
    };
    let replay = header(contracts::headers::REPLAY_COUNT)
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n > 0);
    let parked = topic.ends_with(t::PARKED_SUFFIX);
    let (title, status, detail) = if topic.ends_with(t::DLT_SUFFIX) || parked {
        let group = header(contracts::headers::DLT_ORIGINAL_CONSUMER_GROUP).unwrap_or_default();
        let error = format!(
            "{}: {}",
            header(contracts::headers::DLT_EXCEPTION_FQCN).unwrap_or_else(|| "unknown".into()),
            header(contracts::headers::DLT_EXCEPTION_MESSAGE).unwrap_or_default()
        );
        let attempts = header(contracts::headers::ATTEMPTS).unwrap_or_else(|| "?".into());
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
    } else {
        match topic {
            t::ORDER_CREATED => {
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
            t::INVENTORY_RESERVED => (
                "stock reserved (inventory.reserved)".into(),
                Some("CONFIRMED"),
                None,
            ),
            t::INVENTORY_REJECTED => {
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
                let reason = text(&value, "reason").unwrap_or_else(|| "rejected".into());
                (
                    format!("rejected: {reason} (inventory.rejected)"),
                    Some("REJECTED"),
                    shortages,
                )
            }
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

/// What a delivery waits for or stands in for, as notification-service lists it: held by
/// the user's quiet hours or a digest window until its due time, gathered into a digest, or
/// a fallback for another channel (empty when none of these).
fn delivery_waiting(d: &DeliveryView) -> String {
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

/// Puts the timeline together from what the services and the topics said.
pub fn build(
    order_id: i64,
    order: Option<OrderView>,
    notifications: &[Notification],
    records: &Page,
    prefix: &str,
    problems: Vec<String>,
) -> Timeline {
    let mut ranked: Vec<(Option<i64>, usize, Entry)> = Vec::new();
    for r in &records.records {
        let topic = r.topic.strip_prefix(prefix).unwrap_or(&r.topic);
        ranked.push((r.timestamp_ms, flow_rank(topic), record_entry(r, topic)));
    }
    for n in notifications {
        let at = millis(&n.created_at);
        ranked.push((
            at,
            20,
            Entry {
                at_ms: at,
                kind: "notification",
                title: format!("notification: {}", n.subject),
                detail: Some(n.event_type.clone()),
                status: None,
                record: None,
            },
        ));
        for d in &n.deliveries {
            let at = millis(d.delivered_at.as_deref().unwrap_or(&d.updated_at));
            let error = d
                .last_error
                .as_ref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default();
            let waiting = delivery_waiting(d);
            ranked.push((
                at,
                21,
                Entry {
                    at_ms: at,
                    kind: "delivery",
                    title: format!("{} to {}: {}", d.channel, d.recipient, d.status),
                    detail: Some(format!("{} attempt(s){waiting}{error}", d.attempts)),
                    status: None,
                    record: None,
                },
            ));
        }
    }
    ranked.sort_by_key(|(at, rank, _)| (at.unwrap_or(i64::MAX), *rank));
    Timeline {
        order_id,
        order,
        entries: ranked.into_iter().map(|(_, _, e)| e).collect(),
        scanned: records.scanned,
        cut_short: records.cut_short,
        problems,
        preferences: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A delivery as notification-service lists it: a pending e-mail, with `fields` over it.
    fn delivery(fields: Value) -> DeliveryView {
        let mut d = json!({
            "channel": "email", "recipient": "a@example.com", "status": "PENDING",
            "attempts": 0, "lastError": null, "idempotencyKey": "k-1",
            "createdAt": "2025-03-10T22:00:00.000Z", "updatedAt": "2025-03-10T22:00:00.000Z",
            "deliveredAt": null, "nextAttemptAt": null, "held": null, "digest": null,
            "fallbackOf": null, "fallbackReason": null
        });
        for (k, v) in fields.as_object().expect("fields") {
            d[k] = v.clone();
        }
        serde_json::from_value(d).expect("a DeliveryView")
    }

    #[test]
    fn a_delivery_says_what_it_waits_for_or_stands_in_for() {
        let held = delivery(
            json!({"status": "PENDING", "held": "quietHours", "nextAttemptAt": "2025-03-11T06:00:00.000Z"}),
        );
        assert_eq!(
            delivery_waiting(&held),
            ", held by quiet hours until 2025-03-11T06:00:00.000Z"
        );
        let gathered =
            delivery(json!({"status": "GATHERED", "digest": "0196-key", "nextAttemptAt": "x"}));
        assert_eq!(
            delivery_waiting(&gathered),
            ", gathered into digest 0196-key"
        );
        let fallback = delivery(
            json!({"status": "DELIVERED", "held": null, "fallbackOf": "sms", "fallbackReason": "sms failed: refused"}),
        );
        assert_eq!(
            delivery_waiting(&fallback),
            ", instead of sms (sms failed: refused)"
        );
        // Tried already: no longer held, whatever was stored.
        let plain = delivery(json!({"status": "DELIVERED", "held": null, "attempts": 1}));
        assert_eq!(delivery_waiting(&plain), "");
    }
}
