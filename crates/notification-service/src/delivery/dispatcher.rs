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
//!   delivered (or `SENT`, when the receiver reports delivery later: an SMS with a
//!   status callback, see [`crate::delivery::receipts`]); or, on a transient error with
//!   attempts left, due again after exponential backoff with jitter (or after the
//!   receiver's `Retry-After`); or `FAILED` (permanent refusal or last attempt), in
//!   the same transaction as the `notification.failed` event in the outbox.
//!   Each update names the attempt it finishes, so a slow sender whose lease ran out cannot
//!   overwrite what a newer attempt recorded.
//!
//! A resend after a crash between send and record carries the same idempotency key and the
//! same bytes (rendered once), so receivers that honour the key see one message.
//!
//! Deliveries held by a user's quiet hours or digest window are `PENDING` rows due later
//! ([`crate::schedule`]): claimed like any other once due, so they survive restarts. A
//! delivery carrying a digest is sent as one message listing the digest's notices
//! ([`crate::delivery::digest`], composed as it is claimed). One that fails for good falls
//! back, once per notice, to the next channel of `--notify-fallback`
//! ([`crate::delivery::fallback`]), in the transaction that records the failure. The time
//! comes from one [`Clock`], which tests set by hand.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use contracts::{NotificationFailed, Topics};
use platform::db::{Database, Tx};
use platform::metrics::Metrics;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::delivery::channels::{Channels, SendError, Sent};
use crate::schedule::Clock;
use crate::store::{self, Claimed, DELIVERED, FAILED, PENDING, SENT};

/// Retry settings of deliveries.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Notifications")]
pub struct DeliveryArgs {
    /// Tries per delivery, the first included, before it is FAILED.
    #[arg(
        long,
        env = "OPENORDER_NOTIFY_MAX_ATTEMPTS",
        default_value_t = 6,
        hide_short_help = true
    )]
    pub notify_max_attempts: i64,
    /// Wait after the first failed try; doubles per try (±25 % jitter).
    #[arg(
        long,
        env = "OPENORDER_NOTIFY_BACKOFF_MS",
        default_value_t = 2_000,
        hide_short_help = true
    )]
    pub notify_backoff_ms: u64,
    /// Longest wait between tries.
    #[arg(
        long,
        env = "OPENORDER_NOTIFY_BACKOFF_MAX_MS",
        default_value_t = 600_000,
        hide_short_help = true
    )]
    pub notify_backoff_max_ms: u64,
    /// How long a claimed delivery is left to its sender before another may send it again
    /// (after a crash). Keep above the channels' timeouts.
    #[arg(
        long,
        env = "OPENORDER_NOTIFY_LEASE_MS",
        default_value_t = 60_000,
        hide_short_help = true
    )]
    pub notify_lease_ms: u64,
    /// Deliveries claimed (and sent concurrently) at a time. A round of the dispatcher
    /// records the sends that finished and claims as many as took their places in one
    /// commit, so a larger batch means fewer commits when deliveries come fast (at 4,000
    /// orders/s, 16 → 64 took notification.db from 373 to 198 commits a second).
    #[arg(
        long,
        env = "OPENORDER_NOTIFY_BATCH",
        default_value_t = 64,
        hide_short_help = true
    )]
    pub notify_batch: i64,
    /// Channels to fall back along, in order (`sms,email,log`): a delivery that fails for
    /// good goes once more on the next of them after its own that the user can be reached
    /// on and the notice has no delivery on yet, once per notice. Default: none.
    #[arg(
        long,
        env = "OPENORDER_NOTIFY_FALLBACK",
        value_delimiter = ',',
        value_parser = ["log", "email", "webhook", "sms", "push"],
        hide_short_help = true
    )]
    pub notify_fallback: Vec<String>,
}

impl DeliveryArgs {
    /// The wait after failed try number `attempt` (from 1), with ±25 % jitter.
    pub fn backoff(&self, attempt: i64) -> Duration {
        platform::backoff::Backoff::doubling(
            Duration::from_millis(self.notify_backoff_ms),
            Duration::from_millis(self.notify_backoff_max_ms),
        )
        .with_jitter(0.25)
        .delay(attempt.clamp(1, i64::from(u32::MAX)) as u32)
    }

    /// How long to wait before trying again after failed try number `attempt`: the
    /// receiver's `Retry-After` if it gave one (at most `--notify-backoff-max-ms`), else
    /// the backoff.
    pub fn retry_wait(&self, attempt: i64, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(after) => after.min(Duration::from_millis(self.notify_backoff_max_ms)),
            None => self.backoff(attempt),
        }
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
    /// Where the time comes from (tests move it by hand).
    pub clock: Clock,
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
        let mut in_flight: JoinSet<(Claimed, Result<Sent, SendError>)> = JoinSet::new();
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
                match this.settle(&outcomes, room, this.clock.now_ms()).await {
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

    /// One round at the time of the dispatcher's [`Clock`]: [`Dispatcher::round_at`] its
    /// now. For tests that move a manual clock rather than wait.
    pub async fn round(&self) -> anyhow::Result<usize> {
        self.round_at(self.clock.now_ms()).await
    }

    /// One round at `now_ms` (ms since the epoch), driven by the caller instead of the
    /// clock and the wake-ups of [`Dispatcher::run`]: claims what is due, sends it all,
    /// records how each send ended. Returns how many deliveries it sent. For tests of
    /// backoff and leases that move time rather than wait for it.
    pub async fn round_at(&self, now_ms: i64) -> anyhow::Result<usize> {
        let claimed = self.settle(&[], self.args.notify_batch, now_ms).await?;
        let mut outcomes = Vec::with_capacity(claimed.len());
        for message in claimed {
            let result = self.send(&message).await;
            outcomes.push((message, result));
        }
        self.settle(&outcomes, 0, now_ms).await?;
        Ok(outcomes.len())
    }

    /// Records how the finished sends ended and claims up to `room` deliveries due at
    /// `now_ms`, in one transaction (one commit a round instead of two).
    async fn settle(
        &self,
        outcomes: &[(Claimed, Result<Sent, SendError>)],
        room: i64,
        now_ms: i64,
    ) -> anyhow::Result<Vec<Claimed>> {
        let mut tx = self.db.begin().await?;
        self.record(&mut tx, outcomes, now_ms).await?;
        let claimed = if room > 0 {
            self.claim(&mut tx, room, now_ms).await?
        } else {
            Vec::new()
        };
        // A `notification.failed` enqueued wakes the relay with the commit.
        tx.commit().await?;
        Ok(claimed)
    }

    /// Sends one claimed message on its channel.
    async fn send(&self, message: &Claimed) -> Result<Sent, SendError> {
        match self.channels.get(&message.outgoing.channel) {
            Some(channel) => channel.send(&message.outgoing).await,
            None => Err(SendError::Transient(format!(
                "channel {} is not configured on this instance",
                message.outgoing.channel
            ))),
        }
    }

    /// What an attempt's result means for its delivery.
    fn next<'a>(&self, m: &Claimed, result: &'a Result<Sent, SendError>) -> Next<'a> {
        let attempts_left = m.attempts < self.args.notify_max_attempts;
        match result {
            Ok(sent) if sent.awaiting_receipt => Next::Sent,
            Ok(_) => Next::Delivered,
            Err(SendError::Transient(e)) if attempts_left => Next::Retry(e, None),
            Err(SendError::Later(e, after)) if attempts_left => Next::Retry(e, Some(*after)),
            Err(SendError::Transient(e) | SendError::Later(e, _) | SendError::Permanent(e)) => {
                Next::Failed(e)
            }
        }
    }

    /// Claims up to `limit` due deliveries, each leased for `--notify-lease-ms`.
    async fn claim(&self, tx: &mut Tx, limit: i64, now_ms: i64) -> anyhow::Result<Vec<Claimed>> {
        let lease_until = now_ms + self.args.notify_lease_ms as i64;
        store::claim_due(tx, self.db.backend, now_ms, lease_until, limit).await
    }

    /// Records how a batch's attempts ended (one that failed for good queues a
    /// `notification.failed` event). Each update names the attempt it finishes
    /// (`attempts = $n`), so it changes nothing if a newer attempt has taken over the
    /// delivery.
    async fn record(
        &self,
        tx: &mut Tx,
        outcomes: &[(Claimed, Result<Sent, SendError>)],
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let now = platform::now_text();
        for (m, result) in outcomes {
            let id = m.outgoing.delivery_id;
            let next = self.next(m, result);
            let (status, due, error, delivered_at, label) = match next {
                Next::Delivered => (DELIVERED, None, None, Some(now.as_str()), "delivered"),
                Next::Sent => (SENT, None, None, None, "sent"),
                Next::Retry(e, retry_after) => {
                    let wait = self.args.retry_wait(m.attempts, retry_after);
                    let due = now_ms + wait.as_millis() as i64;
                    (PENDING, Some(due), Some(e), None, "retried")
                }
                Next::Failed(e) => (FAILED, None, Some(e), None, "failed"),
            };
            self.metrics.inc(
                &platform::telemetry::catalogue::NOTIFICATION_ATTEMPTS,
                &[("channel", m.outgoing.channel.as_str()), ("outcome", label)],
            );
            let finish = store::Finish {
                status,
                due,
                error,
                delivered_at,
                provider_id: result.as_ref().ok().and_then(|s| s.provider_id.as_deref()),
                now: &now,
            };
            let updated = store::finish_attempt(tx, id, m.attempts, &finish).await?;
            match next {
                Next::Delivered | Next::Sent => {}
                Next::Retry(error, _) => {
                    tracing::info!(delivery = id, channel = %m.outgoing.channel, attempt = m.attempts, %error, "delivery failed; will retry");
                }
                Next::Failed(error) if updated => {
                    let now = DateTime::from_timestamp_millis(now_ms).unwrap_or_else(Utc::now);
                    let fallback = crate::delivery::fallback::fall_back(
                        tx,
                        &self.args.notify_fallback,
                        &self.channels,
                        now,
                        id,
                        error,
                    )
                    .await?;
                    if let Some(to) = fallback {
                        tracing::info!(delivery = id, channel = %m.outgoing.channel, fallback = to, "delivery falls back to another channel");
                    }
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
    /// Accepted; the receiver reports delivery later (`SENT`).
    Sent,
    /// Due again after backoff (or the receiver's `Retry-After`), with this error.
    Retry(&'a str, Option<Duration>),
    /// FAILED (permanent refusal or last attempt), with this error.
    Failed(&'a str),
}

#[cfg(test)]
mod tests;
