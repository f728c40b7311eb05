//! notification-service's database: one notification per inventory event, unique by event id,
//! and the outbox every service has (empty until notification-service publishes events).

use platform::db::{Database, Schema, Tx};
use serde::Serialize;
use sqlx::Row;

pub const SCHEMA: Schema = Schema {
    sqlite: &[
        "CREATE TABLE IF NOT EXISTS notifications (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            order_id INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            channel TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT NOT NULL,
            created_at TEXT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS notifications_by_order ON notifications (order_id, id)",
        platform::outbox::SQLITE_TABLE,
        platform::dedupe::DEAD_LETTERED_TABLE,
    ],
    postgres: &[
        "CREATE TABLE IF NOT EXISTS notifications (
            id BIGSERIAL PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            order_id BIGINT NOT NULL,
            event_type TEXT NOT NULL,
            channel TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT NOT NULL,
            created_at TEXT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS notifications_by_order ON notifications (order_id, id)",
        platform::outbox::POSTGRES_TABLE,
        platform::dedupe::DEAD_LETTERED_TABLE,
    ],
};

/// A notification as the API shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: i64,
    pub event_id: String,
    pub order_id: i64,
    pub event_type: String,
    pub channel: String,
    pub status: String,
    pub message: String,
    pub created_at: String,
}

/// What to record for one event.
pub struct NewNotification<'a> {
    pub event_id: &'a str,
    pub order_id: i64,
    pub event_type: &'a str,
    pub channel: &'a str,
    pub message: &'a str,
}

/// Records the notification unless one exists for this event; true if it was new.
pub async fn insert(tx: &mut Tx, n: &NewNotification<'_>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO notifications (event_id, order_id, event_type, channel, status, message, created_at)
         VALUES ($1, $2, $3, $4, 'DELIVERED', $5, $6) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(n.event_id)
    .bind(n.order_id)
    .bind(n.event_type)
    .bind(n.channel)
    .bind(n.message)
    .bind(platform::now_text())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

const COLUMNS: &str = "id, event_id, order_id, event_type, channel, status, message, created_at";

/// Notifications of one order (oldest first), or the latest `limit` of all orders (newest first).
pub async fn list(
    db: &Database,
    order_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    let rows = match order_id {
        Some(order_id) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM notifications WHERE order_id = $1 ORDER BY id LIMIT $2"
            ))
            .bind(order_id)
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM notifications ORDER BY id DESC LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
        }
    };
    rows.iter()
        .map(|row| {
            Ok(Notification {
                id: row.try_get("id")?,
                event_id: row.try_get("event_id")?,
                order_id: row.try_get("order_id")?,
                event_type: row.try_get("event_type")?,
                channel: row.try_get("channel")?,
                status: row.try_get("status")?,
                message: row.try_get("message")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}
