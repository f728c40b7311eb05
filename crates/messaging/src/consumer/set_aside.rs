//! A key set aside: its lane, a task of its own that works through the record that failed
//! (retried by its failures' kinds, else dead-lettered, see [`crate::consumer`]) and then the
//! key's records received meanwhile, while the batches go on without that key.

use std::sync::Arc;
use std::time::Duration;

use contracts::headers;
use contracts::Topics;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{FailureKind, HandleError, Handler, Record, Shared};
use crate::dead_letters::write::Sent;
use kafka_clients::backoff::Backoff;

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

impl<H: Handler> Shared<H> {
    /// Opens a lane for `record`'s key that starts with `record` (which just failed with
    /// `error`), worked through by a task of its own.
    pub(super) fn set_aside(
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
