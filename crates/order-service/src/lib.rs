//! order-service: accepts orders over HTTP (8080), stores each as PENDING together with its
//! `order.created` event in one transaction (the outbox), and moves it to CONFIRMED,
//! REJECTED or FAILED as inventory events and dead letters arrive. Cancelling an order makes
//! it CANCELLED at once and publishes `order.cancelled`.
//!
//! Layout:
//! - [`domain`]: request parsing into domain types; the statuses and the moves between
//!   them are `contracts::lifecycle`'s table, which [`store`] applies.
//! - [`routes`]: the HTTP API.
//! - [`waits`]: requests waiting for an order's decision (`Prefer: wait`, the event
//!   stream), woken where the store moves orders, across instances on PostgreSQL.
//! - [`stuck`]: orders PENDING too long: gauges, and expiry when configured.
//! - [`intake`]: group commit of new orders (many requests, one transaction).
//! - one module per consumed event: [`on_inventory_reserved`] (CONFIRMED),
//!   [`on_inventory_rejected`] (REJECTED), [`on_inventory_released`] (`releasedAt`),
//!   [`on_order_created_dead_letter`] (FAILED); [`outcome`]: the step they share.
//! - [`store`]: schema and queries.

pub mod domain;
pub mod intake;
pub mod on_inventory_rejected;
pub mod on_inventory_released;
pub mod on_inventory_reserved;
pub mod on_order_created_dead_letter;
pub mod outcome;
pub mod routes;
pub mod store;
pub mod stuck;
pub mod waits;

use std::time::Duration;

use clap::Args;
use contracts::{
    InventoryRejected, InventoryReleased, InventoryReserved, OrderCreated, Service, Topics,
};
use platform::auth::Routes;
use platform::db::Backend;
use platform::retention::{Prune, RetentionArgs, Walk};
use platform::router::Router;
use platform::service::{Assemble, Runtime, ServiceArgs};
use platform::CancellationToken;
use tokio::net::TcpListener;

/// Consumer groups (behind the topic prefix).
pub const GROUP: &str = "order-service";
pub const DLT_GROUP: &str = "order-service-dlt";
/// The group whose dead letters fail an order (inventory-service's).
pub use contracts::topics::INVENTORY_GROUP;

#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Brokers, database, HTTP and stopping, as every service takes them.
    #[command(flatten)]
    pub core: platform::service::ServiceArgs,

    #[command(flatten)]
    pub webhooks: platform::config::WebhookDestinationArgs,

    #[command(flatten)]
    pub orders: OrderArgs,
}

/// order-service's own settings: requests waiting for decisions, stuck and expired orders.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Orders")]
pub struct OrderArgs {
    /// Most requests waiting at once for orders' decisions (`Prefer: wait`) or following
    /// them (`/api/orders/{id}/events`); one more is answered at once with
    /// `503 /problems/too-many-waiters` and `Retry-After: 1`. A waiting request also holds
    /// one of `--max-in-flight-requests`: keep this below it.
    #[arg(long, env = "OPENORDER_MAX_ORDER_WAITERS", default_value_t = waits::MAX_WAITERS, value_parser = clap::value_parser!(u32).range(1..=1_000_000), hide_short_help = true)]
    pub max_order_waiters: u32,
    /// An order PENDING longer than this is stuck: counted in `openorder_orders_stuck` and
    /// listed by `GET /admin/orders/stuck` (`90s`, `5m`, `1h`).
    #[arg(long, env = "OPENORDER_STUCK_AFTER", default_value = "5m", value_parser = platform::retention::parse_age, hide_short_help = true)]
    pub stuck_after: Duration,
    /// Cancel an order still PENDING this long after it was placed (reason `TIMEOUT`,
    /// with `order.cancelled`); by default orders never expire. Keep it above
    /// `--stuck-after` and above the longest inventory may take, retries included.
    #[arg(long, env = "OPENORDER_EXPIRE_PENDING_AFTER", value_parser = platform::retention::parse_age, hide_short_help = true)]
    pub expire_pending_after: Option<Duration>,
}

impl Default for OrderArgs {
    fn default() -> Self {
        Self {
            max_order_waiters: waits::MAX_WAITERS,
            stuck_after: DEFAULT_STUCK_AFTER,
            expire_pending_after: None,
        }
    }
}

/// Default of `--stuck-after`.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(5 * 60);

/// Runs order-service until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    Runtime::run(Service::Order, &store::SCHEMA, config, listener, shutdown).await
}

/// order-service's own parts: the waiters (told of other instances' decisions on
/// PostgreSQL), its consumers, pruning, the stuck-order watchdog, the intake and its API.
impl Assemble for Config {
    fn core(&self) -> &ServiceArgs {
        &self.core
    }

    async fn assemble(self, runtime: &mut Runtime) -> anyhow::Result<Routes> {
        let topics = self.core.kafka.topics();
        let waits = waits::Waits::new(
            self.orders.max_order_waiters as usize,
            runtime.shutdown.clone(),
            runtime.metrics.clone(),
        );
        if runtime.db.backend == Backend::Postgres {
            // Other instances' decisions, for this one's waiters.
            let (waits, url) = (waits.clone(), self.core.database.database_url.clone());
            runtime.spawn_worker(move |stop| waits::listen(waits, url, stop));
        }
        spawn_consumers(runtime, &topics, &waits).await?;
        let rules = prune_rules(&runtime.retention);
        runtime.spawn_pruner(rules);
        let watchdog = stuck::Watchdog {
            db: runtime.db.clone(),
            topics: topics.clone(),
            waits: waits.clone(),
            metrics: runtime.metrics.clone(),
            stuck_after: self.orders.stuck_after,
            expire_after: self.orders.expire_pending_after,
        };
        runtime.spawn_worker(move |stop| watchdog.run(stop));
        Ok(routes::routes(routes::AppState {
            db: runtime.db.clone(),
            intake: intake::Intake::start(
                runtime.db.clone(),
                topics.clone(),
                intake::QUEUE,
                runtime.metrics.clone(),
            ),
            topics,
            webhooks: self.webhooks.destinations(),
            waits,
            stuck_after: self.orders.stuck_after,
        }))
    }
}

/// The consumers: inventory's outcomes (reserved, rejected, released) in [`GROUP`], and
/// `order.created`'s dead letters in [`DLT_GROUP`] (those of [`INVENTORY_GROUP`] fail the
/// order).
async fn spawn_consumers(
    runtime: &mut Runtime,
    topics: &Topics,
    waits: &waits::Waits,
) -> anyhow::Result<()> {
    let outcomes = Router::new(Service::Order, topics)
        .on::<InventoryReserved, _>(on_inventory_reserved::OnInventoryReserved {
            waits: waits.clone(),
        })
        .on::<InventoryRejected, _>(on_inventory_rejected::OnInventoryRejected {
            waits: waits.clone(),
        })
        .on::<InventoryReleased, _>(on_inventory_released::OnInventoryReleased);
    runtime
        .spawn_consumer("order-inventory-outcomes", GROUP, outcomes, Duration::ZERO)
        .await?;
    let dead_letters = Router::new(Service::Order, topics).on_dead_letters::<OrderCreated, _>(
        on_order_created_dead_letter::OnOrderCreatedDeadLetter {
            inventory_group: topics.group(INVENTORY_GROUP),
            waits: waits.clone(),
        },
    );
    runtime
        .spawn_consumer(
            "order-dead-letters",
            DLT_GROUP,
            dead_letters,
            Duration::ZERO,
        )
        .await?;
    Ok(())
}

/// What the pruner deletes: processed and dead-lettered event ids, idempotency keys, and
/// orders (with their items) when `--retain-orders` is set.
fn prune_rules(retention: &RetentionArgs) -> Vec<Prune> {
    let mut rules = vec![
        Prune::processed_events(retention),
        Prune::dead_lettered(retention),
        Prune {
            table: "idempotency_keys",
            key: "key",
            time: "created_at",
            walk: Walk::Time,
            keep: retention.retain_idempotency_keys,
            children: &[],
        },
    ];
    if let Some(keep) = retention.retain_orders {
        rules.push(Prune {
            table: "orders",
            key: "id",
            time: "created_at",
            walk: Walk::IntKey,
            keep,
            children: &[("order_items", "order_id")],
        });
    }
    rules
}
