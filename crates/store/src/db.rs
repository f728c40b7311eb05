//! One pool type for both databases: SQLite (embedded default, one file per service)
//! and PostgreSQL (scale-out). Services write portable SQL with `$1` placeholders;
//! where the dialects differ (DDL), they give one statement list per backend.
//!
//! - [`Tx`] (in `tx`): a transaction, its commit and its span.
//! - `sql`: [`placeholders`], [`value_rows`], [`statement_chunks`] for set-based SQL.
//! - `urls`: a SQLite URL made ready to open, and [`redact`].
//! - [`DatabaseArgs`] (in `args`): a service's database flags.

mod args;
mod sql;
mod tx;
mod urls;

use std::str::FromStr;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};

pub use args::DatabaseArgs;
pub use sql::{placeholders, statement_chunks, value_rows};
pub use tx::Tx;
pub use urls::redact;

use crate::outbox::Waker;
use crate::storage::StorageHealth;
use tx::{error_type, transaction_span};
use urls::prepare_sqlite_url;

/// Which database engine a pool talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Schema migrations of one service, one list for both databases: statement *n* (from 1)
/// is migration *n*, applied once, in order, and recorded in `schema_migrations`. Append
/// only: never edit or reorder a statement that has shipped; add one (e.g. `ALTER TABLE …
/// ADD COLUMN …`). The first statements of every service are idempotent `CREATE … IF NOT
/// EXISTS`, so a database created before `schema_migrations` existed is brought up to
/// date too.
///
/// Where the dialects differ, a statement says so with a token ([`Schema::render`]):
/// `{id}` is an auto-incremented 64-bit primary key (SQLite `INTEGER PRIMARY KEY
/// AUTOINCREMENT`, PostgreSQL `BIGSERIAL PRIMARY KEY`), `{int}` a 64-bit integer (`INTEGER`,
/// `BIGINT`). Everything else is the same SQL on both.
pub struct Schema(pub &'static [&'static str]);

impl Schema {
    /// The statements for `backend`, tokens replaced.
    pub fn render(&self, backend: Backend) -> Vec<String> {
        let (id, int) = match backend {
            Backend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER"),
            Backend::Postgres => ("BIGSERIAL PRIMARY KEY", "BIGINT"),
        };
        self.0
            .iter()
            .map(|statement| statement.replace("{id}", id).replace("{int}", int))
            .collect()
    }
}

/// A connection pool and the backend behind it.
#[derive(Clone, Debug)]
pub struct Database {
    /// For reads outside a transaction.
    pub pool: AnyPool,
    pub backend: Backend,
    /// Where transactions get their connection ([`Database::begin`]): on SQLite a pool of
    /// one connection, on PostgreSQL `pool` itself.
    writer: AnyPool,
    /// Woken by commits that wrote to the outbox ([`Tx::wake_relay_on_commit`]).
    relay: Waker,
    /// Whether commits succeed ([`crate::storage`]).
    storage: StorageHealth,
}

impl Database {
    /// Connects (creating a SQLite file and its directory when missing) and applies `schema`.
    pub async fn connect(url: &str, max_connections: u32, schema: &Schema) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL {url:?}: expected sqlite://… or postgres://…");
        };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_string(),
        };
        let connect = |options: AnyPoolOptions| async {
            options
                .connect(&url)
                .await
                .with_context(|| format!("Failed to connect to database {}", redact(&url)))
        };
        let options = AnyPoolOptions::new().max_connections(max_connections);
        let db = match backend {
            Backend::Sqlite => {
                crate::wal_writes::install().map_err(anyhow::Error::msg)?;
                let pool =
                    connect(options.after_connect(|conn, _| Box::pin(sqlite_setup(conn)))).await?;
                // One connection for every transaction, kept for good: SQLite has one
                // writer at a time anyway, and a connection drops its page cache whenever
                // another connection wrote since its last transaction, so transactions
                // taking turns over a pool's connections read the pages they need from the
                // file again, each time. The pool queues waiting transactions in order.
                let writer = AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .test_before_acquire(false)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .after_connect(|conn, _| Box::pin(sqlite_setup(conn)));
                Self {
                    pool,
                    backend,
                    writer: connect(writer).await?,
                    relay: Waker::default(),
                    storage: StorageHealth::new(redact(&url)),
                }
            }
            Backend::Postgres => {
                let pool = connect(options).await?;
                Self {
                    writer: pool.clone(),
                    pool,
                    backend,
                    relay: Waker::default(),
                    storage: StorageHealth::new(redact(&url)),
                }
            }
        };
        db.apply(schema).await?;
        Ok(db)
    }

    /// Fails on a URL that no connection could use (unsupported scheme, malformed), before
    /// anything is contacted.
    pub fn check_url(url: &str) -> anyhow::Result<()> {
        if url.starts_with("sqlite:") {
            prepare_sqlite_url(url)?;
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            sqlx::postgres::PgConnectOptions::from_str(url)
                .with_context(|| format!("Invalid PostgreSQL URL {}", redact(url)))?;
        } else {
            anyhow::bail!(
                "unsupported database URL {:?}: expected sqlite://… or postgres://…",
                redact(url)
            );
        }
        Ok(())
    }

    /// Does the database at `url` take a connection (within 3 s)? For start-up, which
    /// waits for a database that is away (`runtime::starting`). A SQLite file is local:
    /// always yes here ([`Database::connect`] reports what is wrong with it).
    pub async fn reachable(url: &str) -> anyhow::Result<()> {
        if url.starts_with("sqlite:") {
            return Ok(());
        }
        sqlx::any::install_default_drivers();
        let connect = <AnyConnection as sqlx::Connection>::connect(url);
        let connection = tokio::time::timeout(std::time::Duration::from_secs(3), connect)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within 3 s"))??;
        let _ = sqlx::Connection::close(connection).await;
        Ok(())
    }

    /// Applies the migrations this database has not seen yet, in one transaction (on
    /// PostgreSQL under an advisory lock, so instances starting together take turns).
    async fn apply(&self, schema: &Schema) -> anyhow::Result<()> {
        let statements = schema.render(self.backend);
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            // An arbitrary constant: "the schema of this database is being changed".
            sqlx::query("SELECT pg_advisory_xact_lock(7261002)")
                .execute(&mut *tx)
                .await
                .context("Failed to take the schema migration lock")?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .context("Failed to create schema_migrations")?;
        let applied: i64 =
            sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
                .fetch_one(&mut *tx)
                .await?
                .try_get("v")?;
        if applied > statements.len() as i64 {
            anyhow::bail!(
                "the database has schema version {applied}, newer than this build knows ({}): refusing to run an older build against it",
                statements.len()
            );
        }
        for (index, statement) in statements.iter().enumerate().skip(applied as usize) {
            let version = index as i64 + 1;
            sqlx::query(statement.as_str())
                .execute(&mut *tx)
                .await
                .with_context(|| {
                    format!("Failed to apply schema migration {version}: {statement}")
                })?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(telemetry::now_text())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit()
            .await
            .context("Failed to commit schema migrations")?;
        Ok(())
    }

    /// Begins a transaction. On SQLite, transactions of this process take turns (in
    /// FIFO order) for the database's one writer connection before they begin: SQLite has
    /// one writer at a time, and a writer that finds it busy sleeps in SQLite's busy
    /// handler for 1 ms, then 2, 5, 10 … 100 ms, which under load made latency spikes out
    /// of waits of a few hundred microseconds. Reads outside a transaction do not wait
    /// (WAL lets them run beside the writer).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        use tracing::Instrument;
        let span = transaction_span(self.backend, Some(&tracing::Span::current()));
        let inner = match self.writer.begin().instrument(span.clone()).await {
            Ok(inner) => inner,
            Err(err) => {
                self.storage.failed(&err);
                return Err(err);
            }
        };
        Ok(Tx {
            inner,
            relay: self.relay.clone(),
            wake: Vec::new(),
            then: Vec::new(),
            span,
            backend: self.backend,
            storage: self.storage.clone(),
        })
    }

    /// Runs `query`, one statement, as a transaction of its own: the database commits it as
    /// it ends, so it costs one round trip where `begin`, the statement and `commit` cost
    /// three (and on PostgreSQL with fsync, the same one commit). Traced, and noted in the
    /// storage health, as a [`Tx`] is; `wakes_relay`: the statement wrote to the outbox.
    /// For a whole transaction that is one statement only (data-modifying `WITH` clauses
    /// make several inserts one statement on PostgreSQL).
    pub async fn execute_alone<'q>(
        &self,
        query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
        parent: Option<&tracing::Span>,
        wakes_relay: bool,
    ) -> Result<u64, sqlx::Error> {
        use tracing::Instrument;
        let span = transaction_span(self.backend, parent);
        let done = query.execute(&self.writer).instrument(span.clone()).await;
        match &done {
            Ok(_) => {
                span.record("db.response.status_code", "COMMIT");
                self.storage.committed();
                if wakes_relay {
                    self.relay.wake();
                }
            }
            Err(err) => {
                span.record("error.type", error_type(err));
                self.storage.failed(err);
            }
        }
        Ok(done?.rows_affected())
    }

    /// Whether this database's commits succeed ([`crate::storage`]).
    pub fn storage(&self) -> &StorageHealth {
        &self.storage
    }

    /// Notes `result`'s error, if it is a storage fault, in this database's
    /// [`StorageHealth`] (for errors met by statements inside a transaction, which never
    /// reached its commit), and passes it on.
    pub fn observe<T>(&self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if let Err(err) = &result {
            self.storage.failed(err);
        }
        result
    }

    /// Can this database commit? A write that changes nothing (`applied_at` of the newest
    /// migration set to itself), committed through the writer: it needs the same space,
    /// permissions and connection as any other commit, so it fails while they do. Used by
    /// `/health/ready` while commits are failing, so that readiness returns without
    /// waiting for traffic to try.
    pub async fn probe_commit(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.begin().await?;
        let written = sqlx::query(
            "UPDATE schema_migrations SET applied_at = applied_at \
             WHERE version = (SELECT MAX(version) FROM schema_migrations)",
        )
        .execute(&mut *tx)
        .await;
        let written = self.observe(written);
        written?;
        tx.commit().await
    }

    /// What wakes this database's outbox relay (commits that enqueued events do).
    pub fn relay_waker(&self) -> Waker {
        self.relay.clone()
    }

    /// `SELECT 1`: is the database answering?
    pub async fn ping(&self) -> anyhow::Result<()> {
        let row: AnyRow = sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        let _: i32 = row
            .try_get(0)
            .or_else(|_| row.try_get::<i64, _>(0).map(|v| v as i32))?;
        Ok(())
    }
}

/// Settings of every SQLite connection.
async fn sqlite_setup(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    // WAL lets readers run beside the writer; FULL fsyncs each commit, so an order
    // answered 202 survives a power cut, not only a crash.
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.execute("PRAGMA synchronous = FULL").await?;
    conn.execute("PRAGMA busy_timeout = 10000").await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    // Statement journals (kept while a statement that may fail halfway runs inside a
    // transaction) in memory rather than a temporary file: they only ever undo a
    // statement, never survive one.
    conn.execute("PRAGMA temp_store = MEMORY").await?;
    Ok(())
}

/// Is this error one that a retry may cure once its cause is gone (connection lost,
/// database busy, pool exhausted, disk full, database read-only)? See
/// [`crate::storage::StorageFault`].
pub fn is_transient(err: &sqlx::Error) -> bool {
    crate::storage::StorageFault::of(err).is_some()
}

#[cfg(test)]
mod tests;
