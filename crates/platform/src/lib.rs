//! What every OpenOrder service shares, so that each service holds only its own domain.
//!
//! Layout:
//! - [`config`]: the flags (and environment variables) every service takes.
//! - [`telemetry`]: tracing set-up.
//! - [`db`]: one connection pool type for SQLite and PostgreSQL, pragmas, schema set-up.
//! - [`dedupe`]: processed event ids, marked in the same transaction as the effect.
//! - [`kafka`]: client configuration, topic creation, broker readiness.
//! - [`failure`]: error classification: unavailable, transient, permanent.
//! - [`metrics`]: counters served as Prometheus text.
//! - [`consumer`]: the at-least-once consumer loop: retry with backoff, dead-letter, commit after effect.
//! - [`dead_letter`]: writing a dead letter (Spring's headers, the original partition, a value too large left out).
//! - [`stalls`]: the partitions a consumer waits on, and which of them are stalled.
//! - [`lanes`]: which keys wait on a failing record, and how far each partition's offset may be stored.
//! - [`dlt`]: list, show and replay dead letters (CLI and admin API share it).
//! - [`outbox`]: the transactional outbox and its relay to Kafka.
//! - [`http`]: RFC 9457 problem details, the JSON body extractor, health endpoints, serving.
//! - [`service`]: the start-up and ordered shutdown every service shares.
//! - [`status`]: consumer lag and outbox backlog (`GET /admin/status`).
//! - [`shutdown`]: Ctrl-C / SIGTERM to a cancellation token.
//! - [`fd_limit`]: the open-files limit raised to what the system allows, at start.

pub mod config;
pub mod consumer;
pub mod db;
pub mod dead_letter;
pub mod dedupe;
pub mod dlt;
pub mod failure;
pub mod fd_limit;
pub mod http;
pub mod kafka;
pub mod lanes;
pub mod metrics;
pub mod outbox;
pub mod record;
pub mod router;
pub mod service;
pub mod shutdown;
pub mod stalls;
pub mod status;
pub mod telemetry;
pub mod wal_writes;

pub use tokio_util::sync::CancellationToken;

/// The current time as stored in databases and events: UTC, RFC 3339, milliseconds.
/// One fixed width, so that text order is time order.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
