//! What every OpenOrder service shares, so that each service holds only its own domain.
//!
//! Layout, in the order a record travels:
//! - [`record`]: a Kafka record as the code sees it (headers, order id, JSON value, the
//!   fingerprint of its value), and the contract's key rule (keyed by its event's `orderId`).
//! - [`router`]: the [`router::Handler`] the consumer loop calls, and the [`router::Router`]
//!   every service builds: event type → decoder and handler, each record decoded once.
//! - [`consumer`]: the at-least-once consumer loop: batches, retry, dead-letter, commit after effect.
//! - [`lanes`]: which keys wait on a failing record, and how far each partition's offset may be stored.
//! - [`stalls`]: the keys a consumer waits on, and which of them are stalled.
//! - [`failure`]: error classification: unavailable, transient, permanent.
//! - [`backoff`]: the one exponential backoff every retry uses.
//! - [`dead_letter`]: writing a dead letter (Spring's headers, the original partition, a value too large left out).
//! - [`dlt`]: reading, listing and replaying dead letters (CLI and admin API share it);
//!   [`dlt_api`]: that over HTTP, `/admin/dlt`.
//! - [`dedupe`]: processed event ids, marked in the same transaction as the effect, with the
//!   fingerprint of what was applied (an id seen again with another body is refused).
//! - [`outbox`]: the transactional outbox and its relay to Kafka.
//! - [`retention`]: pruning what is kept only for deduplication or history.
//! - [`storage`]: what a database that cannot write means: its fault, its 503, its episode.
//! - [`db`]: one pool type for SQLite and PostgreSQL, one schema list rendered for both;
//!   transactions wake the relay on commit. [`wal_writes`]: SQLite's WAL writes gathered.
//! - [`kafka`]: client configuration, topic creation (what the topic map gives a service).
//! - [`http`]: problem details, the JSON body extractor, health, middleware, serving.
//! - [`auth`]: who may call what: operator tokens, customers' JWTs, the access rule of each route.
//! - [`service`]: the start-up and ordered shutdown every service shares; [`starting`]:
//!   the port answering, and each dependency awaited, while a service starts.
//! - [`config`]: the flags (and environment variables) every service takes.
//! - [`status`]: consumer lag and outbox backlog (`GET /admin/status`); [`metrics`]:
//!   counters served as Prometheus text; [`telemetry`]: logs (text or JSON) and OpenTelemetry
//!   traces (OTLP export, the trace context of requests, records and rows).
//! - [`shutdown`]: signals to a cancellation token, and the stop's time bound.
//! - [`fd_limit`]: the open-files limit raised to what the system allows, at start.

pub mod auth;
pub mod backoff;
pub mod config;
pub mod consumer;
pub mod db;
pub mod dead_letter;
pub mod dedupe;
pub mod dlt;
pub mod dlt_api;
pub mod failure;
pub mod fd_limit;
pub mod http;
pub mod kafka;
pub mod lanes;
pub mod metrics;
pub mod outbox;
pub mod record;
pub mod retention;
pub mod router;
pub mod service;
pub mod shutdown;
pub mod stalls;
pub mod starting;
pub mod status;
pub mod storage;
pub mod telemetry;
pub mod wal_writes;

pub use tokio_util::sync::CancellationToken;

/// The current time as stored in databases and events: UTC, RFC 3339, milliseconds.
/// One fixed width, so that text order is time order.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
