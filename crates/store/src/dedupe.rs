//! Effectively-once effects on top of at-least-once delivery: a consumer marks each event
//! id processed in the same transaction as the event's effect, and skips ids already marked.
//!
//! What was applied under an id is kept as a fingerprint of the record's value (SHA-256,
//! hex: [`body_hash`]). The same id again with the same value is a redelivery (a copy the
//! outbox published twice, a record read again after a restart, a dead letter replayed to
//! its topic: a replay republishes the value byte for byte) and applies nothing. The same
//! id with another value is not a copy: a producer reused the id for something else, and
//! applying nothing would drop it silently. That is a permanent failure
//! ([`EVENT_ID_REUSED`]), so the record is dead-lettered with the reason. An id marked
//! before fingerprints were kept (`body_hash` NULL) says nothing either way: the record
//! counts as a redelivery, as it always did.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::Tx;
use crate::failure::HandleError;

/// The same table on both backends.
pub const TABLE: &str = "CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT PRIMARY KEY,
    processed_at TEXT NOT NULL
)";

/// The migration that gives `processed_events` the fingerprint of what was applied
/// ([`body_hash`]); appended to the schema of each service that keeps the table. Rows
/// marked before it have NULL: unknown, taken as the same body.
pub const BODY_HASH_COLUMN: &str = "ALTER TABLE processed_events ADD COLUMN body_hash TEXT";

/// The class of the permanent failure of an event id applied before with another body.
pub const EVENT_ID_REUSED: &str = "openorder.EventIdReused";

/// The fingerprint of a record's value: SHA-256 of its bytes, lower-case hex (a record
/// without a value hashes as an empty one).
pub fn body_hash(value: Option<&[u8]>) -> String {
    let digest = Sha256::digest(value.unwrap_or_default());
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Is an event id seen again with fingerprint `hash` a copy of what was applied under it
/// (fingerprint `stored`, None when it was not kept)? A `hash` of None (an id that is not
/// an event's, such as a dead letter's position) is never compared.
pub fn same_body(stored: Option<&str>, hash: Option<&str>) -> bool {
    match (stored, hash) {
        (Some(stored), Some(hash)) => stored == hash,
        _ => true,
    }
}

/// The permanent failure of a record whose event id was applied before with another value.
pub fn reused(event_id: &str) -> HandleError {
    HandleError::permanent(
        EVENT_ID_REUSED,
        format!(
            "event id {event_id} was applied before with a different body: a redelivery carries the same bytes, so this is another event under a reused id"
        ),
    )
}

/// An event to mark processed: its id and the fingerprint of its value ([`body_hash`];
/// None for an id that is not an event's, which is then never compared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub id: String,
    pub hash: Option<String>,
}

/// Marks `mark` processed; false if it already was with the same body (a redelivery:
/// apply nothing), [`EVENT_ID_REUSED`] if it was with another. Call it first in the
/// transaction: on SQLite the insert takes the write lock up front.
pub async fn mark_processed(tx: &mut Tx, mark: &Mark) -> Result<bool, HandleError> {
    Ok(!mark_all(tx, std::slice::from_ref(mark)).await?.is_empty())
}

/// [`mark_processed`] for a batch: marks the event of every item (one statement per
/// [`crate::db::statement_chunks`] piece, and one more read only when some were marked
/// before) and returns the items to apply, in order: those whose id was not marked before,
/// each id once (a later copy within the batch is a duplicate too). An id marked before
/// (or earlier in the batch) with another body fails the whole batch with
/// [`EVENT_ID_REUSED`]; the consumer then applies the batch's records one by one, so that
/// record alone is dead-lettered.
pub async fn keep_unprocessed<T>(
    tx: &mut Tx,
    items: Vec<T>,
    mark: impl Fn(&T) -> Mark,
) -> Result<Vec<T>, HandleError> {
    let marks: Vec<Mark> = items.iter().map(mark).collect();
    let mut fresh = mark_all(tx, &marks).await?;
    Ok(items
        .into_iter()
        .zip(&marks)
        .filter_map(|(item, mark)| {
            let first = fresh.remove(&mark.id);
            if !first {
                tracing::debug!(event_id = %mark.id, "duplicate event ignored");
            }
            first.then_some(item)
        })
        .collect())
}

/// Marks every event of `marks` processed; returns the ids that were not yet. An id given
/// twice is returned once; given twice with different bodies, or marked before with
/// another body, it is an error ([`reused`]).
async fn mark_all(tx: &mut Tx, marks: &[Mark]) -> Result<HashSet<String>, HandleError> {
    let mut unique: Vec<&Mark> = Vec::with_capacity(marks.len());
    let mut first_of: HashMap<&str, &Mark> = HashMap::with_capacity(marks.len());
    for mark in marks {
        if let Some(first) = first_of.get(mark.id.as_str()) {
            if !same_body(first.hash.as_deref(), mark.hash.as_deref()) {
                return Err(reused(&mark.id));
            }
            continue;
        }
        first_of.insert(mark.id.as_str(), mark);
        unique.push(mark);
    }
    if unique.is_empty() {
        return Ok(HashSet::new());
    }
    let now = telemetry::now_text();
    let mut fresh = HashSet::with_capacity(unique.len());
    // Two parameters a row (id, fingerprint) and the time once, as `$1`: as many rows a
    // statement as before fingerprints were kept (the pieces are sized for two a row).
    for chunk in crate::db::statement_chunks(&unique, 2) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, $1, ${})", 2 * i + 2, 2 * i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO processed_events (event_id, processed_at, body_hash) VALUES {}
             ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(&now);
        for mark in chunk {
            query = query.bind(mark.id.as_str()).bind(mark.hash.as_deref());
        }
        for row in query.fetch_all(&mut **tx).await? {
            fresh.insert(row.try_get::<String, _>("event_id")?);
        }
    }
    // Ids marked before: a redelivery, unless the body differs from the one applied. Only
    // those with a fingerprint are compared, so usually nothing is read here.
    let seen: Vec<&Mark> = unique
        .into_iter()
        .filter(|m| m.hash.is_some() && !fresh.contains(&m.id))
        .collect();
    if seen.is_empty() {
        return Ok(fresh);
    }
    let mut stored: HashMap<String, Option<String>> = HashMap::with_capacity(seen.len());
    for chunk in crate::db::statement_chunks(&seen, 1) {
        let sql = format!(
            "SELECT event_id, body_hash FROM processed_events WHERE event_id IN ({})",
            crate::db::placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for mark in chunk {
            query = query.bind(mark.id.as_str());
        }
        for row in query.fetch_all(&mut **tx).await? {
            stored.insert(row.try_get("event_id")?, row.try_get("body_hash")?);
        }
    }
    for mark in seen {
        let before = stored.get(&mark.id).and_then(Option::as_deref);
        if !same_body(before, mark.hash.as_deref()) {
            return Err(reused(&mark.id));
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

/// The migration that gives `dead_lettered` the fingerprint of the record dead-lettered
/// ([`body_hash`]), so that only a copy (the same value) is skipped, never another record
/// under the same id; appended to every service's schema. NULL (marked before it): unknown,
/// taken as a copy.
pub const DEAD_LETTERED_BODY_HASH_COLUMN: &str =
    "ALTER TABLE dead_lettered ADD COLUMN body_hash TEXT";

/// Was this copy of the event (same id, replay count and value fingerprint) dead-lettered
/// already?
pub async fn was_dead_lettered(
    db: &crate::db::Database,
    event_id: &str,
    replay_count: u32,
    hash: &str,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT body_hash FROM dead_lettered WHERE event_id = $1 AND replay_count = $2",
    )
    .bind(event_id)
    .bind(i64::from(replay_count))
    .fetch_optional(&db.pool)
    .await?;
    Ok(match row {
        Some(row) => same_body(
            row.try_get::<Option<String>, _>("body_hash")?.as_deref(),
            Some(hash),
        ),
        None => false,
    })
}

/// Notes that the event (at this replay count, with this value fingerprint) is in its
/// dead-letter topic.
pub async fn mark_dead_lettered(
    db: &crate::db::Database,
    event_id: &str,
    replay_count: u32,
    hash: &str,
) -> Result<(), sqlx::Error> {
    // Every write goes through a transaction, so it queues at the write gate.
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO dead_lettered (event_id, replay_count, dead_lettered_at, body_hash)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (event_id, replay_count) DO NOTHING",
    )
    .bind(event_id)
    .bind(i64::from(replay_count))
    .bind(telemetry::now_text())
    .bind(hash)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_hash_is_the_sha256_of_the_value_in_hex() {
        // SHA-256 of "abc" (FIPS 180-2, appendix B.1) and of nothing.
        assert_eq!(
            body_hash(Some(&b"abc"[..])),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            body_hash(None),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(body_hash(None), body_hash(Some(&b""[..])));
    }

    #[test]
    fn an_event_id_seen_again_is_a_copy_only_with_the_same_body() {
        let one = body_hash(Some(
            &br#"{"eventId":"e","orderId":7,"items":[{"sku":"A","qty":1}]}"#[..],
        ));
        let other = body_hash(Some(
            &br#"{"eventId":"e","orderId":7,"items":[{"sku":"A","qty":5}]}"#[..],
        ));
        assert!(
            same_body(Some(one.as_str()), Some(one.as_str())),
            "a redelivery"
        );
        assert!(
            !same_body(Some(one.as_str()), Some(other.as_str())),
            "another event under the id"
        );
        // A mark from before fingerprints were kept, or an id that is not an event's:
        // nothing to compare, so a copy, as it always was.
        assert!(same_body(None, Some(other.as_str())));
        assert!(same_body(Some(one.as_str()), None));
        assert!(same_body(None, None));
    }

    #[test]
    fn a_reused_event_id_is_a_permanent_failure_naming_the_id() {
        let err = reused("0b5e7c1e-1d2a-4c55-9a57-3c0f2d1f9e01");
        assert_eq!(err.kind, crate::failure::FailureKind::Permanent);
        assert_eq!(err.class, "openorder.EventIdReused");
        assert!(err
            .message
            .contains("event id 0b5e7c1e-1d2a-4c55-9a57-3c0f2d1f9e01 was applied before with a different body"));
    }
}
