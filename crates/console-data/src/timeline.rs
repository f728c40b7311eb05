//! An order's timeline: every record of the order across all topics (found by its key on
//! the partition the key maps to, from a minute before it was placed), the status each
//! record moved it to, dead letters and replays, each notification and each channel's
//! delivery; in causal order (by time, then by the order of the flow), each record entry
//! pointing at the record in the topic browser; beside them, the notification preferences
//! of the order's user.
//!
//! [`gather`] reads it all from the services and the brokers side by side; [`build`] puts
//! it together, each record's entry saying what `entries` reads in it.

mod entries;
mod gather;

use contracts::api::{Notification, OrderView};
use serde::Serialize;
use serde_json::Value;

use crate::records::Page;
use entries::{delivery_waiting, flow_rank, record_entry};

pub use gather::{gather, preferences_of};

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
mod tests;
