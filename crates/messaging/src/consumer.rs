//! The consumer loop every service runs. Delivery semantics: **at least once**, with
//! effectively-once effects because every [`Handler`] dedupes by event id in the same
//! database transaction as its effect.
//!
//! Records come in batches: whatever the client has fetched, up to `--consume-batch`.
//! A batch is applied in **one database transaction** (one commit, one lock round on
//! SQLite) and its offsets are stored after that commit. If any record of the batch fails,
//! the whole transaction is rolled back and the batch's records are applied again one
//! transaction each, in partition order. A record that fails then has its key **set
//! aside**: a lane (a task of its own, [`crate::lanes`]) works through that record and then
//! the key's records received meanwhile, while the other keys, partitions and topics go on
//! in batches. In a lane, for each record:
//! 1. the handler runs; success ends the record;
//! 2. a failure is handled by its [`FailureKind`] (see [`store::failure`]): unavailable is
//!    retried until it works, transient up to the policy's attempts, permanent not at all;
//! 3. a permanent failure (or the last failed transient attempt) sends the record to
//!    `<topic>.DLT` ([`crate::dead_letters::write`]: key, value and headers plus Spring Kafka's
//!    `kafka_dlt-*` headers and `openorder-attempts`, on the original partition; without the
//!    value if it would not fit), or to `<topic>.PARKED` when it was replayed before, and
//!    waits for the broker's acknowledgement;
//! 4. only then is the offset stored (committed in the background, and at exit).
//!
//! Once its lane is empty the key rejoins the batches. A partition's offset is stored up to
//! its first unfinished record. A key waiting on a record is reported ([`crate::stalls`]),
//! as stalled once it waited too long.
//!
//! A failing copy of an event that was already dead-lettered (same `event-id`, same replay
//! count, same value: the outbox published it twice) is skipped, so a record that always
//! fails lands in the DLT once, not once per copy. Another value under that id is not a
//! copy: it is dead-lettered too.
//!
//! A poison record therefore never blocks anything but its own key, and that for no longer
//! than the retries; no record is skipped without either its effect or its dead
//! letter being durable. On shutdown the records in hand are finished (a retry wait is cut
//! short, leaving the offset unstored, so the record comes again after restart).

mod set_aside;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dead_letters::write::DeadLetterWriter;
pub use crate::lanes::Progress;
use crate::lanes::{Actions, Lanes};
pub use crate::record::Record;
pub use crate::router::Handler;
use crate::stalls::Stalls;
use kafka_clients::RetryPolicy;
pub use store::failure::{FailureKind, HandleError};

/// One consumer group member running one handler.
pub struct ConsumerLoop<H> {
    pub name: &'static str,
    pub consumer: Arc<StreamConsumer>,
    pub group_id: String,
    /// Sends dead letters; shared with the outbox relay.
    pub producer: FutureProducer,
    /// Largest record `producer` sends (a dead letter larger than this goes without its value).
    pub max_message_bytes: usize,
    pub retry: RetryPolicy,
    pub handler: H,
    pub metrics: telemetry::metrics::Metrics,
    /// Where the handler's effects are written, and copies of dead-lettered events
    /// remembered.
    pub db: store::db::Database,
    /// Most records applied in one transaction (1: one transaction per record).
    pub max_batch: usize,
    /// Where the keys set aside are reported.
    pub stalls: Stalls,
    /// How long a batch may wait for more records after its first one. Zero: a batch is
    /// what the client has already fetched, so a record waits for nothing. A consumer off
    /// the order's critical path may gather: each batch costs a commit (an fsync on
    /// SQLite), whatever it carries.
    pub linger: Duration,
    /// The loop's bookkeeping of what it received and finished, shared with whoever
    /// reports its lag (a fresh `Progress::default()` for each loop).
    pub progress: Progress,
}

/// The loop's state, shared with its lanes.
struct Shared<H> {
    config: ConsumerLoop<H>,
    dead_letters: DeadLetterWriter,
    lanes: Arc<Mutex<Lanes>>,
}

impl<H: Handler> ConsumerLoop<H> {
    /// Runs until `shutdown`, then commits the stored offsets (bounded, see [`CLOSE_WAIT`]).
    ///
    /// Records are applied in batches by this loop. A key whose record failed is set aside
    /// in a **lane** of its own (a task working through that record's retries and dead
    /// letter, then the key's records received meanwhile), so that it holds up nothing but
    /// the records of its own key; once its lane is empty the key rejoins the batches.
    /// Per-key order is kept, and offsets are stored only up to the first unfinished record
    /// of each partition ([`crate::lanes`]).
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(consumer = self.name, group = %self.group_id, batch = self.max_batch, "consumer started");
        let name = self.name;
        let consumer = self.consumer.clone();
        let lanes = self.progress.0.clone();
        let shared = Arc::new(Shared {
            dead_letters: DeadLetterWriter::new(
                self.producer.clone(),
                self.group_id.clone(),
                self.max_message_bytes,
            ),
            config: self,
            lanes,
        });
        let mut lanes = JoinSet::new();
        let mut batch = Vec::with_capacity(shared.config.max_batch);
        loop {
            // Lanes that ended are reaped here.
            while lanes.try_join_next().is_some() {}
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                message = consumer.recv() => message,
            };
            batch.clear();
            match message {
                Ok(message) => batch.push(Record::from_message(&message)),
                Err(err) => {
                    tracing::warn!(consumer = name, error = %err, "Kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            // Take what the client has already fetched, and what arrives within the
            // handler's linger.
            let deadline = tokio::time::Instant::now() + shared.config.linger;
            while batch.len() < shared.config.max_batch {
                let next = match consumer.recv().now_or_never() {
                    Some(next) => Some(next),
                    None if tokio::time::Instant::now() < deadline => tokio::select! {
                        _ = shutdown.cancelled() => None,
                        next = tokio::time::timeout_at(deadline, consumer.recv()) => next.ok(),
                    },
                    None => None,
                };
                match next {
                    Some(Ok(message)) => batch.push(Record::from_message(&message)),
                    Some(Err(err)) => {
                        tracing::warn!(consumer = name, error = %err, "Kafka consumer error");
                        break;
                    }
                    None => break,
                }
            }
            let mut actions = Actions::default();
            let healthy = shared
                .lanes
                .lock()
                .expect("never poisoned")
                .route(batch.drain(..), &mut actions);
            // Routing only pauses (a partition whose lanes hold too many records); lanes
            // resume their partitions as they finish records.
            if !actions.pause.is_empty() {
                pause_or_resume(name, consumer.clone(), actions.pause, true).await;
            }
            if !healthy.is_empty() {
                shared.process_batch(healthy, &mut lanes, &shutdown).await;
            }
        }
        // Each lane stops at its next wait once it sees the shutdown.
        while lanes.join_next().await.is_some() {}
        close(name, consumer).await;
        tracing::info!(consumer = name, "consumer stopped");
    }
}

impl<H: Handler> Shared<H> {
    /// Applies `batch` in one transaction, or else record by record, setting aside the
    /// key of each record that fails; then stores the offsets that may be stored.
    async fn process_batch(
        self: &Arc<Self>,
        batch: Vec<Record>,
        lanes: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) {
        let c = &self.config;
        let consumer = [("consumer", c.name)];
        c.metrics
            .inc(&telemetry::catalogue::CONSUMER_BATCHES, &consumer);
        c.metrics.add(
            &telemetry::catalogue::CONSUMER_BATCH_RECORDS,
            &consumer,
            batch.len() as u64,
        );
        if batch.len() > 1 {
            match self.apply_together(&batch).await {
                Ok(()) => {
                    self.finished(&batch, false);
                    return;
                }
                Err(error) => {
                    c.metrics.inc(
                        &telemetry::catalogue::CONSUMER_BATCHES_ROLLED_BACK,
                        &consumer,
                    );
                    tracing::debug!(
                        consumer = c.name, records = batch.len(), error = %error,
                        "batch rolled back; applying its records one at a time"
                    )
                }
            }
        }
        for record in batch {
            // A key set aside a moment ago, earlier in this batch.
            if self
                .lanes
                .lock()
                .expect("never poisoned")
                .queue_if_waiting(&record)
            {
                continue;
            }
            match self.apply_alone(&record, 1).await {
                Ok(()) => self.finished(std::slice::from_ref(&record), false),
                Err(error) => self.set_aside(record, error, lanes, shutdown),
            }
        }
    }

    /// Marks `records` finished and stores the offsets that may now be stored.
    fn finished(&self, records: &[Record], from_lane: bool) {
        let mut actions = Actions::default();
        let positions = {
            let mut lanes = self.lanes.lock().expect("never poisoned");
            for record in records {
                lanes.finished(record, from_lane, &mut actions);
            }
            lanes.positions()
        };
        for (partition, offset) in positions {
            if let Err(err) = self
                .config
                .consumer
                .store_offset(&partition.0, partition.1, offset)
            {
                // Happens after a rebalance took the partition away: the new owner re-reads
                // from the last commit, and the handler's dedupe absorbs it. Should the
                // partition come back here, its position is offered again as its records
                // finish ([`Lanes::positions`]).
                tracing::warn!(consumer = self.config.name, error = %err, "could not store offset");
            }
        }
        if !actions.resume.is_empty() {
            let consumer = self.config.consumer.clone();
            let name = self.config.name;
            tokio::spawn(
                async move { pause_or_resume(name, consumer, actions.resume, false).await },
            );
        }
    }

    async fn apply_together(&self, batch: &[Record]) -> Result<(), HandleError> {
        let handler = &self.config.handler;
        let mut tx = self.config.db.begin().await?;
        handler.apply(&mut tx, batch, 1).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn apply_alone(&self, record: &Record, attempt: u32) -> Result<(), HandleError> {
        let handler = &self.config.handler;
        let mut tx = self.config.db.begin().await?;
        handler
            .apply(&mut tx, std::slice::from_ref(record), attempt)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Pauses (or resumes) fetching of `partitions` (a partition whose lanes hold too many
/// records). A local call to librdkafka's own thread, made on a blocking thread all the
/// same. A partition no longer assigned (taken by a rebalance) cannot be resumed: its new
/// owner reads it.
async fn pause_or_resume(
    name: &'static str,
    consumer: Arc<StreamConsumer>,
    partitions: Vec<crate::lanes::PartitionId>,
    pause: bool,
) {
    let done = tokio::task::spawn_blocking(move || {
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (topic, partition) in &partitions {
            tpl.add_partition(topic, *partition);
        }
        if pause {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        }
    })
    .await;
    match done {
        Ok(Ok(())) => tracing::info!(
            consumer = name,
            pause,
            "partitions paused or resumed for their lanes"
        ),
        Ok(Err(err)) => {
            tracing::debug!(consumer = name, pause, error = %err, "could not pause or resume partitions")
        }
        Err(_) => {}
    }
}

/// Longest the final offset commit and the consumer's close may take at shutdown.
pub const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// Commits the stored offsets, on a blocking thread (a synchronous commit is a blocking
/// librdkafka call, and with the broker gone it waits for it without end), for at most
/// [`CLOSE_WAIT`]. Past that the thread is left to finish on its own: the offsets not
/// committed are read again after a restart, and the handlers' dedupe absorbs them. (The
/// consumer is closed where its last reference is dropped, by `runtime::service::Runtime`,
/// on a blocking thread too.)
async fn close(name: &'static str, consumer: std::sync::Arc<StreamConsumer>) {
    let closing =
        tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync));
    match tokio::time::timeout(CLOSE_WAIT, closing).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => {
            tracing::debug!(consumer = name, error = %err, "final commit had nothing to do or failed")
        }
        Ok(Err(err)) => tracing::warn!(consumer = name, error = %err, "closing the consumer failed"),
        Err(_) => tracing::warn!(
            consumer = name,
            "the final offset commit did not finish in {} s (broker gone?); the records since the last commit will be read again",
            CLOSE_WAIT.as_secs()
        ),
    }
}
