//! The delivery pipeline's sender: takes due `PENDING` deliveries from the database, sends
//! each on its channel, and records the outcome.
//!
//! - **Claim**: a batch of due deliveries gets `attempts + 1` and a lease (its next attempt
//!   time moves `--notify-lease-ms` ahead) in one statement, so a crash mid-send leaves the
//!   delivery to be sent again when the lease runs out; on PostgreSQL `FOR UPDATE SKIP
//!   LOCKED` lets several instances share the queue.
//! - **Send** up to `--notify-batch` at a time, outside any transaction (a channel may take
//!   seconds; a slow receiver holds one slot, not the queue).
//! - **Record** outcomes as sends finish, those finished together in one transaction —
//!   the one that claims the deliveries taking their places, so a round costs one commit:
//!   delivered; or, on a transient error with attempts left, due again after
//!   exponential backoff with jitter; or `FAILED` (permanent refusal or last attempt), in
//!   the same transaction as the `notification.failed` event in the outbox.
//!   Each update names the attempt it finishes, so a slow sender whose lease ran out cannot
//!   overwrite what a newer attempt recorded.
//!
//! A resend after a crash between send and record carries the same idempotency key and the
//! same bytes (rendered once), so receivers that honour the key see one message.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use contracts::{NotificationFailed, Topics};
use platform::db::{Backend, Database, Tx};
use platform::metrics::Metrics;
use sqlx::Row;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::channels::{Channels, Outgoing, SendError};
use crate::store::{DELIVERED, FAILED, PENDING};

/// Retry settings of deliveries.
#[derive(Args, Clone, Debug)]
pub struct DeliveryArgs {
    /// Tries per delivery, the first included, before it is FAILED.
    #[arg(long, env = "OPENORDER_NOTIFY_MAX_ATTEMPTS", default_value_t = 6)]
    pub notify_max_attempts: i64,
    /// Wait after the first failed try; doubles per try (±25 % jitter).
    #[arg(long, env = "OPENORDER_NOTIFY_BACKOFF_MS", default_value_t = 2_000)]
    pub notify_backoff_ms: u64,
    /// Longest wait between tries.
    #[arg(
        long,
        env = "OPENORDER_NOTIFY_BACKOFF_MAX_MS",
        default_value_t = 600_000
    )]
    pub notify_backoff_max_ms: u64,
    /// How long a claimed delivery is left to its sender before another may send it again
    /// (after a crash). Keep above the channels' timeouts.
    #[arg(long, env = "OPENORDER_NOTIFY_LEASE_MS", default_value_t = 60_000)]
    pub notify_lease_ms: u64,
    /// Deliveries claimed (and sent concurrently) at a time. A round of the dispatcher
    /// records the sends that finished and claims as many as took their places in one
    /// commit, so a larger batch means fewer commits when deliveries come fast (at 4,000
    /// orders/s, 16 → 64 took notification.db from 373 to 198 commits a second).
    #[arg(long, env = "OPENORDER_NOTIFY_BATCH", default_value_t = 64)]
    pub notify_batch: i64,
}

impl DeliveryArgs {
    /// The wait after failed try number `attempt` (from 1), with ±25 % jitter.
    pub fn backoff(&self, attempt: i64) -> Duration {
        let base = Duration::from_millis(self.notify_backoff_ms)
            .saturating_mul(2u32.saturating_pow(attempt.clamp(1, 31) as u32 - 1))
            .min(Duration::from_millis(self.notify_backoff_max_ms));
        base.mul_f64(rand::random_range(0.75..1.25))
    }
}

pub struct Dispatcher {
    pub db: Database,
    pub channels: Arc<Channels>,
    pub args: DeliveryArgs,
    pub topics: Topics,
    /// Woken when deliveries were queued.
    pub wake: Arc<Notify>,
    pub metrics: Metrics,
}

/// How long sends in flight may still run after a stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long to sleep when nothing is due and nobody wakes us (retries come due this way).
const IDLE_POLL: Duration = Duration::from_millis(250);

impl Dispatcher {
    /// Sends until `stop`, keeping up to `--notify-batch` sends in flight (a slow receiver
    /// holds one slot, not the queue), and records outcomes as they come, those that
    /// finished together in one transaction. On stop, the sends in flight get
    /// [`SHUTDOWN_GRACE`] to finish and be recorded.
    pub async fn run(self, stop: CancellationToken) {
        let this = Arc::new(self);
        let mut in_flight: JoinSet<(Claimed, Result<(), SendError>)> = JoinSet::new();
        // After stop, sends get a grace period; those still running are abandoned and,
        // their lease running out, sent again later (same key, same bytes).
        let grace = async {
            stop.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::pin!(grace);
        let mut grace_over = false;
        let mut outcomes = Vec::new();
        loop {
            let room = if stop.is_cancelled() {
                0
            } else {
                this.args.notify_batch - in_flight.len() as i64
            };
            if !outcomes.is_empty() || room > 0 {
                match this.settle(&outcomes, room).await {
                    Ok(claimed) => {
                        for message in claimed {
                            let this = this.clone();
                            in_flight.spawn(async move {
                                let result = this.send(&message).await;
                                (message, result)
                            });
                        }
                    }
                    // Unrecorded outcomes' leases run out and those are sent again: at
                    // least once.
                    Err(e) => tracing::warn!(
                        error = %format!("{e:#}"), outcomes = outcomes.len(),
                        "could not record delivery outcomes and claim deliveries; retrying"
                    ),
                }
                outcomes.clear();
            }
            if in_flight.is_empty() {
                if stop.is_cancelled() {
                    break;
                }
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = this.wake.notified() => {
                        // Let the deliveries queued right after come too: one claim
                        // (a commit) for all of them.
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = tokio::time::sleep(crate::GATHER) => {}
                        }
                    }
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            }
            // Wait for a send to finish (or for new work, to fill free slots).
            let first = tokio::select! {
                joined = in_flight.join_next() => joined,
                _ = &mut grace, if !grace_over => {
                    grace_over = true;
                    tracing::warn!(sends = in_flight.len(), "stopping: abandoning sends still in flight; they are resent when their lease runs out");
                    in_flight.abort_all();
                    None
                }
                _ = this.wake.notified(), if !stop.is_cancelled() => None,
                _ = tokio::time::sleep(IDLE_POLL), if !stop.is_cancelled() => None,
            };
            for joined in first
                .into_iter()
                .chain(std::iter::from_fn(|| in_flight.try_join_next()))
            {
                match joined {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(e) if e.is_cancelled() => {}
                    // Its lease runs out and it is sent again: at least once.
                    Err(e) => tracing::error!(error = %e, "a send task failed"),
                }
            }
        }
    }

    /// Records how the finished sends ended and claims up to `room` due deliveries, in one
    /// transaction (one commit a round instead of two).
    async fn settle(
        &self,
        outcomes: &[(Claimed, Result<(), SendError>)],
        room: i64,
    ) -> anyhow::Result<Vec<Claimed>> {
        let mut tx = self.db.begin().await?;
        self.record(&mut tx, outcomes).await?;
        let claimed = if room > 0 {
            self.claim(&mut tx, room).await?
        } else {
            Vec::new()
        };
        // A `notification.failed` enqueued wakes the relay with the commit.
        tx.commit().await?;
        Ok(claimed)
    }

    /// Sends one claimed message on its channel.
    async fn send(&self, message: &Claimed) -> Result<(), SendError> {
        match self.channels.get(&message.outgoing.channel) {
            Some(channel) => channel.send(&message.outgoing).await,
            None => Err(SendError::Transient(format!(
                "channel {} is not configured on this instance",
                message.outgoing.channel
            ))),
        }
    }

    /// What an attempt's result means for its delivery.
    fn next<'a>(&self, m: &Claimed, result: &'a Result<(), SendError>) -> Next<'a> {
        match result {
            Ok(()) => Next::Delivered,
            Err(SendError::Transient(e)) if m.attempts < self.args.notify_max_attempts => {
                Next::Retry(e)
            }
            Err(SendError::Transient(e) | SendError::Permanent(e)) => Next::Failed(e),
        }
    }

    /// Claims up to `limit` due deliveries.
    async fn claim(&self, tx: &mut Tx, limit: i64) -> anyhow::Result<Vec<Claimed>> {
        let now = Utc::now();
        let lease_until = now.timestamp_millis() + self.args.notify_lease_ms as i64;
        let lock = match self.db.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let ids = sqlx::query(&format!(
            "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, updated_at = $2
             WHERE id IN (SELECT id FROM deliveries WHERE status = $3 AND next_attempt_at <= $4
                          ORDER BY next_attempt_at, id LIMIT $5 {lock})
             RETURNING id"
        ))
        .bind(lease_until)
        .bind(platform::now_text())
        .bind(PENDING)
        .bind(now.timestamp_millis())
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let placeholders = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT d.id, d.order_id, d.channel, d.recipient, d.idempotency_key, d.attempts,
                    n.event_id, n.kind, n.subject, n.message, n.html, n.payload, n.created_at
             FROM deliveries d JOIN notifications n ON n.id = d.notification_id
             WHERE d.id IN ({placeholders}) ORDER BY d.id"
        );
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&mut **tx).await?;
        rows.iter()
            .map(|row| {
                let created_at: String = row.try_get("created_at")?;
                Ok(Claimed {
                    attempts: row.try_get("attempts")?,
                    event_id: row.try_get("event_id")?,
                    outgoing: Outgoing {
                        delivery_id: row.try_get("id")?,
                        order_id: row.try_get("order_id")?,
                        channel: row.try_get("channel")?,
                        recipient: row.try_get("recipient")?,
                        idempotency_key: row.try_get("idempotency_key")?,
                        kind: row.try_get("kind")?,
                        subject: row.try_get("subject")?,
                        text: row.try_get("message")?,
                        html: row.try_get("html")?,
                        payload: row.try_get("payload")?,
                        created_at: chrono::DateTime::parse_from_rfc3339(&created_at)
                            .with_context(|| format!("notification time {created_at:?}"))?
                            .with_timezone(&Utc),
                    },
                })
            })
            .collect()
    }

    /// Records how a batch's attempts ended (one that failed for good queues a
    /// `notification.failed` event). Each update names the attempt it finishes
    /// (`attempts = $n`), so it changes nothing if a newer attempt has taken over the
    /// delivery.
    async fn record(
        &self,
        tx: &mut Tx,
        outcomes: &[(Claimed, Result<(), SendError>)],
    ) -> anyhow::Result<()> {
        let now = platform::now_text();
        for (m, result) in outcomes {
            let id = m.outgoing.delivery_id;
            let next = self.next(m, result);
            let (status, due, error, delivered_at, label) = match next {
                Next::Delivered => (DELIVERED, None, None, Some(now.as_str()), "delivered"),
                Next::Retry(e) => {
                    let due = Utc::now().timestamp_millis()
                        + self.args.backoff(m.attempts).as_millis() as i64;
                    (PENDING, Some(due), Some(e), None, "retried")
                }
                Next::Failed(e) => (FAILED, None, Some(e), None, "failed"),
            };
            self.metrics.inc(
                "openorder_notification_attempts_total",
                &[("channel", m.outgoing.channel.as_str()), ("outcome", label)],
            );
            let updated = sqlx::query(
                "UPDATE deliveries SET status = $1, next_attempt_at = COALESCE($2, next_attempt_at),
                     last_error = $3, delivered_at = $4, updated_at = $5
                 WHERE id = $6 AND status = $7 AND attempts = $8",
            )
            .bind(status)
            .bind(due)
            .bind(error)
            .bind(delivered_at)
            .bind(&now)
            .bind(id)
            .bind(PENDING)
            .bind(m.attempts)
            .execute(&mut **tx)
            .await?;
            match next {
                Next::Delivered => {}
                Next::Retry(error) => {
                    tracing::info!(delivery = id, channel = %m.outgoing.channel, attempt = m.attempts, %error, "delivery failed; will retry");
                }
                Next::Failed(error) if updated.rows_affected() == 1 => {
                    let event = NotificationFailed {
                        event_id: contracts::new_event_id(),
                        order_id: m.outgoing.order_id,
                        source_event_id: m.event_id.parse().context("notification event id")?,
                        kind: m.outgoing.kind.clone(),
                        channel: m.outgoing.channel.clone(),
                        recipient: m.outgoing.recipient.clone(),
                        attempts: m.attempts,
                        error: error.to_string(),
                        timestamp: Utc::now(),
                    };
                    platform::outbox::enqueue(tx, &self.topics.notification_failed(), &event)
                        .await?;
                    tracing::warn!(delivery = id, channel = %m.outgoing.channel, attempts = m.attempts, %error, "delivery FAILED");
                }
                Next::Failed(_) => {}
            }
        }
        Ok(())
    }
}

/// Where an attempt leaves its delivery.
enum Next<'a> {
    Delivered,
    /// Due again after backoff, with this error.
    Retry(&'a str),
    /// FAILED (permanent refusal or last attempt), with this error.
    Failed(&'a str),
}

/// A claimed delivery: the message and which attempt this is.
struct Claimed {
    attempts: i64,
    event_id: String,
    outgoing: Outgoing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_attempt_up_to_the_cap() {
        let args = DeliveryArgs {
            notify_max_attempts: 6,
            notify_backoff_ms: 1_000,
            notify_backoff_max_ms: 5_000,
            notify_lease_ms: 60_000,
            notify_batch: 16,
        };
        for (attempt, base_ms) in [
            (1, 1_000.0),
            (2, 2_000.0),
            (3, 4_000.0),
            (4, 5_000.0),
            (40, 5_000.0),
        ] {
            let ms = args.backoff(attempt).as_millis() as f64;
            assert!(
                (base_ms * 0.75..=base_ms * 1.25).contains(&ms),
                "attempt {attempt}: {ms} ms"
            );
        }
    }
}
