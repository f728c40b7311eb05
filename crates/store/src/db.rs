//! One pool type for both databases: SQLite (embedded default, one file per service)
//! and PostgreSQL (scale-out). Services write portable SQL with `$1` placeholders;
//! where the dialects differ (DDL), they give one statement list per backend.

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};
use tokio::sync::Notify;

use crate::outbox::Waker;
use crate::storage::StorageHealth;

/// A database transaction. Use it as a connection (`&mut *tx`) and end it with
/// [`Tx::commit`]; dropped, it rolls back. On SQLite it holds the database's one writer
/// connection (see [`Database::begin`]).
///
/// Whoever sends what a transaction queued (the outbox relay, a dispatcher) is woken by
/// its commit: the code that queues says so with [`Tx::wake_on_commit`] (the outbox does
/// it in [`crate::outbox::enqueue_all`]), so no caller has to remember to.
pub struct Tx {
    inner: sqlx::Transaction<'static, Any>,
    relay: Waker,
    wake: Vec<Arc<Notify>>,
    /// Run after a successful commit ([`Tx::on_commit`]).
    then: Vec<Box<dyn FnOnce() + Send>>,
    /// With traces on, the transaction's span, from its begin (inside a span) or from
    /// [`Tx::trace_in`] to its end.
    span: tracing::Span,
    backend: Backend,
    /// Told whether the commit succeeded ([`crate::storage`]).
    storage: StorageHealth,
}

impl Tx {
    /// Commits, then wakes whoever [`Tx::wake_on_commit`] named.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        use tracing::Instrument;
        let span = self.span.clone();
        let committed = self.inner.commit().instrument(span.clone()).await;
        match &committed {
            Ok(()) => self.storage.committed(),
            Err(err) => {
                span.record("error.type", error_type(err));
                self.storage.failed(err);
            }
        }
        committed?;
        for notify in &self.wake {
            notify.notify_one();
        }
        for then in self.then {
            then();
        }
        Ok(())
    }

    /// After a successful commit, run `then` (after the wakes of [`Tx::wake_on_commit`], in
    /// the order they were given): for what must happen only once the transaction's writes
    /// are visible, such as telling waiters in this process what changed. Dropped, unrun,
    /// when the transaction rolls back.
    pub fn on_commit(&mut self, then: impl FnOnce() + Send + 'static) {
        self.then.push(Box::new(then));
    }

    /// The engine this transaction runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Makes this transaction's span (if it has none yet) a child of `parent`, from now to
    /// its end: for a transaction begun before the span of the work it does (a consumer's
    /// batch, an intake batch of requests) was made.
    pub fn trace_in(&mut self, parent: &tracing::Span) {
        if self.span.is_none() {
            self.span = transaction_span(self.backend, Some(parent));
        }
    }

    /// After a successful commit, wake `notify` (once, however often this is called).
    pub fn wake_on_commit(&mut self, notify: &Arc<Notify>) {
        if !self.wake.iter().any(|n| Arc::ptr_eq(n, notify)) {
            self.wake.push(notify.clone());
        }
    }

    /// After a successful commit, wake this database's outbox relay.
    pub fn wake_relay_on_commit(&mut self) {
        let relay = self.relay.notify().clone();
        self.wake_on_commit(&relay);
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.span.record("db.response.status_code", "ROLLBACK");
        self.inner.rollback().await
    }
}

/// With traces on, the CLIENT span of one transaction, child of `parent` (semantic
/// conventions 1.37: `db.system.name`, `db.operation.name`; ended at commit, rollback or
/// drop). Statements inside are not spans of their own: the transaction is the unit the
/// services write in. Without a parent, none: a transaction outside any span (a consumer
/// batch's, until [`Tx::trace_in`]) would be a trace of its own, of no use; nor under a
/// trace the sampler left out ([`telemetry::left_out`]).
fn transaction_span(backend: Backend, parent: Option<&tracing::Span>) -> tracing::Span {
    let Some(parent) = parent.filter(|p| !p.is_none()) else {
        return tracing::Span::none();
    };
    if !telemetry::traces_enabled() || telemetry::span_left_out(parent) {
        return tracing::Span::none();
    }
    tracing::info_span!(
        parent: parent,
        "db.transaction",
        otel.name = "TRANSACTION",
        otel.kind = "client",
        db.system.name = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        },
        db.operation.name = "TRANSACTION",
        db.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// `error.type` of a database error: its SQLSTATE code when it has one, else its kind.
fn error_type(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .map_or_else(|| "database".into(), |c| c.into_owned()),
        sqlx::Error::PoolTimedOut => "pool_timed_out".into(),
        sqlx::Error::Io(_) => "io".into(),
        _ => "other".into(),
    }
}

impl Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

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

/// `$from, …` for `n` bind parameters of an `IN (…)` list.
pub fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Most bind parameters one set-based statement takes. SQLite finds a `$N` parameter by
/// a linear search of the statement's parameter names, when it parses the statement and
/// again when a value is bound to it, so a statement's cost grows with the square of its
/// parameters: at a few thousand, that search was a third of `openorder up`'s CPU.
const MAX_PARAMETERS: usize = 256;

/// Splits `rows` (of `columns` bind parameters each) into the pieces that multi-row
/// statements take: as many pieces of the largest size as fit (a power of two, at most
/// [`MAX_PARAMETERS`] parameters), then the rest in power-of-two pieces. So a statement
/// comes in a handful of sizes only, and each size is prepared once per connection (the
/// statement cache keys on the SQL text).
pub fn statement_chunks<T>(rows: &[T], columns: usize) -> Vec<&[T]> {
    let largest = (MAX_PARAMETERS / columns.max(1)).max(1);
    let largest = 1 << largest.ilog2();
    let mut pieces = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let size = largest.min(1 << rest.len().ilog2());
        let (piece, tail) = rest.split_at(size);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// `($1, $2), ($3, $4), …`: `rows` rows of `columns` bind parameters each, for a
/// multi-row `INSERT … VALUES`. Set-based statements like that one cost a batch one round
/// trip instead of one per row.
pub fn value_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", placeholders(row * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes sure the directory of a SQLite file exists and that the file is created if missing.
fn prepare_sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or_default();
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" && !path.is_empty() {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("Failed to create directory {}", dir.display()))?;
            }
        }
    }
    let mut query = query.to_string();
    if !query.contains("mode=") {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str("mode=rwc");
    }
    // Parsed only to fail early with a clear message on a malformed URL.
    let url = format!("sqlite://{path}?{query}");
    sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .with_context(|| format!("Invalid SQLite URL {url:?}"))?;
    Ok(url)
}

/// A URL with its password replaced (in the user info and in a `password=` parameter),
/// for log lines and errors.
pub fn redact(url: &str) -> String {
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => url.to_string(),
    };
    let url = url.as_str();
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Is this error one that a retry may cure once its cause is gone (connection lost,
/// database busy, pool exhausted, disk full, database read-only)? See
/// [`crate::storage::StorageFault`].
pub fn is_transient(err: &sqlx::Error) -> bool {
    crate::storage::StorageFault::of(err).is_some()
}

/// Where a service keeps its data. (`Debug` shows the URL without its password.)
#[derive(clap::Args, Clone)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://path/to/file.db` or `postgres://user:pass@host/db`.
    #[arg(long, env = "OPENORDER_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Largest number of pooled connections.
    #[arg(long, env = "OPENORDER_DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,

    #[command(flatten)]
    pub retention: crate::retention::RetentionArgs,
}

impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field("database_url", &crate::db::redact(&self.database_url))
            .field("database_max_connections", &self.database_max_connections)
            .field("retention", &self.retention)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://app:s3cret@127.0.0.1/db"),
            "postgres://app:***@127.0.0.1/db"
        );
        assert_eq!(redact("sqlite://data/order.db"), "sqlite://data/order.db");
        assert_eq!(
            redact("postgres://db/x?sslmode=require&password=s3cret"),
            "postgres://db/x?sslmode=require&password=***"
        );
    }

    #[tokio::test]
    async fn each_migration_runs_once_and_newer_databases_are_refused() {
        let dir = std::env::temp_dir().join(format!("oo-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/m.db", dir.display());
        const V1: Schema = Schema(&["CREATE TABLE IF NOT EXISTS t (a {int})"]);
        // Not idempotent: would fail if applied twice.
        const V2: Schema = Schema(&[
            "CREATE TABLE IF NOT EXISTS t (a {int})",
            "ALTER TABLE t ADD COLUMN b TEXT",
        ]);
        Database::connect(&url, 1, &V1)
            .await
            .unwrap()
            .pool
            .close()
            .await;
        Database::connect(&url, 1, &V2)
            .await
            .unwrap()
            .pool
            .close()
            .await;
        let db = Database::connect(&url, 1, &V2).await.unwrap();
        sqlx::query("INSERT INTO t (a, b) VALUES (1, 'x')")
            .execute(&db.pool)
            .await
            .unwrap();
        db.pool.close().await;
        let err = Database::connect(&url, 1, &V1).await.unwrap_err();
        assert!(err.to_string().contains("newer than this build"), "{err}");
    }

    /// A file system of `size` (a tmpfs, mounted with `mount(8)`: the tests run as root in
    /// CI), unmounted on drop.
    struct SmallDisk(std::path::PathBuf);

    impl SmallDisk {
        fn mount(size: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("oo-disk-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&dir)
                .status()
                .expect("mount(8) runs");
            assert!(
                status.success(),
                "mounting a {size} tmpfs at {} failed (the storage-fault tests need root)",
                dir.display()
            );
            Self(dir)
        }

        /// Fills the file system but for about `free` bytes, with a file
        /// [`SmallDisk::free`] removes: written until the disk refuses, then cut by `free`.
        fn fill_leaving(&self, free: u64) {
            use std::io::Write;
            let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
            let chunk = vec![0u8; 64 * 1024];
            let mut written = 0u64;
            while let Ok(n) = filler.write(&chunk) {
                if n == 0 {
                    break;
                }
                written += n as u64;
            }
            filler.set_len(written.saturating_sub(free)).unwrap();
        }

        fn free(&self) {
            std::fs::remove_file(self.0.join("filler")).unwrap();
        }
    }

    impl Drop for SmallDisk {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn a_commit_the_full_disk_refused_leaves_no_transaction_open_and_commits_resume_once_space_returns(
    ) {
        let disk = SmallDisk::mount("8m");
        let url = format!("sqlite://{}/full.db", disk.0.display());
        const SCHEMA: Schema = Schema(&["CREATE TABLE IF NOT EXISTS t (id {id}, v BLOB NOT NULL)"]);
        let db = Database::connect(&url, 2, &SCHEMA).await.unwrap();
        let insert = |len: usize| {
            let db = &db;
            async move {
                let mut tx = db.begin().await?;
                let id = sqlx::query("INSERT INTO t (v) VALUES ($1) RETURNING id")
                    .bind(vec![7u8; len])
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get::<i64, _>(0)?;
                tx.commit().await.map(|()| id)
            }
        };
        let first = insert(10).await.unwrap();
        disk.fill_leaving(64 * 1024);
        // Each of these needs more than the space left: its commit (or a statement, had the
        // pages spilled) fails with SQLITE_FULL, and SQLite rolls the transaction back.
        let mut refused = 0;
        for _ in 0..5 {
            match insert(512 * 1024).await {
                Ok(id) => panic!("order {id} was committed on a full disk"),
                Err(err) => {
                    assert_eq!(
                        crate::storage::StorageFault::of(&err),
                        Some(crate::storage::StorageFault::Full),
                        "{err}"
                    );
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 5);
        let failing = db.storage().failing().expect("the database is failing");
        assert_eq!(failing.fault, crate::storage::StorageFault::Full);
        disk.free();
        // Space is back: the next commit commits, without a restart, and is seen by
        // another connection (not left inside a transaction that never ends).
        let next = insert(10).await.expect("commits again once space returns");
        assert!(db.storage().failing().is_none(), "the episode ended");
        assert!(next > first, "ids keep growing: {next} after {first}");
        let mut other = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let ids: Vec<i64> = sqlx::query("SELECT id FROM t ORDER BY id")
            .fetch_all(&mut other)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<i64, _>(0).unwrap())
            .collect();
        assert_eq!(
            ids,
            [first, next],
            "exactly the committed rows, nothing else"
        );
        // And a writer outside this process can take the database: nothing holds it.
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        db.pool.close().await;
        db.writer.close().await;
    }

    #[test]
    fn statement_chunks_come_in_power_of_two_sizes_within_the_parameter_limit() {
        let rows: Vec<u32> = (0..300).collect();
        let sizes: Vec<usize> = statement_chunks(&rows, 4).iter().map(|c| c.len()).collect();
        // 64 rows of 4 parameters = 256: four of them, then 44 = 32 + 8 + 4.
        assert_eq!(sizes, [64, 64, 64, 64, 32, 8, 4]);
        let flat: Vec<u32> = statement_chunks(&rows, 4).concat();
        assert_eq!(flat, rows, "every row once, in order");
        assert!(statement_chunks::<u32>(&[], 3).is_empty());
        assert_eq!(
            statement_chunks(&rows[..3], 300).len(),
            3,
            "one row per statement at least"
        );
    }

    #[test]
    fn one_schema_renders_each_dialects_types() {
        const S: Schema = Schema(&["CREATE TABLE t (id {id}, n {int} NOT NULL, s TEXT)"]);
        assert_eq!(
            S.render(Backend::Sqlite),
            ["CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, s TEXT)"]
        );
        assert_eq!(
            S.render(Backend::Postgres),
            ["CREATE TABLE t (id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL, s TEXT)"]
        );
    }

    #[test]
    fn value_rows_number_parameters_row_after_row() {
        assert_eq!(value_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(3, 2), "$3, $4");
    }

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = std::env::temp_dir().join(format!("oo-{}", uuid::Uuid::new_v4()));
        let url = prepare_sqlite_url(&format!("sqlite://{}/a.db", dir.display())).unwrap();
        assert!(url.ends_with("a.db?mode=rwc"), "{url}");
        assert!(dir.is_dir());
    }
}
