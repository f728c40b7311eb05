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

use std::sync::{Arc, Mutex};
use std::time::Duration;

use contracts::headers;
use contracts::Topics;
use futures_util::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dead_letters::write::{DeadLetterWriter, Sent};
pub use crate::lanes::Progress;
use crate::lanes::{Actions, Lanes};
pub use crate::record::Record;
pub use crate::router::Handler;
use crate::stalls::Stalls;
use kafka_clients::backoff::Backoff;
use kafka_clients::RetryPolicy;
pub use store::failure::{FailureKind, HandleError};

/// How processing of one record ended.
enum Outcome {
    /// Applied: the offset may move on.
    Done,
    /// Durably dead-lettered: the offset may move on.
    DeadLettered,
    /// Shutdown came first: leave the offset where it is.
    Interrupted,
}

/// What makes a failing record a copy of one dead-lettered before: the same event id,
/// replay count and value (another value under the same id is another record, and is
/// dead-lettered in its own right).
struct DeadLetterCopy {
    event_id: String,
    replay_count: u32,
    body_hash: String,
}

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

    /// Opens a lane for `record`'s key that starts with `record` (which just failed with
    /// `error`), worked through by a task of its own.
    fn set_aside(
        self: &Arc<Self>,
        record: Record,
        error: HandleError,
        lanes: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) {
        let c = &self.config;
        // (Reported as waiting by `work_through`, which starts with `error`.)
        self.lanes.lock().expect("never poisoned").open(&record);
        c.metrics.inc(
            &telemetry::catalogue::CONSUMER_KEYS_SET_ASIDE,
            &[("consumer", c.name)],
        );
        tracing::debug!(
            consumer = c.name, topic = %record.topic, partition = record.partition,
            offset = record.offset, "key set aside while its record is retried"
        );
        let shared = self.clone();
        let shutdown = shutdown.clone();
        lanes.spawn(async move { shared.lane(record, error, shutdown).await });
    }

    /// Works through a key set aside: its first record (which failed with `error`), then
    /// the key's records queued meanwhile, each to its effect or its dead letter. When
    /// nothing is left, the key rejoins the batches.
    async fn lane(self: Arc<Self>, first: Record, error: HandleError, shutdown: CancellationToken) {
        let partition = (first.topic.clone(), first.partition);
        let key = first.key.clone();
        let mut next = Some((first, Some(error)));
        loop {
            let (record, error) = match next.take() {
                Some(first) => first,
                None => {
                    let queued = self
                        .lanes
                        .lock()
                        .expect("never poisoned")
                        .next(&partition, &key);
                    match queued {
                        Some(record) => (record, None),
                        None => break,
                    }
                }
            };
            match self.work_through(&record, error, &shutdown).await {
                Outcome::Done => {}
                Outcome::DeadLettered => self.note_dead_letter(&record).await,
                // Stopping: the lane's records stay unstored, to be read again.
                Outcome::Interrupted => return,
            }
            self.config.stalls.cleared(self.config.name, &record);
            self.finished(std::slice::from_ref(&record), true);
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

    async fn note_dead_letter(&self, record: &Record) {
        if let Some(id) = record.header(headers::EVENT_ID) {
            let (replay, hash) = (record.replay_count(), record.body_hash());
            if let Err(err) =
                store::dedupe::mark_dead_lettered(&self.config.db, id, replay, &hash).await
            {
                tracing::warn!(consumer = self.config.name, error = %err, "could not note the dead letter");
            }
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

    /// Tries `record` until it is applied or dead-lettered, by its failures' kinds (see
    /// [`store::failure`]). `failed`: the error of a first try already made.
    async fn work_through(
        &self,
        record: &Record,
        failed: Option<HandleError>,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let c = &self.config;
        let copy = record.header(headers::EVENT_ID).map(|id| DeadLetterCopy {
            event_id: id.to_string(),
            replay_count: record.replay_count(),
            body_hash: record.body_hash(),
        });
        let mut attempt = 1;
        let mut failed = failed;
        loop {
            let error = match failed.take() {
                Some(error) => error,
                None => match self.apply_alone(record, attempt).await {
                    Ok(()) => return Outcome::Done,
                    Err(error) => error,
                },
            };
            // Only a failing record can be the copy of a dead letter worth skipping, so the
            // check costs nothing on the hot path.
            if attempt == 1 && self.already_dead_lettered(copy.as_ref()).await {
                return Outcome::Done;
            }
            let retry = match error.kind {
                FailureKind::Unavailable => true,
                FailureKind::Transient => attempt < c.retry.attempts,
                FailureKind::Permanent => false,
            };
            tracing::warn!(
                consumer = c.name, topic = %record.topic, partition = record.partition,
                offset = record.offset, attempt, retry, kind = error.kind.as_str(), error = %error,
                "record failed"
            );
            c.stalls
                .waiting(c.name, record, attempt, &error.to_string());
            if !retry {
                c.metrics.inc(
                    &telemetry::catalogue::RECORDS_DEAD_LETTERED,
                    &[("topic", &record.topic), ("class", error.class)],
                );
                return self.dead_letter(record, &error, attempt, shutdown).await;
            }
            c.metrics.inc(
                &telemetry::catalogue::RECORDS_RETRIED,
                &[("topic", &record.topic), ("class", error.class)],
            );
            tokio::select! {
                _ = shutdown.cancelled() => return Outcome::Interrupted,
                _ = tokio::time::sleep(c.retry.backoff.delay(attempt)) => {}
            }
            attempt += 1;
        }
    }

    async fn already_dead_lettered(&self, copy: Option<&DeadLetterCopy>) -> bool {
        let Some(DeadLetterCopy {
            event_id: id,
            replay_count,
            body_hash,
        }) = copy
        else {
            return false;
        };
        match store::dedupe::was_dead_lettered(&self.config.db, id, *replay_count, body_hash).await
        {
            Ok(true) => {
                tracing::info!(consumer = self.config.name, event_id = %id, "copy of a dead-lettered event skipped");
                true
            }
            Ok(false) => false,
            // Retrying meets the same database trouble and waits for it.
            Err(err) => {
                tracing::warn!(consumer = self.config.name, error = %err, "could not check dead letters");
                false
            }
        }
    }

    /// Publishes the dead letter and waits for the broker's acknowledgement, trying again
    /// (with a growing wait, reported as the key's stall) while it is not written: a
    /// record is never skipped without its dead letter. Only its key waits.
    async fn dead_letter(
        &self,
        record: &Record,
        error: &HandleError,
        attempts: u32,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let c = &self.config;
        // Its DLT, or its parking lot when it failed again after a replay.
        let dlt = Topics::dead_letter_topic_for(&record.topic, record.replay_count());
        let backoff = Backoff::doubling(Duration::from_millis(200), Duration::from_secs(30));
        let mut tries = 0;
        loop {
            tries += 1;
            let sent = tokio::select! {
                _ = shutdown.cancelled() => return Outcome::Interrupted,
                sent = self.dead_letters.send(record, error, attempts, Duration::from_secs(10)) => sent,
            };
            match sent {
                Sent::Written { value_omitted } => {
                    if value_omitted {
                        c.metrics.inc(
                            &telemetry::catalogue::DEAD_LETTERS_VALUE_OMITTED,
                            &[("topic", &record.topic)],
                        );
                    }
                    tracing::warn!(
                        consumer = c.name, %dlt, partition = record.partition, offset = record.offset,
                        attempts, value_omitted, error = %error, "record dead-lettered"
                    );
                    return Outcome::DeadLettered;
                }
                Sent::Failed(reason) => {
                    tracing::error!(%dlt, error = %reason, "could not publish dead letter, retrying");
                    c.stalls.waiting(
                        c.name,
                        record,
                        attempts,
                        &format!("dead letter to {dlt} not written: {reason}"),
                    );
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Outcome::Interrupted,
                _ = tokio::time::sleep(backoff.delay(tries)) => {}
            }
        }
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
