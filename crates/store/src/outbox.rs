//! The transactional outbox: a service writes the events a state change causes into its
//! own `outbox` table in the same transaction as the change ([`enqueue`]); the relay
//! (`messaging::relay`) publishes them in id order with the idempotent producer (`acks=all`) and deletes the
//! rows the broker has acknowledged (on SQLite in bulk, every 200 ms at most while busy). If the broker is down, rows wait and go out
//! when it is back; if the process dies between publish and delete, the row is sent again
//! and consumers drop the duplicate by `eventId`.

use std::collections::HashMap;
use std::sync::Arc;

use contracts::{headers, Event};
use tokio::sync::Notify;

use crate::db::Tx;

/// The outbox table (a [`crate::db::Schema`] statement).
pub const TABLE: &str = "CREATE TABLE IF NOT EXISTS outbox (
    id {id},
    topic TEXT NOT NULL,
    record_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    headers TEXT NOT NULL,
    created_at TEXT NOT NULL
)";

/// An event as an outbox row: its topic, key (the orderId), JSON value and headers.
pub struct Outgoing {
    topic: String,
    key: String,
    payload: String,
    headers: String,
}

impl Outgoing {
    /// The row of `event`, with the trace context of the current span (the request or
    /// record it comes from) among its headers when traces are on: the relay sends it as
    /// the record's `traceparent`/`tracestate`, so the trace survives the outbox.
    pub fn new<E: Event>(topic: &str, event: &E) -> Self {
        Self::traced(topic, event, telemetry::current_context_headers())
    }

    /// The row of `event` with the trace context `trace` (headers, as
    /// [`telemetry::current_context_headers`] gives them) instead of the current span's.
    pub fn traced<E: Event>(topic: &str, event: &E, trace: Vec<(String, String)>) -> Self {
        let mut headers: HashMap<String, String> = HashMap::from([
            (headers::EVENT_ID.to_string(), event.event_id().to_string()),
            (headers::EVENT_TYPE.to_string(), E::TYPE.to_string()),
            (headers::EVENT_VERSION.to_string(), E::VERSION.to_string()),
            (headers::CONTENT_TYPE.to_string(), headers::JSON.to_string()),
        ]);
        headers.extend(trace);
        Self {
            topic: topic.to_string(),
            key: event.order_id().to_string(),
            payload: serde_json::to_string(event).expect("events always serialize to JSON"),
            headers: serde_json::to_string(&headers).expect("a string map serializes"),
        }
    }
}

/// The outbox's columns as [`enqueue_all`] writes them, `created_at` last.
pub const COLUMNS: &str = "topic, record_key, payload, headers, created_at";

impl Outgoing {
    /// The row's values in [`COLUMNS`] order, but for `created_at` (the writer's clock).
    pub fn values(&self) -> [&str; 4] {
        [&self.topic, &self.key, &self.payload, &self.headers]
    }
}

/// Writes `event` to the outbox inside the caller's transaction, keyed by its orderId.
pub async fn enqueue<E: Event>(tx: &mut Tx, topic: &str, event: &E) -> Result<(), sqlx::Error> {
    enqueue_all(tx, &[Outgoing::new(topic, event)]).await
}

/// Writes `events` to the outbox, in this order, with one statement; the transaction's
/// commit wakes the relay.
pub async fn enqueue_all(tx: &mut Tx, events: &[Outgoing]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    tx.wake_relay_on_commit();
    let now = telemetry::now_text();
    for chunk in crate::db::statement_chunks(events, 5) {
        let sql = format!(
            "INSERT INTO outbox ({COLUMNS}) VALUES {}",
            crate::db::value_rows(chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for event in chunk {
            query = query
                .bind(&event.topic)
                .bind(&event.key)
                .bind(&event.payload)
                .bind(&event.headers)
                .bind(&now);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Wakes the relay after a commit, so an event goes out at once rather than at the next
/// poll. Each [`Database`] has one ([`Database::relay_waker`]); its transactions wake it
/// when they wrote to the outbox.
#[derive(Clone, Debug, Default)]
pub struct Waker(Arc<Notify>);

impl Waker {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    pub fn notify(&self) -> &Arc<Notify> {
        &self.0
    }
}
