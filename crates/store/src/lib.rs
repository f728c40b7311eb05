//! Where a service keeps what it must not lose, above `telemetry`: one database type for
//! SQLite and PostgreSQL, and what every service stores beside its own tables.
//!
//! - [`db`]: the pool, its transactions (which wake the outbox relay on commit) and the
//!   schema list rendered for both backends; [`wal_writes`]: SQLite's WAL writes gathered.
//! - [`outbox`]: the outbox table and writing events into it inside a transaction (the
//!   relay that publishes them is `messaging::relay`).
//! - [`dedupe`]: processed event ids, marked in the same transaction as the effect, with the
//!   fingerprint of what was applied (an id seen again with another body is refused).
//! - [`retention`]: pruning what is kept only for deduplication or history.
//! - [`storage`]: what a database that cannot write means: its fault, its 503, its episode.
//! - [`failure`]: error classification (unavailable, transient, permanent), which a
//!   database error is the first source of.

pub mod db;
pub mod dedupe;
pub mod failure;
pub mod outbox;
pub mod retention;
pub mod storage;
pub mod wal_writes;
