//! inventory-service: owns the stock. It consumes `order.created`, reserves each order's
//! items all-or-nothing in one database transaction, and publishes `inventory.reserved` or
//! `inventory.rejected` through its outbox; it consumes `order.cancelled` and gives a
//! cancelled order's stock back once (`inventory.released`). Orders it cannot process go to
//! `order.created.DLT`. It serves the inventory API, the admin API (faults, dead letters),
//! health and metrics on its admin port, 8082. With `--auto-redrive` it also runs the
//! automatic redrive policy ([`AutoRedriveArgs`], [`platform::dead_letters::redrive`]).
//!
//! Layout:
//! - [`reservation`]: the pure all-or-nothing rule.
//! - [`consumer()`]: the one consumer, `order.created` and `order.cancelled` routed to
//!   [`on_order_created`] (validation, the decision, its event) and [`on_order_cancelled`]
//!   (the stock given back once), after [`stock_locks`] (the lock order on PostgreSQL).
//! - [`faults`]: fault injection (`FAIL`, `FLAKY`), switchable at run time.
//! - [`store`]: schema, seed and queries.
//! - [`routes`]: the HTTP API (stock, faults; the dead-letter API is [`platform::http::dead_letters`]).

pub mod faults;
pub mod on_order_cancelled;
pub mod on_order_created;
pub mod reservation;
pub mod routes;
pub mod stock_locks;
pub mod store;

use std::path::PathBuf;

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use contracts::{OrderCancelled, OrderCreated, Service, Topics};
use platform::auth::Routes;
use platform::db::Backend;
use platform::router::Router;
use platform::service::{Assemble, Runtime, ServiceArgs};
use platform::CancellationToken;
use tokio::net::TcpListener;

/// Consumer group of the inventory consumer (behind the topic prefix). Its dead letters,
/// and only its, make an order FAILED.
pub const GROUP: &str = contracts::topics::INVENTORY_GROUP;

#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Brokers, database, HTTP and stopping, as every service takes them.
    #[command(flatten)]
    pub core: platform::service::ServiceArgs,

    /// JSON seed loaded into an empty stock table at first start (default: the shipped seed).
    #[arg(
        long,
        env = "OPENORDER_SEED_FILE",
        hide_short_help = true,
        help_heading = "Inventory"
    )]
    pub seed_file: Option<PathBuf>,

    /// The fault switches' values at start (`--fail-sku`, `--flaky-sku`).
    #[command(flatten)]
    pub faults: faults::FaultFlags,

    /// The automatic redrive policy (off by default).
    #[command(flatten)]
    pub auto_redrive: AutoRedriveArgs,
}

/// The automatic redrive policy: dead letters of transient failures replayed after a
/// delay, each up to a cap, no more than a budget a minute; each in the replay ledger.
/// Off by default; run it on one instance only.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Automatic redrive")]
pub struct AutoRedriveArgs {
    /// Redrive dead letters of transient failures automatically (from the DLTs, and from
    /// the parking lots until the cap).
    #[arg(long, env = "OPENORDER_AUTO_REDRIVE", hide_short_help = true)]
    pub auto_redrive: bool,

    /// A dead letter is redriven once it has been dead-lettered (or parked) this long
    /// (`30s`, `5m`, `1h`).
    #[arg(long, env = "OPENORDER_AUTO_REDRIVE_AFTER", default_value = "5m", value_parser = platform::retention::parse_age, hide_short_help = true)]
    pub auto_redrive_after: Duration,

    /// A record is redriven until its `openorder-replay-count` reaches this (replays by
    /// hand count too); past it, a parked record waits for a person.
    #[arg(long, env = "OPENORDER_AUTO_REDRIVE_MAX_REPLAYS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100), hide_short_help = true)]
    pub auto_redrive_max_replays: u32,

    /// Most records redriven in any minute, over all topics.
    #[arg(long, env = "OPENORDER_AUTO_REDRIVE_PER_MINUTE", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=100_000), hide_short_help = true)]
    pub auto_redrive_per_minute: u32,

    /// Error classes (`kafka_dlt-exception-fqcn`) redriven besides the dead letters marked
    /// transient, comma-separated (e.g. for dead letters written before the mark).
    #[arg(
        long,
        env = "OPENORDER_AUTO_REDRIVE_CLASSES",
        value_delimiter = ',',
        hide_short_help = true
    )]
    pub auto_redrive_classes: Vec<String>,
}

impl Default for AutoRedriveArgs {
    fn default() -> Self {
        Self {
            auto_redrive: false,
            auto_redrive_after: Duration::from_secs(5 * 60),
            auto_redrive_max_replays: 3,
            auto_redrive_per_minute: 60,
            auto_redrive_classes: Vec::new(),
        }
    }
}

impl AutoRedriveArgs {
    /// The policy, when it is on.
    pub fn policy(&self) -> Option<platform::dead_letters::redrive::AutoRedrive> {
        self.auto_redrive
            .then(|| platform::dead_letters::redrive::AutoRedrive {
                after: self.auto_redrive_after,
                max_replays: self.auto_redrive_max_replays,
                per_minute: self.auto_redrive_per_minute,
                classes: self
                    .auto_redrive_classes
                    .iter()
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect(),
            })
    }
}

/// Runs inventory-service until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    Runtime::run(
        Service::Inventory,
        &store::SCHEMA,
        config,
        listener,
        shutdown,
    )
    .await
}

/// inventory-service's own parts: the stock seeded, the fault switches, its consumer,
/// pruning (reservations, decisions and releases with `--retain-orders`), the automatic
/// redrive when on, and its API.
impl Assemble for Config {
    fn core(&self) -> &ServiceArgs {
        &self.core
    }

    async fn assemble(self, runtime: &mut Runtime) -> anyhow::Result<Routes> {
        let topics = self.core.kafka.topics();
        let seed = match &self.seed_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("Failed to read seed file {}", path.display()))?,
            None => store::DEFAULT_SEED.to_string(),
        };
        let seeded = store::seed_if_empty(&runtime.db, &seed).await?;
        if seeded > 0 {
            tracing::info!(skus = seeded, "stock seeded");
        }
        let flags = self.faults.config();
        let stored = store::fault_switches(&runtime.db).await?;
        let switches = flags.with_stored(&stored);
        if !stored.is_empty() {
            tracing::info!(fail_sku = %switches.fail_sku, flaky_sku = %switches.flaky_sku, "fault switches as last set through the API");
        }
        let faults = faults::Faults::new(switches);
        runtime
            .spawn_consumer(
                "inventory-order-events",
                GROUP,
                consumer(&topics, runtime.db.backend, faults.clone()),
                Duration::ZERO,
            )
            .await?;
        let retention = &runtime.retention;
        let mut rules = vec![
            platform::retention::Prune::processed_events(retention),
            platform::retention::Prune::dead_lettered(retention),
        ];
        // With orders kept for a time (`--retain-orders`), what inventory keeps of each order
        // (its reservation, decision and release) goes with them, by the same age.
        if let Some(keep) = retention.retain_orders {
            use platform::retention::{Prune, Walk};
            for (table, time) in [
                ("reservations", "created_at"),
                ("decisions", "decided_at"),
                ("releases", "released_at"),
            ] {
                rules.push(Prune {
                    table,
                    key: "order_id",
                    time,
                    walk: Walk::IntKey,
                    keep,
                    children: &[],
                });
            }
        }
        runtime.spawn_pruner(rules);
        if let Some(policy) = self.auto_redrive.policy() {
            let (kafka, metrics) = (self.core.kafka.clone(), runtime.metrics.clone());
            runtime.spawn_worker(move |stop| {
                platform::dead_letters::redrive::run(kafka, policy, metrics, stop)
            });
        }
        Ok(routes::routes(routes::AppState {
            db: runtime.db.clone(),
            faults,
            dlt: platform::http::dead_letters::DltState::new(
                self.core.kafka.clone(),
                runtime.metrics.clone(),
            ),
        }))
    }
}

/// inventory-service's one consumer: `order.created` and `order.cancelled`, each batch
/// locking its stock rows first ([`stock_locks`]).
pub fn consumer(
    topics: &Topics,
    backend: Backend,
    faults: faults::Faults,
) -> Router<stock_locks::StockLocks> {
    Router::new(Service::Inventory, topics)
        .on::<OrderCreated, _>(on_order_created::OnOrderCreated {
            backend,
            topics: topics.clone(),
            faults,
        })
        .on::<OrderCancelled, _>(on_order_cancelled::OnOrderCancelled {
            topics: topics.clone(),
        })
        .before_each_batch(stock_locks::StockLocks { backend })
}
