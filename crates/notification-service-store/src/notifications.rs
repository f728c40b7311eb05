//! Notifications: recorded once per event (waiting for their order's contact, or routed with
//! their rendered message), which orders have their decision told, and the API's listing.

use std::collections::{HashMap, HashSet};

use contracts::api::{DeliveryView, Notification};
use platform::db::{placeholders, value_rows, Database, Tx};
use sqlx::Row;

use super::{AWAITING_CONTACT, GATHERED, PENDING, ROUTED};

/// What to record for one event, before it is routed.
pub struct NewNotification<'a> {
    pub event_id: &'a str,
    pub order_id: i64,
    pub event_type: &'a str,
    pub kind: &'a str,
    /// JSON: what the templates will be given once the user is known.
    pub context: &'a str,
    /// The trace context the webhook request continues ([`platform::telemetry::trace_text`]).
    pub trace: &'a str,
}

/// Records each notification unless one exists for its event, in one statement: the ids
/// of those that were new, by event id. A notification with a `Routed` is recorded routed
/// (its deliveries follow in the same transaction); without, it waits for its order's
/// contact. An event id given twice is recorded once (the first).
pub async fn insert_notifications(
    tx: &mut Tx,
    notifications: &[(NewNotification<'_>, Option<Routed<'_>>)],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let mut seen = HashSet::new();
    let unique: Vec<_> = notifications
        .iter()
        .filter(|(n, _)| seen.insert(n.event_id))
        .collect();
    let now = platform::now_text();
    let mut ids = HashMap::with_capacity(unique.len());
    for chunk in platform::db::statement_chunks(&unique, 13) {
        let sql = format!(
            "INSERT INTO notifications (event_id, order_id, event_type, kind, channel, status, message, subject, html, payload, context, trace, created_at)
             VALUES {} ON CONFLICT (event_id) DO NOTHING RETURNING id, event_id",
            value_rows(chunk.len(), 13)
        );
        let mut query = sqlx::query(&sql);
        for (n, routed) in chunk {
            query = query
                .bind(n.event_id)
                .bind(n.order_id)
                .bind(n.event_type)
                .bind(n.kind)
                .bind(routed.as_ref().map_or("", |r| r.channels))
                .bind(if routed.is_some() {
                    ROUTED
                } else {
                    AWAITING_CONTACT
                })
                .bind(routed.as_ref().map_or("", |r| r.rendered.text.as_str()))
                .bind(routed.as_ref().map_or("", |r| r.rendered.subject.as_str()))
                .bind(routed.as_ref().map_or("", |r| r.rendered.html.as_str()))
                .bind(routed.as_ref().map_or("", |r| r.payload))
                .bind(n.context)
                .bind(n.trace)
                .bind(&now);
        }
        for row in query.fetch_all(&mut **tx).await? {
            ids.insert(row.try_get("event_id")?, row.try_get("id")?);
        }
    }
    Ok(ids)
}

/// A notification's message as routed: rendered, and the channels it goes to.
pub struct Routed<'a> {
    pub rendered: &'a notification_service_rules::templates::Rendered,
    /// The webhook body (JSON).
    pub payload: &'a str,
    /// The channels, comma-separated.
    pub channels: &'a str,
}

/// Marks a waiting notification routed, with its rendered message.
pub async fn set_routed(tx: &mut Tx, id: i64, routed: &Routed<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET subject = $1, message = $2, html = $3, payload = $4, channel = $5, status = $6
         WHERE id = $7",
    )
    .bind(&routed.rendered.subject)
    .bind(&routed.rendered.text)
    .bind(&routed.rendered.html)
    .bind(routed.payload)
    .bind(routed.channels)
    .bind(ROUTED)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A recorded notification not yet routed.
pub struct Awaiting {
    pub id: i64,
    pub order_id: i64,
    pub event_id: String,
    pub kind: String,
    /// JSON: what the templates will be given.
    pub context: String,
}

/// The notifications of `order_ids` still waiting for their order's contact, oldest first.
pub async fn awaiting_of(tx: &mut Tx, order_ids: &[i64]) -> Result<Vec<Awaiting>, sqlx::Error> {
    let mut waiting = Vec::new();
    for chunk in platform::db::statement_chunks(order_ids, 1) {
        let sql = format!(
            "SELECT id, order_id, event_id, kind, context FROM notifications
             WHERE status = $1 AND order_id IN ({}) ORDER BY id",
            placeholders(2, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(AWAITING_CONTACT);
        for id in chunk {
            query = query.bind(*id);
        }
        for r in query.fetch_all(&mut **tx).await? {
            waiting.push(Awaiting {
                id: r.try_get("id")?,
                order_id: r.try_get("order_id")?,
                event_id: r.try_get("event_id")?,
                kind: r.try_get("kind")?,
                context: r.try_get("context")?,
            });
        }
    }
    waiting.sort_by_key(|w| w.id);
    Ok(waiting)
}

/// The template kinds of the notifications that tell an order's decision.
pub const DECIDED_KINDS: [&str; 3] = ["order.confirmed", "order.rejected", "order.cancelled"];

/// The events of those notifications, for notifications recorded before kinds were kept
/// (`kind` empty).
const DECIDED_EVENT_TYPES: [&str; 3] = [
    contracts::topics::INVENTORY_RESERVED,
    contracts::topics::INVENTORY_REJECTED,
    contracts::topics::INVENTORY_RELEASED,
];

/// Which of `order_ids` have a notification of their decision (confirmed, rejected or
/// cancelled) already; one statement per [`platform::db::statement_chunks`] piece.
pub async fn decided_among(tx: &mut Tx, order_ids: &[i64]) -> Result<HashSet<i64>, sqlx::Error> {
    let mut decided = HashSet::new();
    for chunk in platform::db::statement_chunks(order_ids, 1) {
        let sql = format!(
            "SELECT DISTINCT order_id FROM notifications
             WHERE order_id IN ({})
               AND (kind IN ($1, $2, $3) OR (kind = '' AND event_type IN ($4, $5, $6)))",
            placeholders(7, chunk.len())
        );
        let mut query = sqlx::query_scalar(&sql);
        for kind in DECIDED_KINDS {
            query = query.bind(kind);
        }
        for event_type in DECIDED_EVENT_TYPES {
            query = query.bind(event_type);
        }
        for id in chunk {
            query = query.bind(*id);
        }
        let ids: Vec<i64> = query.fetch_all(&mut **tx).await?;
        decided.extend(ids);
    }
    Ok(decided)
}

/// Notifications of one order (oldest first), or the latest `limit` of all orders (newest
/// first), each with its deliveries: one query (the notifications, joined with their
/// deliveries; a notification without any yet comes as one row of NULLs).
/// Notifications of one order (oldest first) or the latest (newest first), up to `limit`;
/// with `user`, only of orders that user placed (as `order.created` said).
pub async fn list(
    db: &Database,
    order_id: Option<i64>,
    user: Option<i64>,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    let mut filters = Vec::new();
    if order_id.is_some() {
        filters.push(format!("order_id = ${}", filters.len() + 1));
    }
    if user.is_some() {
        filters.push(format!(
            "order_id IN (SELECT order_id FROM order_contacts WHERE user_id = ${})",
            filters.len() + 1
        ));
    }
    let filter = match filters.is_empty() {
        true => String::new(),
        false => format!("WHERE {}", filters.join(" AND ")),
    };
    let limit_at = filters.len() + 1;
    let (selected, order) = match order_id {
        Some(_) => (
            format!("SELECT * FROM notifications {filter} ORDER BY id LIMIT ${limit_at}"),
            "n.id",
        ),
        None => (
            format!("SELECT * FROM notifications {filter} ORDER BY id DESC LIMIT ${limit_at}"),
            "n.id DESC",
        ),
    };
    let sql = format!(
        "SELECT n.id, n.event_id, n.order_id, n.event_type, n.kind, n.status, n.subject, n.message,
                n.created_at, d.channel, d.recipient, d.status AS d_status, d.attempts, d.last_error,
                d.idempotency_key, d.created_at AS d_created_at, d.updated_at AS d_updated_at,
                d.delivered_at, d.next_attempt_at, d.held, d.digest, d.fallback_reason,
                f.channel AS fallback_channel
         FROM ({selected}) n LEFT JOIN deliveries d ON d.notification_id = n.id
             LEFT JOIN deliveries f ON f.id = d.fallback_of
         ORDER BY {order}, d.id"
    );
    let mut query = sqlx::query(&sql);
    for value in [order_id, user].into_iter().flatten() {
        query = query.bind(value);
    }
    let query = query.bind(limit);
    let rows = query.fetch_all(&db.pool).await?;
    let mut notifications: Vec<Notification> = Vec::new();
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        if notifications.last().is_none_or(|n| n.id != id) {
            notifications.push(Notification {
                id,
                event_id: row.try_get("event_id")?,
                order_id: row.try_get("order_id")?,
                event_type: row.try_get("event_type")?,
                kind: row.try_get("kind")?,
                status: row.try_get("status")?,
                subject: row.try_get("subject")?,
                message: row.try_get("message")?,
                created_at: row.try_get("created_at")?,
                deliveries: Vec::new(),
            });
        }
        let Some(channel) = row.try_get::<Option<String>, _>("channel")? else {
            continue;
        };
        let status: String = row.try_get("d_status")?;
        let next: i64 = row.try_get("next_attempt_at")?;
        let attempts: i64 = row.try_get("attempts")?;
        let held: Option<String> = row.try_get("held")?;
        let delivery = DeliveryView {
            channel,
            recipient: row.try_get("recipient")?,
            next_attempt_at: (status == PENDING || status == GATHERED)
                .then(|| chrono::DateTime::from_timestamp_millis(next))
                .flatten()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            held: held.filter(|_| status == PENDING && attempts == 0),
            digest: row.try_get("digest")?,
            fallback_of: row.try_get("fallback_channel")?,
            fallback_reason: row.try_get("fallback_reason")?,
            status,
            attempts,
            last_error: row.try_get("last_error")?,
            idempotency_key: row.try_get("idempotency_key")?,
            created_at: row.try_get("d_created_at")?,
            updated_at: row.try_get("d_updated_at")?,
            delivered_at: row.try_get("delivered_at")?,
        };
        notifications
            .last_mut()
            .expect("pushed above")
            .deliveries
            .push(delivery);
    }
    Ok(notifications)
}
