// OpenOrder patch (vendor/README.md): the connection runs its statements on the calling
// thread instead of a dedicated worker thread.
//
// Upstream, every SQLite connection has its own thread and each command (a statement, a
// BEGIN, a COMMIT, every row of a result) crosses a channel to it and back: two or more
// thread wake-ups per statement. Under load that hand-off cost more CPU than SQLite's own
// work (`perf`: futex wake-ups and context switches were the top of the profile). SQLite
// statements are short, and a connection is used by one task at a time, so here each
// command takes the connection's lock, runs to the end right where it was called, and
// hands back what it produced; the API the rest of the crate uses is unchanged.
//
// What is given up: a statement blocks the thread that runs it while it runs (including a
// COMMIT's fsync and SQLite's busy handler, if another writer holds the database).

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures_intrusive::sync::{Mutex, MutexGuard};

use sqlx_core::describe::Describe;
use sqlx_core::error::Error;
use sqlx_core::transaction::{
    begin_ansi_transaction_sql, commit_ansi_transaction_sql, rollback_ansi_transaction_sql,
};
use sqlx_core::Either;

use crate::connection::describe::describe;
use crate::connection::establish::EstablishParams;
use crate::connection::execute;
use crate::connection::ConnectionState;
use crate::{Sqlite, SqliteArguments, SqliteQueryResult, SqliteRow, SqliteStatement};

use super::serialize::{deserialize, serialize, SchemaName, SqliteOwnedBuf};

type Results = flume::Receiver<Result<Either<SqliteQueryResult, SqliteRow>, Error>>;

pub(crate) struct ConnectionWorker {
    /// The connection, behind a lock: held only while a command runs (never across an
    /// `.await`), or by a [`crate::LockedSqliteHandle`].
    pub(crate) shared: Arc<WorkerSharedState>,
}

pub(crate) struct WorkerSharedState {
    transaction_depth: AtomicUsize,
    cached_statements_size: AtomicUsize,
    /// A transaction was dropped while the connection was locked out: roll it back before
    /// the next command.
    rollback_pending: AtomicBool,
    /// SQLite ended a transaction the driver still counted as open (see
    /// [`WorkerSharedState::reconcile_depth`]): a `COMMIT` of it must fail, not succeed
    /// with nothing to commit. Cleared when the next transaction begins.
    aborted: AtomicBool,
    pub(crate) conn: Mutex<ConnectionState>,
}

impl WorkerSharedState {
    pub(crate) fn get_transaction_depth(&self) -> usize {
        self.transaction_depth.load(Ordering::Acquire)
    }

    pub(crate) fn get_cached_statements_size(&self) -> usize {
        self.cached_statements_size.load(Ordering::Acquire)
    }

    /// Ends the innermost transaction with `sql(depth)`, if one is open.
    ///
    /// If the statement fails, SQLite may have rolled the whole transaction back itself
    /// (`SQLITE_FULL`, `SQLITE_IOERR`, `SQLITE_NOMEM`, `SQLITE_BUSY` on `COMMIT`, …): the
    /// count of open transactions then follows SQLite's own state
    /// ([`Self::reconcile_depth`]), so that no later `BEGIN` becomes a `SAVEPOINT` inside
    /// a transaction that no longer exists (or never commits). A `COMMIT` of a transaction
    /// SQLite already rolled back is an error, never a success.
    fn end_transaction(&self, conn: &mut ConnectionState, end: End) -> Result<(), Error> {
        let committing = matches!(end, End::Commit);
        let sql = match end {
            End::Commit => commit_ansi_transaction_sql,
            End::Rollback => rollback_ansi_transaction_sql,
        };
        let depth = self.transaction_depth.load(Ordering::Acquire);
        if depth == 0 {
            if committing && self.aborted.load(Ordering::Acquire) {
                return Err(rolled_back());
            }
            return Ok(());
        }
        if committing && !conn.handle.in_transaction() {
            self.reconcile_depth(conn);
            return Err(rolled_back());
        }
        match conn.handle.exec(sql(depth)) {
            Ok(()) => {
                self.transaction_depth.fetch_sub(1, Ordering::Release);
                Ok(())
            }
            Err(err) => {
                self.reconcile_depth(conn);
                Err(err)
            }
        }
    }

    /// Makes the count of open transactions agree with SQLite: none when SQLite is in
    /// autocommit mode (it ended the transaction itself). `sqlite3_get_autocommit` is the
    /// authority; the count only chooses between `BEGIN` and `SAVEPOINT`.
    fn reconcile_depth(&self, conn: &mut ConnectionState) {
        if !conn.handle.in_transaction() && self.transaction_depth.swap(0, Ordering::AcqRel) > 0 {
            self.aborted.store(true, Ordering::Release);
        }
    }
}

/// How [`WorkerSharedState::end_transaction`] ends a transaction.
#[derive(Clone, Copy)]
enum End {
    Commit,
    Rollback,
}

/// The error of a statement or `COMMIT` inside a transaction SQLite has already rolled
/// back. A protocol error, like the driver's other "the transaction is gone" errors:
/// callers treat it as transient (the transaction may be tried again).
fn rolled_back() -> Error {
    Error::Protocol(
        "SQLite rolled the transaction back after an earlier error; nothing of it was committed"
            .into(),
    )
}

impl ConnectionWorker {
    pub(crate) async fn establish(params: EstablishParams) -> Result<Self, Error> {
        let conn = params.establish()?;
        Ok(Self {
            shared: Arc::new(WorkerSharedState {
                transaction_depth: AtomicUsize::new(0),
                cached_statements_size: AtomicUsize::new(0),
                rollback_pending: AtomicBool::new(false),
                aborted: AtomicBool::new(false),
                // Fair, as upstream: a `lock_handle` waiter is served in turn.
                conn: Mutex::new(conn, true),
            }),
        })
    }

    /// Runs `command` on the connection, on this thread.
    async fn run<T>(
        &self,
        command: impl FnOnce(&mut ConnectionState, &WorkerSharedState) -> T,
    ) -> Result<T, Error> {
        let mut conn = match self.shared.conn.try_lock() {
            Some(conn) => conn,
            None => self.shared.conn.lock().await,
        };
        if self.shared.rollback_pending.swap(false, Ordering::AcqRel) {
            self.shared
                .end_transaction(&mut conn, End::Rollback)?;
        }
        let result = command(&mut conn, &self.shared);
        update_cached_statements_size(&conn, &self.shared.cached_statements_size);
        drop(conn);
        // A command completes without ever being pending, so a task running many of them
        // would never give its thread back: spend Tokio's cooperative budget instead, and
        // let other tasks run when it is used up.
        tokio::task::coop::consume_budget().await;
        Ok(result)
    }

    pub(crate) async fn prepare(&mut self, query: &str) -> Result<SqliteStatement<'static>, Error> {
        self.run(|conn, _| prepare(conn, query)).await?
    }

    pub(crate) async fn describe(&mut self, query: &str) -> Result<Describe<Sqlite>, Error> {
        self.run(|conn, _| describe(conn, query)).await?
    }

    /// Runs the statement(s) to the end (or to `limit` rows) and returns every result,
    /// already in the channel.
    pub(crate) async fn execute(
        &mut self,
        query: &str,
        args: Option<SqliteArguments<'_>>,
        _chan_size: usize,
        persistent: bool,
        limit: Option<usize>,
    ) -> Result<Results, Error> {
        let (tx, rx) = flume::unbounded();
        self.run(|conn, shared| {
            if shared.get_transaction_depth() > 0 && !conn.handle.in_transaction() {
                // SQLite rolled this transaction back after an earlier error: run nothing
                // (it would run outside any transaction and commit alone).
                tx.send(Err(rolled_back())).ok();
                return;
            }
            let iter = match execute::iter(conn, query, args, persistent) {
                Ok(iter) => iter,
                Err(e) => {
                    tx.send(Err(e)).ok();
                    return;
                }
            };
            let mut rows_returned = 0;
            for res in iter {
                let has_error = res.is_err();
                let is_row = matches!(res, Ok(Either::Right(_)));
                tx.send(res).ok();
                if has_error {
                    break;
                }
                if is_row {
                    rows_returned += 1;
                    if limit.is_some_and(|limit| rows_returned >= limit) {
                        break;
                    }
                }
            }
        })
        .await?;
        Ok(rx)
    }

    pub(crate) async fn begin(
        &mut self,
        statement: Option<Cow<'static, str>>,
    ) -> Result<(), Error> {
        self.run(|conn, shared| {
            // A transaction SQLite ended by itself (see `end_transaction`) is not open.
            shared.reconcile_depth(conn);
            if shared.transaction_depth.load(Ordering::Acquire) == 0 {
                shared.aborted.store(false, Ordering::Release);
            }
            if shared.transaction_depth.load(Ordering::Acquire) == 0 && conn.handle.in_transaction()
            {
                // SQLite holds a transaction nobody here began (a failed `ROLLBACK`, a
                // `BEGIN` run as a plain statement): end it rather than nest inside it, or
                // nothing begun from now on would ever commit.
                conn.handle.exec("ROLLBACK")?;
            }
            let depth = shared.transaction_depth.load(Ordering::Acquire);
            let statement = match statement {
                // custom `BEGIN` statements are not allowed if we're already in a
                // transaction (we need to issue a `SAVEPOINT` instead)
                Some(_) if depth > 0 => return Err(Error::InvalidSavePointStatement),
                Some(statement) => statement,
                None => begin_ansi_transaction_sql(depth),
            };
            conn.handle.exec(statement).map(|_| {
                shared.transaction_depth.fetch_add(1, Ordering::Release);
            })
        })
        .await?
    }

    /// COMMIT is where SQLite waits for the disk (an fsync, now and then a WAL checkpoint),
    /// so it runs on a blocking thread: the async threads go on serving meanwhile.
    pub(crate) async fn commit(&mut self) -> Result<(), Error> {
        let shared = Arc::clone(&self.shared);
        sqlx_core::rt::spawn_blocking(move || {
            let mut conn = futures_executor::block_on(shared.conn.lock());
            if shared.rollback_pending.swap(false, Ordering::AcqRel) {
                shared.end_transaction(&mut conn, End::Rollback)?;
                return Err(Error::Protocol(
                    "the transaction was rolled back before it could commit".into(),
                ));
            }
            shared.end_transaction(&mut conn, End::Commit)
        })
        .await
    }

    pub(crate) async fn rollback(&mut self) -> Result<(), Error> {
        self.run(|conn, shared| shared.end_transaction(conn, End::Rollback))
            .await?
    }

    /// Rolls back at once if the connection is free, else before its next command.
    pub(crate) fn start_rollback(&mut self) -> Result<(), Error> {
        match self.shared.conn.try_lock() {
            Some(mut conn) => self
                .shared
                .end_transaction(&mut conn, End::Rollback),
            None => {
                self.shared.rollback_pending.store(true, Ordering::Release);
                Ok(())
            }
        }
    }

    pub(crate) async fn ping(&mut self) -> Result<(), Error> {
        self.run(|_, _| ()).await
    }

    pub(crate) async fn deserialize(
        &mut self,
        schema: Option<SchemaName>,
        data: SqliteOwnedBuf,
        read_only: bool,
    ) -> Result<(), Error> {
        self.run(|conn, _| deserialize(conn, schema, data, read_only))
            .await?
    }

    pub(crate) async fn serialize(
        &mut self,
        schema: Option<SchemaName>,
    ) -> Result<SqliteOwnedBuf, Error> {
        self.run(|conn, _| serialize(conn, schema)).await?
    }

    pub(crate) async fn clear_cache(&mut self) -> Result<(), Error> {
        self.run(|conn, _| conn.statements.clear()).await
    }

    pub(crate) async fn unlock_db(&mut self) -> Result<MutexGuard<'_, ConnectionState>, Error> {
        Ok(self.shared.conn.lock().await)
    }

    /// Nothing to stop: the database is closed when the connection is dropped.
    pub(crate) fn shutdown(&mut self) -> impl Future<Output = Result<(), Error>> {
        std::future::ready(Ok(()))
    }
}

fn prepare(conn: &mut ConnectionState, query: &str) -> Result<SqliteStatement<'static>, Error> {
    // prepare statement object (or checkout from cache)
    let statement = conn.statements.get(query, true)?;

    let mut parameters = 0;
    let mut columns = None;
    let mut column_names = None;

    while let Some(statement) = statement.prepare_next(&mut conn.handle)? {
        parameters += statement.handle.bind_parameter_count();

        // the first non-empty statement is chosen as the statement we pull columns from
        if !statement.columns.is_empty() && columns.is_none() {
            columns = Some(Arc::clone(statement.columns));
            column_names = Some(Arc::clone(statement.column_names));
        }
    }

    Ok(SqliteStatement {
        sql: Cow::Owned(query.to_string()),
        columns: columns.unwrap_or_default(),
        column_names: column_names.unwrap_or_default(),
        parameters,
    })
}

fn update_cached_statements_size(conn: &ConnectionState, size: &AtomicUsize) {
    size.store(conn.statements.len(), Ordering::Release);
}
