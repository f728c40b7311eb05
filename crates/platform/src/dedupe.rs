//! Effectively-once effects on top of at-least-once delivery: a consumer marks each event
//! id processed in the same transaction as the event's effect, and skips ids already marked.

use crate::db::Tx;

/// The same table on both backends.
pub const TABLE: &str = "CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT PRIMARY KEY,
    processed_at TEXT NOT NULL
)";

/// Marks `event_id` processed; false if it already was (a redelivery: apply nothing).
/// Call it first in the transaction: on SQLite the insert takes the write lock up front.
pub async fn mark_processed(tx: &mut Tx, event_id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO processed_events (event_id, processed_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(crate::now_text())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
