//! Group commit for new orders. `POST /api/orders` hands its order to a writer task and
//! waits for the answer; the writer takes every order queued meanwhile (up to
//! [`MAX_BATCH`]) and inserts them in one transaction, so a burst of orders costs one
//! commit (one fsync on SQLite) instead of one each. A request is answered only after the
//! transaction holding its order committed, so a 202 still means the order is durable. On
//! PostgreSQL a batch without idempotency keys is that transaction as one statement
//! ([`store::create_orders_alone`]: no BEGIN and COMMIT round trips).
//!
//! If a batch's transaction fails, its orders are inserted again one transaction each, so
//! one order's trouble is answered to that order alone; unless the failure was the
//! database's ([`platform::storage::StorageFault`]: full, read-only, away), which every
//! order of the batch would meet again: then each is answered that error at once (a 503
//! naming it). An order is answered 202 only once the commit holding it succeeded.
//!
//! The queue is bounded ([`QUEUE`]): when it is full, a request is refused at once
//! ([`IntakeError::Busy`], a 503 with `Retry-After`) instead of waiting. Past the rate the
//! database can take, an unbounded queue only grows latency until clients time out, and
//! throughput falls with it; a quick refusal keeps the accepted orders fast and tells the
//! client to come back (with its `Idempotency-Key`, safely). Served over HTTP, the
//! service's limit on requests in flight ([`platform::http::limited`], 2,048 by default)
//! refuses first; this bound is the backstop for a higher limit or another caller.

use std::sync::Arc;

use contracts::Topics;
use platform::db::{Backend, Database};
use platform::metrics::Metrics;
use platform::storage::StorageFault;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::domain::OrderRequest;
use crate::store::{self, Created, NewOrder};

/// Most orders inserted in one transaction.
pub const MAX_BATCH: usize = 128;

/// Most orders waiting for a writer: about two seconds' worth at the highest rate the
/// embedded defaults sustain (BENCHMARKS.md), so a passing stall (a WAL checkpoint, a
/// burst) is absorbed and only lasting overload is refused.
pub const QUEUE: usize = 8192;

/// Why an order was not created.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The queue is full: nothing was written; the client should retry shortly.
    #[error("too many orders are waiting to be written")]
    Busy,
    /// The database could not keep the order (full, read-only, away, busy): nothing was
    /// written; answered 503 naming the fault.
    #[error("the database could not keep the order: {}", .0.slug())]
    Storage(StorageFault),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for IntakeError {
    fn from(err: sqlx::Error) -> Self {
        match StorageFault::of(&err) {
            Some(fault) => {
                platform::storage::log_request_fault(fault, &err);
                Self::Storage(fault)
            }
            None => Self::Database(err),
        }
    }
}

/// Writers on PostgreSQL, where transactions of several connections run side by side.
/// SQLite has one writer at a time, so one writer task.
const POSTGRES_WRITERS: usize = 4;

/// Where requests queue for the writers. Cheap to clone.
#[derive(Clone)]
pub struct Intake {
    jobs: mpsc::Sender<Job>,
    /// Counts refusals (`openorder_orders_refused_total{reason="busy"}`).
    metrics: Metrics,
}

struct Job {
    request: OrderRequest,
    idempotency_key: Option<String>,
    /// The request's span: its `order.created` continues the request's trace, and the
    /// transaction that writes the order is a span inside it.
    span: tracing::Span,
    reply: oneshot::Sender<Result<Created, IntakeError>>,
}

impl Intake {
    /// Starts the writer tasks, with room for `capacity` waiting orders ([`QUEUE`] in
    /// service). They stop once every handle on the intake is dropped and the queued
    /// orders are written.
    pub fn start(db: Database, topics: Topics, capacity: usize, metrics: Metrics) -> Self {
        let (jobs, queue) = mpsc::channel(capacity.max(1));
        let queue = Arc::new(Mutex::new(queue));
        let writers = match db.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => POSTGRES_WRITERS,
        };
        let ids = store::IdReserve::default();
        for _ in 0..writers {
            let writer = Writer {
                db: db.clone(),
                ids: ids.clone(),
                topics: topics.clone(),
            };
            tokio::spawn(writer.run(queue.clone()));
        }
        Self { jobs, metrics }
    }

    /// Inserts the order (see [`store::create_orders_in`]) and answers once it is
    /// committed; refuses it at once if the queue is full.
    pub async fn create(
        &self,
        request: OrderRequest,
        idempotency_key: Option<String>,
    ) -> Result<Created, IntakeError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request,
            idempotency_key,
            span: tracing::Span::current(),
            reply,
        };
        self.jobs.try_send(job).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => {
                self.metrics.inc(
                    &platform::telemetry::catalogue::ORDERS_REFUSED,
                    &[("reason", "busy")],
                );
                IntakeError::Busy
            }
            mpsc::error::TrySendError::Closed(_) => sqlx::Error::PoolClosed.into(),
        })?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

struct Writer {
    db: Database,
    /// Order ids drawn ahead, shared by the writers (PostgreSQL's one-statement path).
    ids: store::IdReserve,
    topics: Topics,
}

impl Writer {
    async fn run(self, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
        loop {
            let batch = {
                let mut queue = queue.lock().await;
                let Some(first) = queue.recv().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                batch
            };
            self.write(batch).await;
        }
    }

    async fn write(&self, batch: Vec<Job>) {
        if batch.len() > 1 {
            match self.insert_together(&batch).await {
                Ok(results) => {
                    for (job, result) in batch.into_iter().zip(results) {
                        // The client may have gone; its order stands all the same.
                        let _ = job.reply.send(Ok(result));
                    }
                    return;
                }
                Err(err) => {
                    if let Some(fault) = StorageFault::of(&err) {
                        platform::storage::log_request_fault(fault, &err);
                        for job in batch {
                            let _ = job.reply.send(Err(IntakeError::Storage(fault)));
                        }
                        return;
                    }
                    tracing::debug!(
                        orders = batch.len(), error = %err,
                        "order batch rolled back; inserting its orders one at a time"
                    );
                }
            }
        }
        for job in batch {
            let result = self.insert_alone(&job).await.map_err(IntakeError::from);
            let _ = job.reply.send(result);
        }
    }

    async fn insert_together(&self, batch: &[Job]) -> Result<Vec<Created>, sqlx::Error> {
        let traces: Vec<_> = batch
            .iter()
            .map(|job| platform::telemetry::context_headers_of(&job.span))
            .collect();
        let orders: Vec<NewOrder> = batch
            .iter()
            .zip(&traces)
            .map(|(job, trace)| NewOrder {
                request: &job.request,
                idempotency_key: job.idempotency_key.as_deref(),
                trace,
            })
            .collect();
        if self.db.backend == Backend::Postgres && batch.iter().all(|j| j.idempotency_key.is_none())
        {
            let parent = batch.first().map(|job| &job.span);
            if let Some(created) =
                store::create_orders_alone(&self.db, &self.ids, &self.topics, &orders, parent)
                    .await?
            {
                return Ok(created);
            }
        }
        let mut tx = self.db.begin().await?;
        if let Some(first) = batch.first() {
            // One transaction for the batch: inside the first request's span.
            tx.trace_in(&first.span);
        }
        let results = store::create_orders_in(&mut tx, &self.topics, &orders).await;
        // A statement the database refused (its commit was never reached) counts too.
        let results = self.db.observe(results)?;
        tx.commit().await?;
        Ok(results)
    }

    async fn insert_alone(&self, job: &Job) -> Result<Created, sqlx::Error> {
        let mut created = self.insert_together(std::slice::from_ref(job)).await?;
        Ok(created.remove(0))
    }
}
