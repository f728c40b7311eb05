//! A database transaction ([`Tx`]): its commit, which wakes whoever sends what it queued,
//! and its tracing span.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::{Any, AnyConnection};
use tokio::sync::Notify;

use super::Backend;
use crate::outbox::Waker;
use crate::storage::StorageHealth;

/// A database transaction. Use it as a connection (`&mut *tx`) and end it with
/// [`Tx::commit`]; dropped, it rolls back. On SQLite it holds the database's one writer
/// connection (see [`super::Database::begin`]).
///
/// Whoever sends what a transaction queued (the outbox relay, a dispatcher) is woken by
/// its commit: the code that queues says so with [`Tx::wake_on_commit`] (the outbox does
/// it in [`crate::outbox::enqueue_all`]), so no caller has to remember to.
pub struct Tx {
    pub(super) inner: sqlx::Transaction<'static, Any>,
    pub(super) relay: Waker,
    pub(super) wake: Vec<Arc<Notify>>,
    /// Run after a successful commit ([`Tx::on_commit`]).
    pub(super) then: Vec<Box<dyn FnOnce() + Send>>,
    /// With traces on, the transaction's span, from its begin (inside a span) or from
    /// [`Tx::trace_in`] to its end.
    pub(super) span: tracing::Span,
    pub(super) backend: Backend,
    /// Told whether the commit succeeded ([`crate::storage`]).
    pub(super) storage: StorageHealth,
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
pub(super) fn transaction_span(backend: Backend, parent: Option<&tracing::Span>) -> tracing::Span {
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
pub(super) fn error_type(err: &sqlx::Error) -> String {
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
