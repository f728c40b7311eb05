//! Waiting for an order's decision without polling the database (`Prefer: wait=N` on
//! `GET /api/orders/{id}` and `POST /api/orders`, and the event stream
//! `GET /api/orders/{id}/events`).
//!
//! One [`Waits`] per process. A request that waits takes a slot ([`Waits::admit`]; at most
//! `--max-order-waiters` at once, one more is refused at once), then watches its order
//! ([`Admission::watch`]), then reads it: a decision committed before the watch began is
//! seen by that read, one committed after wakes the watcher ([`Watcher::next`]), which
//! reads the order once more. No waiter polls.
//!
//! Who tells: where the store moves an order ([`crate::store`]: the consumers' handlers,
//! cancel, expiry), [`Waits::announce`] in the same transaction. It wakes this process's
//! watchers of those orders once the transaction commits ([`platform::db::Tx::on_commit`]),
//! and on PostgreSQL also sends `pg_notify('openorder_orders', '<id>,<id>…')` in that
//! transaction, so that PostgreSQL delivers it at the commit to every instance: each runs
//! one [`listen`] task, which wakes its own watchers of those orders. When that listener
//! lost its connection it may have missed notifications: once connected again it wakes
//! every watcher, and each reads its order once.
//!
//! Every wait ends by its deadline, and at once when the service stops.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use platform::db::{Backend, Tx};
use platform::metrics::Metrics;
use platform::telemetry::catalogue;
use platform::CancellationToken;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::domain::OrderStatus;

mod notify;

pub use notify::listen;

/// Default of `--max-order-waiters`: half of the default limit on requests in flight
/// (`--max-in-flight-requests`, 2,048), since a waiting request holds one of those too, so
/// that waiters alone never shut out other requests.
pub const MAX_WAITERS: u32 = 1024;

/// Longest wait a client may ask for, in seconds (`Prefer: wait=N`); a longer one is cut
/// to it, and `Preference-Applied` says so.
pub const MAX_WAIT_SECONDS: u64 = 30;

/// The PostgreSQL channel of order changes; a notification's payload is the ids of the
/// orders a transaction moved, comma-separated.
pub const CHANNEL: &str = "openorder_orders";

/// Every waiter in this process, and who to wake. Cheap to clone.
#[derive(Clone)]
pub struct Waits {
    inner: Arc<Inner>,
}

struct Inner {
    /// One channel per order someone watches (removed with its last watcher): its value
    /// counts the times it was told, and every watcher wakes when it changes.
    orders: Mutex<HashMap<i64, watch::Sender<u64>>>,
    /// Told when every watcher should read its order again.
    everyone: watch::Sender<u64>,
    slots: Arc<Semaphore>,
    limit: usize,
    /// Where the time from an order's acceptance to its decision is observed
    /// ([`Waits::time_decisions`]).
    metrics: Metrics,
    /// Cancelled when the service stops: every wait ends then.
    stop: CancellationToken,
}

/// No slot was free: `limit` requests wait already.
#[derive(Debug, thiserror::Error)]
#[error("{limit} requests wait for orders already")]
pub struct TooManyWaiters {
    pub limit: usize,
}

/// A slot, taken before the order to watch is known (`POST` takes it before writing the
/// order, so that a refusal writes nothing).
pub struct Admission {
    waits: Waits,
    slot: OwnedSemaphorePermit,
}

/// One request's watch on one order. Dropping it frees its slot.
pub struct Watcher {
    waits: Waits,
    order_id: i64,
    /// Always set until dropped (taken in `drop`, so the count of receivers is right).
    order: Option<watch::Receiver<u64>>,
    everyone: watch::Receiver<u64>,
    _slot: OwnedSemaphorePermit,
}

/// Why [`Watcher::next`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woke {
    /// The order may have changed: read it again.
    Told,
    /// The deadline passed.
    TimedOut,
    /// The service is stopping.
    Stopping,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding it; a poisoned map is still a consistent one.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Waits {
    /// Room for `limit` waiters at once (at least one); every wait ends when `stop` is
    /// cancelled. Decisions are timed on `metrics`.
    pub fn new(limit: usize, stop: CancellationToken, metrics: Metrics) -> Self {
        let limit = limit.max(1);
        Self {
            inner: Arc::new(Inner {
                orders: Mutex::new(HashMap::new()),
                everyone: watch::channel(0).0,
                slots: Arc::new(Semaphore::new(limit)),
                limit,
                metrics,
                stop,
            }),
        }
    }

    /// Most waiters at once.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Waiters now.
    pub fn waiting(&self) -> usize {
        self.inner.limit - self.inner.slots.available_permits()
    }

    /// Takes a slot, or refuses at once when every slot is taken.
    pub fn admit(&self) -> Result<Admission, TooManyWaiters> {
        match self.inner.slots.clone().try_acquire_owned() {
            Ok(slot) => Ok(Admission {
                waits: self.clone(),
                slot,
            }),
            Err(_) => Err(TooManyWaiters {
                limit: self.inner.limit,
            }),
        }
    }

    /// Is the service stopping?
    pub fn stopping(&self) -> bool {
        self.inner.stop.is_cancelled()
    }

    /// Wakes this process's watchers of `order_ids` (the others are not watched here).
    pub fn tell(&self, order_ids: &[i64]) {
        let orders = lock(&self.inner.orders);
        if orders.is_empty() {
            return;
        }
        for order_id in order_ids {
            if let Some(order) = orders.get(order_id) {
                order.send_modify(|told| *told += 1);
            }
        }
    }

    /// Wakes every watcher of this process: each reads its order once more.
    pub fn tell_everyone(&self) {
        self.inner.everyone.send_modify(|told| *told += 1);
    }

    /// Tells the watchers of `order_ids`, which `tx` moves, once `tx` commits: this
    /// process's at the commit, and on PostgreSQL every instance's through
    /// `pg_notify` (sent in `tx`, so delivered at its commit, and never for a transaction
    /// rolled back).
    pub async fn announce(&self, tx: &mut Tx, order_ids: &[i64]) -> Result<(), sqlx::Error> {
        if order_ids.is_empty() {
            return Ok(());
        }
        if tx.backend() == Backend::Postgres {
            for payload in notify::payloads(order_ids) {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(payload)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        let (waits, order_ids) = (self.clone(), order_ids.to_vec());
        tx.on_commit(move || waits.tell(&order_ids));
        Ok(())
    }
}

impl Waits {
    /// Observes, once `tx` commits, how long each order it decides took from its
    /// acceptance (`created_at`, as stored) to `status`:
    /// `openorder_order_decision_seconds{status}`, the POST → decision time.
    pub fn time_decisions(&self, tx: &mut Tx, status: OrderStatus, created_at: Vec<String>) {
        if created_at.is_empty() {
            return;
        }
        let now = chrono::Utc::now();
        let seconds: Vec<f64> = created_at
            .iter()
            .filter_map(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map(|at| {
                (now - at.with_timezone(&chrono::Utc))
                    .as_seconds_f64()
                    .max(0.0)
            })
            .collect();
        let metrics = self.inner.metrics.clone();
        tx.on_commit(move || {
            let labels = [("status", status.as_str())];
            for s in seconds {
                metrics.observe(&catalogue::ORDER_DECISION, &labels, s);
            }
        });
    }
}

impl Admission {
    /// Watches `order_id` from now on: a change told after this wakes [`Watcher::next`].
    pub fn watch(self, order_id: i64) -> Watcher {
        let order = lock(&self.waits.inner.orders)
            .entry(order_id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        let everyone = self.waits.inner.everyone.subscribe();
        Watcher {
            waits: self.waits,
            order_id,
            order: Some(order),
            everyone,
            _slot: self.slot,
        }
    }
}

/// Resolves when `told` changes; never, if its sender is gone (the caller's other
/// branches end the wait).
async fn told(receiver: &mut watch::Receiver<u64>) {
    if receiver.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves at `deadline`, or never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending::<()>().await,
    }
}

impl Watcher {
    pub fn order_id(&self) -> i64 {
        self.order_id
    }

    /// Waits until the order is told of (or every watcher is) since the watch began or
    /// this last returned [`Woke::Told`], until `deadline` (None: no deadline), or until the
    /// service stops, whichever comes first.
    pub async fn next(&mut self, deadline: Option<Instant>) -> Woke {
        let stop = self.waits.inner.stop.clone();
        if stop.is_cancelled() {
            return Woke::Stopping;
        }
        let order = self
            .order
            .as_mut()
            .expect("a watcher has its receiver until it is dropped");
        tokio::select! {
            () = told(order) => Woke::Told,
            () = told(&mut self.everyone) => Woke::Told,
            () = stop.cancelled() => Woke::Stopping,
            () = until(deadline) => Woke::TimedOut,
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let mut orders = lock(&self.waits.inner.orders);
        drop(self.order.take());
        if orders
            .get(&self.order_id)
            .is_some_and(|order| order.receiver_count() == 0)
        {
            orders.remove(&self.order_id);
        }
    }
}

#[cfg(test)]
mod tests;
