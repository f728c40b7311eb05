//! The consumer loop every service runs. Delivery semantics: **at least once**, with
//! effectively-once effects because every [`Handler`] dedupes by event id in the same
//! database transaction as its effect.
//!
//! Records come in batches: whatever the client has fetched, up to `--consume-batch`.
//! A batch is applied in **one database transaction** (one commit, one lock round on
//! SQLite) and its offsets are stored after that commit. If any record of the batch fails,
//! the whole transaction is rolled back and the batch's records are applied again one
//! transaction each, in partition order, where for each record:
//! 1. the handler runs; success ends the record;
//! 2. a failure is handled by its [`FailureKind`] (see [`crate::failure`]): unavailable is
//!    retried until it works, transient up to the policy's attempts, permanent not at all;
//! 3. a permanent failure (or the last failed transient attempt) sends the record to
//!    `<topic>.DLT` with its key, value and headers plus Spring Kafka's `kafka_dlt-*`
//!    headers and `openorder-attempts`, and waits for the broker's acknowledgement;
//! 4. only then is the offset stored (committed in the background, and synchronously at exit).
//!
//! A failing copy of an event that was already dead-lettered (same `event-id`, same replay
//! count: the outbox published it twice) is skipped, so a record that always fails lands in
//! the DLT once, not once per copy.
//!
//! A poison record therefore never blocks its partition for longer than the retries, and
//! no record is skipped without either its effect or its dead letter being durable.
//! On shutdown the record in hand is finished (a retry wait is cut short, leaving the
//! offset unstored, so the record comes again after restart).

use std::future::Future;
use std::time::Duration;

use contracts::headers;
use contracts::Topics;
use futures_util::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::config::RetryPolicy;
use crate::db::Tx;
pub use crate::failure::{FailureKind, HandleError};

/// A record as handlers see it: owned, so it can be retried and dead-lettered.
#[derive(Clone, Debug)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    fn from_message<M: Message>(message: &M) -> Self {
        let headers = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// The last value of header `name`, as UTF-8 text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// For a dead letter: `<exception class>: <exception message>` from its
    /// `kafka_dlt-exception-*` headers ("unknown" / "no message" where missing).
    pub fn dead_letter_error(&self) -> String {
        format!(
            "{}: {}",
            self.header(headers::DLT_EXCEPTION_FQCN)
                .unwrap_or("unknown"),
            self.header(headers::DLT_EXCEPTION_MESSAGE)
                .unwrap_or("no message")
        )
    }

    /// The value decoded as JSON into `T`; a record that does not decode is permanent trouble.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HandleError> {
        let payload = self.payload.as_deref().ok_or_else(|| {
            HandleError::permanent("openorder.EmptyRecord", "record has no value")
        })?;
        serde_json::from_slice(payload).map_err(|e| {
            HandleError::permanent(
                "openorder.UndecodableRecord",
                format!("value is not a valid {}: {e}", std::any::type_name::<T>()),
            )
        })
    }
}

/// Applies records. Must be idempotent: the same record may come more than once.
pub trait Handler: Send + Sync + 'static {
    /// Applies `record` inside `tx`, which the consumer loop commits, usually together with
    /// the other records of its batch. On an error the loop rolls `tx` back whole, so an
    /// error may leave `tx` half-written. `attempt` counts tries of this record on its own
    /// in this process, from 1 (a batch try is attempt 1 too).
    fn apply(
        &self,
        tx: &mut Tx,
        record: &Record,
        attempt: u32,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// Applies a batch of records, in order, inside `tx` (after [`Handler::lock_batch`]).
    /// By default one [`Handler::apply`] per record; a handler overrides it to apply the
    /// batch with set-based statements (one multi-row statement where it had one per
    /// record). It must have the same effects as applying the records one by one.
    fn apply_batch(
        &self,
        tx: &mut Tx,
        batch: &[Record],
    ) -> impl Future<Output = Result<(), HandleError>> + Send {
        async move {
            for record in batch {
                self.apply(tx, record, 1).await?;
            }
            Ok(())
        }
    }

    /// Called first in a batch's transaction, before any record of it is applied. A
    /// handler that locks rows takes every lock the batch will need here, in one fixed
    /// order, so that batches of concurrent instances cannot deadlock. Nothing by default.
    fn lock_batch(
        &self,
        _tx: &mut Tx,
        _batch: &[Record],
    ) -> impl Future<Output = Result<(), HandleError>> + Send {
        std::future::ready(Ok(()))
    }

    /// Called after a transaction with applied records committed: wake whoever sends on
    /// what the records queued (the outbox relay, a dispatcher).
    fn committed(&self) {}

    /// How long a batch may wait for more records after its first one. Zero by default:
    /// a batch is what the client has already fetched, so a record waits for nothing. A
    /// handler off the order's critical path may gather: each batch costs a commit (an
    /// fsync on SQLite), whatever it carries.
    fn linger(&self) -> Duration {
        Duration::ZERO
    }
}

/// How processing of one record ended.
enum Outcome {
    /// Applied: the offset may move on.
    Done,
    /// Durably dead-lettered: the offset may move on.
    DeadLettered,
    /// Shutdown came first: leave the offset where it is.
    Interrupted,
}

/// One consumer group member running one handler.
pub struct ConsumerLoop<H> {
    pub name: &'static str,
    pub consumer: std::sync::Arc<StreamConsumer>,
    pub group_id: String,
    /// Sends dead letters; shared with the outbox relay.
    pub producer: FutureProducer,
    pub retry: RetryPolicy,
    pub handler: H,
    pub metrics: crate::metrics::Metrics,
    /// Where the handler's effects are written, and copies of dead-lettered events
    /// remembered.
    pub db: crate::db::Database,
    /// Most records applied in one transaction (1: one transaction per record).
    pub max_batch: usize,
}

impl<H: Handler> ConsumerLoop<H> {
    /// Runs until `shutdown`, then commits the stored offsets synchronously.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(consumer = self.name, group = %self.group_id, batch = self.max_batch, "consumer started");
        let mut batch = Vec::with_capacity(self.max_batch);
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                message = self.consumer.recv() => message,
            };
            batch.clear();
            match message {
                Ok(message) => batch.push(Record::from_message(&message)),
                Err(err) => {
                    tracing::warn!(consumer = self.name, error = %err, "Kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            // Take what the client has already fetched, and what arrives within the
            // handler's linger.
            let deadline = tokio::time::Instant::now() + self.handler.linger();
            while batch.len() < self.max_batch {
                let next = match self.consumer.recv().now_or_never() {
                    Some(next) => Some(next),
                    None if tokio::time::Instant::now() < deadline => tokio::select! {
                        _ = shutdown.cancelled() => None,
                        next = tokio::time::timeout_at(deadline, self.consumer.recv()) => next.ok(),
                    },
                    None => None,
                };
                match next {
                    Some(Ok(message)) => batch.push(Record::from_message(&message)),
                    Some(Err(err)) => {
                        tracing::warn!(consumer = self.name, error = %err, "Kafka consumer error");
                        break;
                    }
                    None => break,
                }
            }
            if !self.process_batch(&batch, &shutdown).await {
                break;
            }
        }
        let name = self.name;
        close(name, self.consumer).await;
        tracing::info!(consumer = name, "consumer stopped");
    }

    /// Applies `batch` in one transaction, or else record by record. False if shutdown
    /// interrupted it (the offsets of the records not finished stay unstored).
    async fn process_batch(&self, batch: &[Record], shutdown: &CancellationToken) -> bool {
        let consumer = [("consumer", self.name)];
        self.metrics
            .inc("openorder_consumer_batches_total", &consumer);
        self.metrics.add(
            "openorder_consumer_batch_records_total",
            &consumer,
            batch.len() as u64,
        );
        if batch.len() > 1 {
            match self.apply_together(batch).await {
                Ok(()) => {
                    self.handler.committed();
                    for record in batch {
                        self.store_offset(record);
                    }
                    return true;
                }
                Err(error) => {
                    self.metrics
                        .inc("openorder_consumer_batches_rolled_back_total", &consumer);
                    tracing::debug!(
                        consumer = self.name, records = batch.len(), error = %error,
                        "batch rolled back; applying its records one at a time"
                    )
                }
            }
        }
        for record in batch {
            let copy = record
                .header(headers::EVENT_ID)
                .map(|id| (id.to_string(), replay_count(record)));
            match self.process(record, copy.as_ref(), shutdown).await {
                Outcome::DeadLettered => {
                    if let Some((id, replay)) = &copy {
                        if let Err(err) =
                            crate::dedupe::mark_dead_lettered(&self.db, id, *replay).await
                        {
                            tracing::warn!(consumer = self.name, error = %err, "could not note the dead letter");
                        }
                    }
                    self.store_offset(record);
                }
                Outcome::Done => self.store_offset(record),
                Outcome::Interrupted => return false,
            }
        }
        true
    }

    async fn apply_together(&self, batch: &[Record]) -> Result<(), HandleError> {
        let mut tx = self.db.begin().await?;
        self.handler.lock_batch(&mut tx, batch).await?;
        self.handler.apply_batch(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn apply_alone(&self, record: &Record, attempt: u32) -> Result<(), HandleError> {
        let mut tx = self.db.begin().await?;
        self.handler.apply(&mut tx, record, attempt).await?;
        tx.commit().await?;
        self.handler.committed();
        Ok(())
    }

    fn store_offset(&self, record: &Record) {
        if let Err(err) = self
            .consumer
            .store_offset(&record.topic, record.partition, record.offset)
        {
            // Happens after a rebalance took the partition away: the new owner re-reads
            // from the last commit, and the handler's dedupe absorbs it.
            tracing::warn!(consumer = self.name, error = %err, "could not store offset");
        }
    }

    async fn process(
        &self,
        record: &Record,
        copy: Option<&(String, i64)>,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let mut attempt = 1;
        loop {
            let error = match self.apply_alone(record, attempt).await {
                Ok(()) => return Outcome::Done,
                Err(error) => error,
            };
            // Only a failing record can be the copy of a dead letter worth skipping, so the
            // check costs nothing on the hot path.
            if attempt == 1 && self.already_dead_lettered(copy).await {
                return Outcome::Done;
            }
            let retry = match error.kind {
                FailureKind::Unavailable => true,
                FailureKind::Transient => attempt < self.retry.attempts,
                FailureKind::Permanent => false,
            };
            tracing::warn!(
                consumer = self.name, topic = %record.topic, partition = record.partition,
                offset = record.offset, attempt, retry, kind = error.kind.as_str(), error = %error,
                "record failed"
            );
            if !retry {
                self.metrics.inc(
                    "openorder_records_dead_lettered_total",
                    &[("topic", &record.topic), ("class", error.class)],
                );
                return self.dead_letter(record, &error, attempt, shutdown).await;
            }
            self.metrics.inc(
                "openorder_records_retried_total",
                &[("topic", &record.topic), ("class", error.class)],
            );
            tokio::select! {
                _ = shutdown.cancelled() => return Outcome::Interrupted,
                _ = tokio::time::sleep(self.retry.backoff_with_jitter(attempt)) => {}
            }
            attempt += 1;
        }
    }

    async fn already_dead_lettered(&self, copy: Option<&(String, i64)>) -> bool {
        let Some((id, replay)) = copy else {
            return false;
        };
        match crate::dedupe::was_dead_lettered(&self.db, id, *replay).await {
            Ok(true) => {
                tracing::info!(consumer = self.name, event_id = %id, "copy of a dead-lettered event skipped");
                true
            }
            Ok(false) => false,
            // Retrying meets the same database trouble and waits for it.
            Err(err) => {
                tracing::warn!(consumer = self.name, error = %err, "could not check dead letters");
                false
            }
        }
    }

    /// Publishes the dead letter and waits for the broker's acknowledgement, retrying
    /// while the broker is away: a record is never skipped without its dead letter.
    async fn dead_letter(
        &self,
        record: &Record,
        error: &HandleError,
        attempts: u32,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let topic = Topics::dlt_of(&record.topic);
        let headers = dead_letter_headers(record, &self.group_id, error, attempts);
        let mut delay = Duration::from_millis(200);
        loop {
            let mut out = FutureRecord::<[u8], [u8]>::to(&topic).headers(headers.clone());
            if let Some(key) = &record.key {
                out = out.key(key);
            }
            if let Some(payload) = &record.payload {
                out = out.payload(payload);
            }
            match self.producer.send(out, Duration::from_secs(10)).await {
                Ok(_) => {
                    tracing::warn!(
                        consumer = self.name, dlt = %topic, offset = record.offset,
                        attempts, error = %error, "record dead-lettered"
                    );
                    return Outcome::DeadLettered;
                }
                Err((err, _)) => {
                    tracing::error!(dlt = %topic, error = %err, "could not publish dead letter, retrying")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Outcome::Interrupted,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// Longest the final offset commit and the consumer's close may take at shutdown.
pub const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// Commits the stored offsets, on a blocking thread (a synchronous commit is a blocking
/// librdkafka call, and with the broker gone it waits for it without end), for at most
/// [`CLOSE_WAIT`]. Past that the thread is left to finish on its own: the offsets not
/// committed are read again after a restart, and the handlers' dedupe absorbs them. (The
/// consumer is closed where its last reference is dropped, by [`crate::service::Runtime`],
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

/// The original headers followed by Spring Kafka's dead-letter headers. As in Spring,
/// partition is a 4-byte and offset and timestamp are 8-byte big-endian integers; the rest is UTF-8.
pub fn dead_letter_headers(
    record: &Record,
    group_id: &str,
    error: &HandleError,
    attempts: u32,
) -> OwnedHeaders {
    let mut out = OwnedHeaders::new_with_capacity(record.headers.len() + 8);
    for (key, value) in &record.headers {
        out = out.insert(Header {
            key,
            value: value.as_deref(),
        });
    }
    let partition = record.partition.to_be_bytes();
    let offset = record.offset.to_be_bytes();
    let timestamp = record.timestamp.unwrap_or(-1).to_be_bytes();
    let attempts = attempts.to_string();
    let fields: [(&str, &[u8]); 8] = [
        (headers::DLT_ORIGINAL_TOPIC, record.topic.as_bytes()),
        (headers::DLT_ORIGINAL_PARTITION, &partition),
        (headers::DLT_ORIGINAL_OFFSET, &offset),
        (headers::DLT_ORIGINAL_TIMESTAMP, &timestamp),
        (headers::DLT_ORIGINAL_CONSUMER_GROUP, group_id.as_bytes()),
        (headers::DLT_EXCEPTION_FQCN, error.class.as_bytes()),
        (headers::DLT_EXCEPTION_MESSAGE, error.message.as_bytes()),
        (headers::ATTEMPTS, attempts.as_bytes()),
    ];
    for (key, value) in fields {
        out = out.insert(Header {
            key,
            value: Some(value),
        });
    }
    out
}

/// The record's `openorder-replay-count` (0 for a record never replayed).
fn replay_count(record: &Record) -> i64 {
    record
        .header(crate::dlt::REPLAY_COUNT)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Reads a big-endian integer header as Spring Kafka writes them (4 or 8 bytes).
pub fn be_int(value: &[u8]) -> Option<i64> {
    match value.len() {
        4 => Some(i32::from_be_bytes(value.try_into().ok()?) as i64),
        8 => Some(i64::from_be_bytes(value.try_into().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_headers_keep_the_originals_and_add_springs() {
        let record = Record {
            topic: "order.created".into(),
            partition: 2,
            offset: 41,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"7".to_vec()),
            payload: Some(b"{}".to_vec()),
            headers: vec![("event-id".into(), Some(b"abc".to_vec()))],
        };
        let error = HandleError::permanent("openorder.UndecodableRecord", "bad json");
        let hs = dead_letter_headers(&record, "inventory-service", &error, 1);
        let get = |name: &str| {
            hs.iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(<[u8]>::to_vec)
        };
        assert_eq!(get("event-id").unwrap(), b"abc");
        assert_eq!(get(headers::DLT_ORIGINAL_TOPIC).unwrap(), b"order.created");
        assert_eq!(
            be_int(&get(headers::DLT_ORIGINAL_PARTITION).unwrap()),
            Some(2)
        );
        assert_eq!(
            be_int(&get(headers::DLT_ORIGINAL_OFFSET).unwrap()),
            Some(41)
        );
        assert_eq!(
            be_int(&get(headers::DLT_ORIGINAL_TIMESTAMP).unwrap()),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            get(headers::DLT_ORIGINAL_CONSUMER_GROUP).unwrap(),
            b"inventory-service"
        );
        assert_eq!(get(headers::DLT_EXCEPTION_MESSAGE).unwrap(), b"bad json");
        assert_eq!(get(headers::ATTEMPTS).unwrap(), b"1");
    }
}
