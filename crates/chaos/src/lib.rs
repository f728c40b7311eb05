//! `openorder chaos`: the fault-injection harness. For each scenario it runs the real
//! services as separate OS processes against a real broker and database, drives a bounded
//! load of orders (in-stock, out-of-stock, multi-item, `FAIL`, cancels), injects the
//! scenario's fault mid-load, waits for quiescence, checks the invariants ([`check`]) and
//! prints one row per scenario: orders, faults injected, lost, duplicated, violations.
//! Zero is the only passing number; the exit status says whether every row passed.
//!
//! Layout: [`harness::cluster`] (processes, broker, databases), `scenario` (one scenario's
//! run, step by step), [`load`] (the clients), [`check`] (quiescence and invariants),
//! [`disk`] (the file system the disk-full scenario fills), [`notices`] (notices held by
//! quiet hours or gathered into a digest, for `kill-notification-held`).
//!
//! [`run`] is `openorder chaos`: it runs inside the `openorder` binary, whose executable it
//! starts again as each service.

pub mod check;
pub mod disk;
pub mod load;
pub mod notices;
mod scenario;

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use harness::cluster::{Backend, BackendArgs, BrokerChoice};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// kill -9 of inventory-service mid-load, restarted.
    KillInventory,
    /// kill -9 of order-service mid-load, restarted (clients retry with their Idempotency-Key).
    KillOrder,
    /// kill -9 of notification-service mid-load, restarted.
    KillNotification,
    /// kill -9 of notification-service while notices wait: held by one user's quiet hours
    /// and gathered into another's digest (windows of at most 2 minutes, waited out); after
    /// the restart each goes exactly once, when due, to a webhook receiver the harness runs.
    KillNotificationHeld,
    /// The broker stopped for several seconds mid-load and restarted; POSTs go on meanwhile.
    BrokerRestart,
    /// The database stopped briefly mid-load (requests get 503s; nothing half-written).
    DatabaseRestart,
    /// Two inventory-service instances in one group; one killed mid-load (rebalance).
    TwoInventoryInstances,
    /// Many concurrent orders for one SKU: exactly its stock is CONFIRMED.
    OneSkuContention,
    /// The disk under the embedded broker and every service's database fills up mid-load
    /// and is freed: refused orders are retried, every accepted one is decided, without a
    /// restart (embedded only; needs root to mount a small file system).
    DiskFull,
}

#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// Scenarios to run (repeatable; default: every one the backend supports).
    #[arg(long = "scenario", value_enum)]
    scenarios: Vec<Scenario>,

    /// Orders per scenario (one-sku-contention sends ten times the hot SKU's stock).
    #[arg(long, default_value_t = 300)]
    pub(crate) orders: usize,

    /// Orders in flight at once.
    #[arg(long, default_value_t = 16)]
    pub(crate) concurrency: usize,

    /// How long a fault lasts before recovery (a killed service stays down this long).
    #[arg(long, default_value_t = 3, hide_short_help = true)]
    pub(crate) fault_seconds: u64,

    /// Where logs and data go (default: a new directory under the system temp dir).
    #[arg(long, hide_short_help = true)]
    work_dir: Option<PathBuf>,

    /// Also write the results as JSON here.
    #[arg(long, hide_short_help = true)]
    json: Option<PathBuf>,

    // The backend's flags, and after them (under their heading) those of the cluster and
    // database it runs against.
    #[command(flatten)]
    backend: BackendArgs,

    /// Replication factor of the topics the services create (3 on a three-node cluster,
    /// whose `min.insync.replicas` 2 then makes every acknowledged record survive one node's loss).
    #[arg(long, default_value_t = 1, hide_short_help = true)]
    pub(crate) topic_replication_factor: i32,

    /// Shell command that stops the external broker (for broker-restart).
    #[arg(long, hide_short_help = true)]
    broker_stop_command: Option<String>,
    /// Shell command that starts it again, returning once it is up.
    #[arg(long, hide_short_help = true)]
    broker_start_command: Option<String>,
    /// Shell command that stops the database (for database-restart).
    #[arg(long, hide_short_help = true)]
    database_stop_command: Option<String>,
    /// Shell command that starts it again, returning once it is up.
    #[arg(long, hide_short_help = true)]
    database_start_command: Option<String>,
}

/// One row of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub scenario: String,
    pub backend: String,
    pub orders: usize,
    pub faults: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub violations: usize,
    pub seconds: f64,
    /// Why the scenario did not run, if it did not.
    pub skipped: Option<String>,
    pub details: Vec<String>,
}

impl Row {
    /// `scenario`'s row on `backend` with nothing counted yet.
    fn empty(scenario: Scenario, backend: &Backend) -> Self {
        Row {
            scenario: name(scenario),
            backend: backend.label().into(),
            orders: 0,
            faults: 0,
            lost: 0,
            duplicated: 0,
            violations: 0,
            seconds: 0.0,
            skipped: None,
            details: vec![],
        }
    }

    fn passed(&self) -> bool {
        self.skipped.is_some() || (self.lost == 0 && self.duplicated == 0 && self.violations == 0)
    }
}

fn all_for(backend: &Backend) -> Vec<Scenario> {
    let mut all = vec![
        Scenario::KillInventory,
        Scenario::KillOrder,
        Scenario::KillNotification,
        Scenario::KillNotificationHeld,
        Scenario::BrokerRestart,
        Scenario::DatabaseRestart,
        Scenario::OneSkuContention,
    ];
    if matches!(backend, Backend::Embedded) {
        all.push(Scenario::DiskFull);
    }
    if matches!(backend, Backend::External { .. }) {
        // Before one-sku-contention, as the variants are declared.
        let at = all
            .iter()
            .position(|s| *s == Scenario::OneSkuContention)
            .unwrap_or(all.len());
        all.insert(at, Scenario::TwoInventoryInstances);
    }
    all
}

fn name(s: Scenario) -> String {
    s.to_possible_value()
        .expect("no skipped variants")
        .get_name()
        .to_string()
}

/// The [`Backend`] the flags choose, with the external one's stop and start commands.
fn backend(args: &ChaosArgs) -> anyhow::Result<Backend> {
    Ok(match args.backend.broker {
        BrokerChoice::Embedded => Backend::Embedded,
        BrokerChoice::External => {
            let (bootstrap, postgres_url) = args.backend.external()?;
            Backend::External {
                bootstrap,
                postgres_url,
                broker_stop: args.broker_stop_command.clone(),
                broker_start: args.broker_start_command.clone(),
                database_stop: args.database_stop_command.clone(),
                database_start: args.database_start_command.clone(),
            }
        }
    })
}

/// `openorder chaos`: runs each scenario, prints its row, and fails if any row did.
pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    let backend = backend(&args)?;
    let scenarios = if args.scenarios.is_empty() {
        all_for(&backend)
    } else {
        args.scenarios.clone()
    };
    let work = args.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("openorder-chaos-{}", uuid::Uuid::new_v4().simple()))
    });
    println!(
        "chaos: {} scenario(s) on {}; logs in {}",
        scenarios.len(),
        backend.label(),
        work.display()
    );
    let mut rows = Vec::new();
    for scenario in scenarios {
        let started = Instant::now();
        let dir = work.join(name(scenario));
        let row = match scenario::run(scenario, &backend, &args, &dir).await {
            Ok(mut row) => {
                row.seconds = started.elapsed().as_secs_f64();
                row
            }
            Err(err) => Row {
                violations: 1,
                seconds: started.elapsed().as_secs_f64(),
                details: vec![format!("harness error: {err:#}")],
                ..Row::empty(scenario, &backend)
            },
        };
        print_row(&row, rows.is_empty());
        rows.push(row);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    let failed = rows.iter().filter(|r| !r.passed()).count();
    for row in rows.iter().filter(|r| !r.passed()) {
        for line in row.details.iter().take(20) {
            eprintln!("{}: {line}", row.scenario);
        }
    }
    let ran = rows.iter().filter(|r| r.skipped.is_none()).count();
    println!("chaos: {} passed, {failed} failed", ran - failed);
    anyhow::ensure!(failed == 0, "{failed} scenario(s) broke an invariant");
    Ok(())
}

fn print_row(row: &Row, header: bool) {
    if header {
        println!(
            "{:<24} {:<26} {:>6} {:>6} {:>5} {:>10} {:>10} {:>7}",
            "SCENARIO",
            "BACKEND",
            "ORDERS",
            "FAULTS",
            "LOST",
            "DUPLICATED",
            "VIOLATIONS",
            "SECONDS"
        );
    }
    match &row.skipped {
        Some(why) => println!("{:<24} {:<26} skipped: {why}", row.scenario, row.backend),
        None => println!(
            "{:<24} {:<26} {:>6} {:>6} {:>5} {:>10} {:>10} {:>7.1}",
            row.scenario,
            row.backend,
            row.orders,
            row.faults,
            row.lost,
            row.duplicated,
            row.violations,
            row.seconds
        ),
    }
}

/// The row of a scenario that did not run, saying why.
fn skipped(scenario: Scenario, backend: &Backend, why: &str) -> Row {
    Row {
        skipped: Some(why.into()),
        ..Row::empty(scenario, backend)
    }
}
