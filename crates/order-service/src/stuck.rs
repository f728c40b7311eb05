//! Orders that stay PENDING: a periodic task ([`Watchdog`], every [`EVERY`]) counts those
//! older than `--stuck-after` into `/metrics` (`openorder_orders_stuck`), with the age of
//! the oldest PENDING order (`openorder_orders_pending_oldest_age_seconds`), in one read of
//! the partial index of PENDING orders; `/admin/orders/stuck` lists them
//! ([`crate::routes`]). With `--expire-pending-after` (off by default) it first cancels
//! those older than that ([`store::expire_pending`]: CANCELLED with the reason `TIMEOUT`,
//! and `order.cancelled`, so inventory gives back what it reserves for them later and the
//! customer hears of it once).
//!
//! Why an order is stuck (inventory retrying it, its event not yet published, a consumer
//! lagging) is not known here: inventory-service's consumer and the relay hold that
//! (`/admin/status`, `openorder status`, their metrics), so the list gives none.

use std::time::Duration;

use chrono::Utc;
use contracts::Topics;
use platform::db::Database;
use platform::metrics::Metrics;
use platform::CancellationToken;

use crate::store;
use crate::waits::Waits;

/// How often the gauges are computed and expiry runs.
pub const EVERY: Duration = Duration::from_secs(10);

/// Most orders expired in one transaction; a pass goes on until fewer are left.
pub const EXPIRE_BATCH: i64 = 500;

/// `created_at` of an order placed `age` ago, as the database keeps it (RFC 3339, UTC,
/// milliseconds: text order is time order).
pub fn cutoff(age: Duration) -> String {
    let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
    Utc::now()
        .checked_sub_signed(age)
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The periodic task.
pub struct Watchdog {
    pub db: Database,
    pub topics: Topics,
    pub waits: Waits,
    pub metrics: Metrics,
    /// `--stuck-after`.
    pub stuck_after: Duration,
    /// `--expire-pending-after`; None: orders never expire.
    pub expire_after: Option<Duration>,
}

impl Watchdog {
    /// Runs a pass every [`EVERY`] until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(err) = self.pass(&stop).await {
                tracing::warn!(error = %err, "counting stuck orders failed; trying again in 10 s");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(EVERY) => {}
            }
        }
    }

    /// Expires what is due (with `--expire-pending-after`), then sets the gauges.
    pub async fn pass(&self, stop: &CancellationToken) -> Result<(), sqlx::Error> {
        if let Some(after) = self.expire_after {
            while !stop.is_cancelled() {
                let expired = store::expire_pending(
                    &self.db,
                    &self.topics,
                    &cutoff(after),
                    EXPIRE_BATCH,
                    &self.waits,
                )
                .await?;
                if !expired.is_empty() {
                    self.metrics.add(
                        &platform::telemetry::catalogue::ORDERS_EXPIRED,
                        &[],
                        expired.len() as u64,
                    );
                    tracing::info!(
                        orders = expired.len(),
                        "orders PENDING past --expire-pending-after cancelled (reason TIMEOUT)"
                    );
                }
                if (expired.len() as i64) < EXPIRE_BATCH {
                    break;
                }
            }
        }
        let (stuck, oldest) = store::pending_summary(&self.db, &cutoff(self.stuck_after)).await?;
        self.metrics
            .gauge(&platform::telemetry::catalogue::ORDERS_STUCK, &[], stuck);
        self.metrics.gauge(
            &platform::telemetry::catalogue::ORDERS_PENDING_OLDEST_AGE,
            &[],
            oldest.as_deref().map_or(0, store::age_seconds),
        );
        self.metrics.gauge(
            &platform::telemetry::catalogue::ORDER_WAITERS,
            &[],
            self.waits.waiting() as i64,
        );
        Ok(())
    }
}
