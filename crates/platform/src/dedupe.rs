//! Effectively-once effects on top of at-least-once delivery: a consumer marks each event
//! id processed in the same transaction as the event's effect, and skips ids already marked.

use std::collections::HashSet;

use sqlx::Row;

use crate::db::Tx;

/// The same table on both backends.
pub const TABLE: &str = "CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT PRIMARY KEY,
    processed_at TEXT NOT NULL
)";

/// Marks `event_id` processed; false if it already was (a redelivery: apply nothing).
/// Call it first in the transaction: on SQLite the insert takes the write lock up front.
pub async fn mark_processed(tx: &mut Tx, event_id: &str) -> Result<bool, sqlx::Error> {
    Ok(!mark_all(tx, &[event_id]).await?.is_empty())
}

/// [`mark_processed`] for a batch: marks the event id of every item (one statement per
/// [`crate::db::statement_chunks`] piece) and returns the items to apply, in order: those
/// whose id was not marked before, each id once (a later copy within the batch is a
/// duplicate too).
pub async fn keep_unprocessed<T>(
    tx: &mut Tx,
    items: Vec<T>,
    event_id: impl Fn(&T) -> String,
) -> Result<Vec<T>, sqlx::Error> {
    let ids: Vec<String> = items.iter().map(event_id).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut fresh = mark_all(tx, &refs).await?;
    Ok(items
        .into_iter()
        .zip(&ids)
        .filter_map(|(item, id)| {
            let first = fresh.remove(id);
            if !first {
                tracing::debug!(event_id = %id, "duplicate event ignored");
            }
            first.then_some(item)
        })
        .collect())
}

/// Marks every id of `event_ids` processed; returns those that were not yet. An id given
/// twice is returned once.
async fn mark_all(tx: &mut Tx, event_ids: &[&str]) -> Result<HashSet<String>, sqlx::Error> {
    let mut unique: Vec<&str> = Vec::with_capacity(event_ids.len());
    let mut seen = HashSet::with_capacity(event_ids.len());
    for id in event_ids {
        if seen.insert(*id) {
            unique.push(id);
        }
    }
    if unique.is_empty() {
        return Ok(HashSet::new());
    }
    let now = crate::now_text();
    let mut fresh = HashSet::with_capacity(unique.len());
    for chunk in crate::db::statement_chunks(&unique, 2) {
        let sql = format!(
            "INSERT INTO processed_events (event_id, processed_at) VALUES {}
             ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            crate::db::value_rows(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id).bind(&now);
        }
        for row in query.fetch_all(&mut **tx).await? {
            fresh.insert(row.try_get("event_id")?);
        }
    }
    Ok(fresh)
}

/// Events already dead-lettered, by event id and replay count. The outbox may publish an
/// event twice (a crash between publish and delete); without this, a record that always
/// fails would be dead-lettered once per copy. A replay carries a higher replay count, so
/// it is a new attempt, not a copy.
pub const DEAD_LETTERED_TABLE: &str = "CREATE TABLE IF NOT EXISTS dead_lettered (
    event_id TEXT NOT NULL,
    replay_count INTEGER NOT NULL,
    dead_lettered_at TEXT NOT NULL,
    PRIMARY KEY (event_id, replay_count)
)";

/// Was this copy of the event dead-lettered already?
pub async fn was_dead_lettered(
    db: &crate::db::Database,
    event_id: &str,
    replay_count: u32,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM dead_lettered WHERE event_id = $1 AND replay_count = $2")
            .bind(event_id)
            .bind(i64::from(replay_count))
            .fetch_optional(&db.pool)
            .await?
            .is_some(),
    )
}

/// Notes that the event (at this replay count) is in its dead-letter topic.
pub async fn mark_dead_lettered(
    db: &crate::db::Database,
    event_id: &str,
    replay_count: u32,
) -> Result<(), sqlx::Error> {
    // Every write goes through a transaction, so it queues at the write gate.
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO dead_lettered (event_id, replay_count, dead_lettered_at) VALUES ($1, $2, $3)
         ON CONFLICT (event_id, replay_count) DO NOTHING",
    )
    .bind(event_id)
    .bind(i64::from(replay_count))
    .bind(crate::now_text())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
