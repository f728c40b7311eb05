//! The outbox relay: publishes the rows services wrote with `store::outbox::enqueue`, in id
//! order, with the idempotent producer (`acks=all`), and deletes the rows the broker has
//! acknowledged (on SQLite in bulk, every 200 ms at most while busy). If the broker is down,
//! rows wait and go out when it is back; if the process dies between publish and delete, the
//! row is sent again and consumers drop the duplicate by `eventId`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use sqlx::{AnyConnection, Row};
use tokio_util::sync::CancellationToken;

use store::db::{Backend, Database};
use store::outbox::Waker;

mod send_span;
use send_span::send_span;

/// Advisory lock key of the outbox relay on PostgreSQL (any constant; one per database).
const OUTBOX_LOCK: i64 = 0x6f72_6465_725f_6f62; // "order_ob"

/// What one pass of the relay did.
#[derive(Debug, PartialEq, Eq)]
pub enum RelayOutcome {
    /// Nothing was waiting.
    Idle,
    /// Another instance's relay holds the outbox (PostgreSQL), in a pass that may have begun
    /// before this one's rows were committed: try again soon.
    Held,
    /// This many rows were published and deleted.
    Published(usize),
}

/// Publishes outbox rows to Kafka.
pub struct Relay {
    /// The service whose outbox this is (for the spans).
    pub service: &'static str,
    pub db: Database,
    pub producer: FutureProducer,
    pub waker: Waker,
    /// Rows read and published per pass.
    pub batch_size: i64,
    /// Wait between passes when nothing woke the relay (a safety net; commits wake it).
    pub poll_interval: Duration,
    /// SQLite: how far the outbox is published and deleted.
    progress: std::sync::Mutex<Progress>,
}

/// On SQLite, published rows are deleted in bulk, not after every pass: each delete is a
/// transaction of its own (an fsync, and a turn at the write gate that new orders queue
/// for). The relay remembers how far it has published and reads on from there.
#[derive(Debug)]
struct Progress {
    /// Every row up to this id is acknowledged by the broker.
    published_through: i64,
    /// Every row up to this id is deleted.
    deleted_through: i64,
    last_delete: std::time::Instant,
}

/// Longest a published row waits for its bulk delete while the relay is busy; an idle
/// relay deletes at once.
const DELETE_EVERY: Duration = Duration::from_millis(200);

/// How long a woken relay, and one that just published, waits before it reads the outbox,
/// so that the events committed meanwhile go out in the same produce request: the broker's
/// cost is per request more than per record, and at 1,000 orders/s a relay that read at
/// once sent a record or two per request.
const GATHER: Duration = Duration::from_millis(2);

/// First wait before trying again after finding another instance's relay holding the
/// outbox; it doubles while the outbox stays held.
const HELD_RETRY: Duration = Duration::from_millis(5);

/// The wait after a failed pass: 0.4 s, doubling up to 6.4 s.
const RETRY: kafka_clients::backoff::Backoff = kafka_clients::backoff::Backoff::doubling(
    Duration::from_millis(400),
    Duration::from_millis(6400),
);

struct Row_ {
    id: i64,
    topic: String,
    key: String,
    payload: String,
    headers: HashMap<String, String>,
}

/// What one pass read from the outbox and what the broker acknowledged.
struct Pass {
    /// Another relay held the outbox, so nothing was read.
    held_elsewhere: bool,
    read: usize,
    published: Vec<i64>,
    first_error: Option<String>,
    /// The last row of the unbroken run of acknowledged rows the pass began with.
    acknowledged_through: Option<i64>,
}

impl Pass {
    fn outcome(self) -> anyhow::Result<RelayOutcome> {
        match self.first_error {
            Some(err) => Err(anyhow::anyhow!(
                "published {} of {} outbox rows; the broker refused the rest: {err}",
                self.published.len(),
                self.read
            )),
            None if self.held_elsewhere => Ok(RelayOutcome::Held),
            None if self.read == 0 => Ok(RelayOutcome::Idle),
            None => Ok(RelayOutcome::Published(self.published.len())),
        }
    }
}

async fn delete_published(conn: &mut AnyConnection, ids: &[i64]) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    // Ids are integers read from our own table, so inlining them is safe.
    let ids = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    sqlx::query(&format!("DELETE FROM outbox WHERE id IN ({ids})"))
        .execute(&mut *conn)
        .await
        .context("Failed to delete published outbox rows")?;
    Ok(())
}

impl Relay {
    pub fn new(
        service: &'static str,
        db: Database,
        producer: FutureProducer,
        waker: Waker,
        batch_size: i64,
        poll_interval: Duration,
    ) -> Self {
        Self {
            service,
            db,
            producer,
            waker,
            batch_size,
            poll_interval,
            progress: std::sync::Mutex::new(Progress {
                published_through: 0,
                deleted_through: 0,
                last_delete: std::time::Instant::now(),
            }),
        }
    }

    /// Publishes up to one batch, in id order, and deletes what the broker acknowledged.
    ///
    /// On PostgreSQL, where several instances of a service share one outbox, a pass runs
    /// inside a transaction holding an advisory lock, so only one relay publishes at a time
    /// and events keep their order; the others find the lock taken ([`RelayOutcome::Held`])
    /// and try again a few milliseconds later, since the holder's pass may have read before
    /// their rows were committed. SQLite has one process per database file.
    pub async fn relay_once(&self) -> anyhow::Result<RelayOutcome> {
        match self.db.backend {
            Backend::Postgres => {
                let mut tx = self
                    .db
                    .begin()
                    .await
                    .context("Failed to begin a relay pass")?;
                // The pass's commit only deletes rows the broker has acknowledged: if a
                // crash loses it, those rows go out again and consumers drop the copies by
                // event id. So it need not wait for its own fsync (turned off for this
                // transaction alone, in the statement that reads the rows); every commit a
                // 202 or a consumer's offset depends on still does. A relay that finds the
                // lock taken reads nothing.
                let pass = self.publish_batch(&mut tx, 0, Some(OUTBOX_LOCK)).await?;
                delete_published(&mut tx, &pass.published).await?;
                tx.commit().await.context("Failed to commit a relay pass")?;
                pass.outcome()
            }
            Backend::Sqlite => {
                // Read and publish outside a transaction, so the write gate is not held
                // while the broker acknowledges; delete in bulk now and then (`Progress`).
                // One process owns a SQLite file, so remembering progress in memory is
                // safe; after a restart, rows published but not deleted go out again and
                // consumers drop the copies by event id.
                let after = self.progress().published_through;
                let mut conn = self
                    .db
                    .pool
                    .acquire()
                    .await
                    .context("Failed to get a connection")?;
                let pass = self.publish_batch(&mut conn, after, None).await?;
                drop(conn);
                if let Some(id) = pass.acknowledged_through {
                    self.progress().published_through = id;
                }
                self.delete_published_through(pass.read == 0).await?;
                pass.outcome()
            }
        }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// SQLite: deletes the rows published since the last delete, if the relay is `idle`
    /// or the last delete is [`DELETE_EVERY`] old.
    async fn delete_published_through(&self, idle: bool) -> anyhow::Result<()> {
        let (through, due) = {
            let p = self.progress();
            let due = p.published_through > p.deleted_through
                && (idle || p.last_delete.elapsed() >= DELETE_EVERY);
            (p.published_through, due)
        };
        if !due {
            return Ok(());
        }
        let mut tx = self.db.begin().await.context("Failed to begin a delete")?;
        sqlx::query("DELETE FROM outbox WHERE id <= $1")
            .bind(through)
            .execute(&mut *tx)
            .await
            .context("Failed to delete published outbox rows")?;
        tx.commit()
            .await
            .context("Failed to commit deleting published outbox rows")?;
        let mut p = self.progress();
        p.deleted_through = through;
        p.last_delete = std::time::Instant::now();
        Ok(())
    }

    /// Publishes the rows after id `after`, up to a batch. With `lock` (PostgreSQL), in the
    /// same round trip: takes that advisory lock for the transaction and turns off its
    /// synchronous commit, reading nothing if another relay holds the lock.
    async fn publish_batch(
        &self,
        conn: &mut AnyConnection,
        after: i64,
        lock: Option<i64>,
    ) -> anyhow::Result<Pass> {
        let (rows, held_elsewhere) = self.read_batch(conn, after, lock).await?;
        Ok(Pass {
            held_elsewhere,
            ..self.publish(&rows).await
        })
    }

    /// Reads the rows after id `after`, up to a batch (see [`Relay::publish_batch`]), and
    /// whether another relay held the lock (then none are read).
    async fn read_batch(
        &self,
        conn: &mut AnyConnection,
        after: i64,
        lock: Option<i64>,
    ) -> anyhow::Result<(Vec<Row_>, bool)> {
        let sql = match lock {
            None => "SELECT id, topic, record_key, payload, headers FROM outbox WHERE id > $1 ORDER BY id LIMIT $2",
            // A CTE with volatile functions is evaluated once, before the rows are read; the
            // gate's row comes back even when no row is read, to say whether the lock was
            // taken.
            Some(_) => {
                "WITH gate AS MATERIALIZED (\
                   SELECT pg_try_advisory_xact_lock($3) AS held, \
                          set_config('synchronous_commit', 'off', true) AS sync) \
                 SELECT gate.held, o.id, o.topic, o.record_key, o.payload, o.headers \
                 FROM gate LEFT JOIN LATERAL (\
                   SELECT id, topic, record_key, payload, headers FROM outbox \
                   WHERE gate.held AND id > $1 ORDER BY id LIMIT $2) o ON TRUE \
                 ORDER BY o.id"
            }
        };
        let mut query = sqlx::query(sql).bind(after).bind(self.batch_size);
        if let Some(lock) = lock {
            query = query.bind(lock);
        }
        let rows = query
            .fetch_all(&mut *conn)
            .await
            .context("Failed to read the outbox")?;
        let held = match (lock, rows.first()) {
            (Some(_), Some(gate)) => gate.try_get::<bool, _>("held")?,
            _ => true,
        };
        // Without an outbox row (none waiting, or the lock held elsewhere), the lock's row
        // comes back alone, its id NULL.
        let decode = |r: &sqlx::any::AnyRow| -> anyhow::Result<Option<Row_>> {
            let Some(id) = r.try_get::<Option<i64>, _>("id")? else {
                return Ok(None);
            };
            Ok(Some(Row_ {
                id,
                topic: r.try_get("topic")?,
                key: r.try_get("record_key")?,
                payload: r.try_get("payload")?,
                headers: serde_json::from_str(&r.try_get::<String, _>("headers")?)?,
            }))
        };
        let rows = rows
            .iter()
            .filter_map(|r| decode(r).transpose())
            .collect::<anyhow::Result<_>>()
            .context("Failed to decode an outbox row")?;
        Ok((rows, !held))
    }

    /// Sends `rows` and waits for the broker's acknowledgements.
    async fn publish(&self, rows: &[Row_]) -> Pass {
        let spans: Vec<tracing::Span> = rows
            .iter()
            .map(|row| send_span(self.service, &row.topic, &row.key, &row.headers))
            .collect();
        // Enqueue the whole batch before awaiting any of it, so librdkafka batches them;
        // the idempotent producer keeps per-partition order across its retries.
        let deliveries: Vec<_> = rows.iter().map(|row| self.send(row)).collect();

        let mut published = Vec::with_capacity(rows.len());
        let mut first_error = None;
        let mut acknowledged_through = None;
        for ((row, delivery), span) in rows.iter().zip(deliveries).zip(spans) {
            let result = match delivery {
                Ok(future) => match future.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((err, _))) => Err(err.to_string()),
                    Err(_) => Err("the producer dropped the delivery".to_string()),
                },
                Err(err) => Err(err),
            };
            if result.is_err() {
                span.record("error.type", "publish_failed");
                span.record("otel.status_code", "ERROR");
            }
            // The span ends with the broker's acknowledgement (or the failure).
            drop(span);
            match result {
                Ok(()) => {
                    if first_error.is_none() {
                        acknowledged_through = Some(row.id);
                    }
                    published.push(row.id)
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        Pass {
            held_elsewhere: false,
            read: rows.len(),
            published,
            first_error,
            acknowledged_through,
        }
    }

    /// Gives `row` to the producer.
    fn send(&self, row: &Row_) -> Result<DeliveryFuture, String> {
        let mut hs = OwnedHeaders::new_with_capacity(row.headers.len());
        for (key, value) in &row.headers {
            hs = hs.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        let record = FutureRecord::to(&row.topic)
            .key(row.key.as_bytes())
            .payload(row.payload.as_bytes())
            .headers(hs);
        self.producer
            .send_result(record)
            .map_err(|(err, _)| err.to_string())
    }

    /// Relays until `shutdown`, then makes one last pass and flushes the producer.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        // While another instance's relay holds the outbox: how long until this one tries
        // again ([`HELD_RETRY`], doubling up to the poll interval).
        let mut held_retry: Option<Duration> = None;
        loop {
            match self.relay_once().await {
                // More may be waiting (also after shutdown: drain before stopping).
                Ok(RelayOutcome::Published(_)) => {
                    failures = 0;
                    if !shutdown.is_cancelled() {
                        tokio::time::sleep(GATHER).await;
                    }
                    continue;
                }
                Ok(RelayOutcome::Idle) => {
                    failures = 0;
                    held_retry = None;
                }
                // The holder's pass may have read before this instance's rows committed;
                // it ends within milliseconds (and a holder that published reads again),
                // so try again soon rather than at the next poll.
                Ok(RelayOutcome::Held) => {
                    failures = 0;
                    held_retry =
                        Some(held_retry.map_or(HELD_RETRY, |d| (d * 2).min(self.poll_interval)));
                }
                Err(err) => {
                    failures += 1;
                    tracing::warn!(
                        error = format!("{err:#}"),
                        failures,
                        "outbox relay pass failed"
                    );
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            let wait = if failures > 0 {
                RETRY.delay(failures)
            } else {
                held_retry.unwrap_or(self.poll_interval)
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = self.waker.notify().notified() => tokio::time::sleep(GATHER).await,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
        tracing::info!("outbox relay stopped");
    }
}
