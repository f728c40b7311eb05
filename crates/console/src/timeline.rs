//! An order's timeline: every record of the order across all topics (found by its key on
//! the partition the key maps to, from a minute before it was placed), the status each
//! record moved it to, dead letters and replays, each notification and each channel's
//! delivery; in causal order (by time, then by the order of the flow), each record entry
//! pointing at the record in the topic browser; beside them, the notification preferences
//! of the order's user.

use contracts::api::OrderView;
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
fn delivery_waiting(d: &Value) -> String {
    let due = text(d, "nextAttemptAt").unwrap_or_default();
    let mut out = match (text(d, "status").as_deref(), text(d, "held").as_deref()) {
        (Some("PENDING"), Some("quietHours")) => format!(", held by quiet hours until {due}"),
        (Some("PENDING"), Some("digest")) => format!(", a digest due {due}"),
        (Some("GATHERED"), _) => format!(
            ", gathered into digest {}",
            text(d, "digest").unwrap_or_default()
        ),
        _ => String::new(),
    };
    if let Some(of) = text(d, "fallbackOf") {
        out.push_str(&format!(", instead of {of}"));
        if let Some(reason) = text(d, "fallbackReason") {
            out.push_str(&format!(" ({reason})"));
        }
    }
    out
}

/// Puts the timeline together from what the services and the topics said.
pub fn build(
    order_id: i64,
    order: Option<OrderView>,
    notifications: &[Value],
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
        let at = text(n, "createdAt").as_deref().and_then(millis);
        ranked.push((
            at,
            20,
            Entry {
                at_ms: at,
                kind: "notification",
                title: format!(
                    "notification: {}",
                    text(n, "subject").unwrap_or_else(|| text(n, "kind").unwrap_or_default())
                ),
                detail: text(n, "eventType"),
                status: None,
                record: None,
            },
        ));
        for d in n
            .get("deliveries")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let at = text(d, "deliveredAt")
                .or_else(|| text(d, "updatedAt"))
                .as_deref()
                .and_then(millis);
            let error = text(d, "lastError")
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default();
            let waiting = delivery_waiting(d);
            ranked.push((
                at,
                21,
                Entry {
                    at_ms: at,
                    kind: "delivery",
                    title: format!(
                        "{} to {}: {}",
                        text(d, "channel").unwrap_or_default(),
                        text(d, "recipient").unwrap_or_default(),
                        text(d, "status").unwrap_or_default()
                    ),
                    detail: Some(format!(
                        "{} attempt(s){waiting}{error}",
                        text(d, "attempts").unwrap_or_else(|| "0".into())
                    )),
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

    #[test]
    fn a_delivery_says_what_it_waits_for_or_stands_in_for() {
        let held = json!({"status": "PENDING", "held": "quietHours", "nextAttemptAt": "2025-03-11T06:00:00.000Z"});
        assert_eq!(
            delivery_waiting(&held),
            ", held by quiet hours until 2025-03-11T06:00:00.000Z"
        );
        let gathered = json!({"status": "GATHERED", "digest": "0196-key", "nextAttemptAt": "x"});
        assert_eq!(
            delivery_waiting(&gathered),
            ", gathered into digest 0196-key"
        );
        let fallback = json!({"status": "DELIVERED", "held": null, "fallbackOf": "sms", "fallbackReason": "sms failed: refused"});
        assert_eq!(
            delivery_waiting(&fallback),
            ", instead of sms (sms failed: refused)"
        );
        // Tried already: no longer held, whatever was stored.
        let plain = json!({"status": "DELIVERED", "held": null, "attempts": 1});
        assert_eq!(delivery_waiting(&plain), "");
    }
}
