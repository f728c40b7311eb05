//! `openorder chaos`: the fault-injection harness. For each scenario it runs the real
//! services as separate OS processes against a real broker and database, drives a bounded
//! load of orders (in-stock, out-of-stock, multi-item, `FAIL`, cancels), injects the
//! scenario's fault mid-load, waits for quiescence, checks the invariants ([`check`]) and
//! prints one row per scenario: orders, faults injected, lost, duplicated, violations.
//! Zero is the only passing number; the exit status says whether every row passed.
//!
//! Layout: [`harness::cluster`] (processes, broker, databases), [`load`] (the clients),
//! [`check`] (quiescence and invariants), [`disk`] (the file system the disk-full
//! scenario fills), [`notices`] (notices held by quiet hours or gathered into a digest,
//! for `kill-notification-held`).
//!
//! [`run`] is `openorder chaos`: it runs inside the `openorder` binary, whose executable it
//! starts again as each service.

pub mod check;
pub mod disk;
pub mod load;
pub mod notices;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use harness::cluster::{Backend, BrokerChoice, Cluster};
use load::Mix;

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

    #[arg(long, value_enum, default_value = "embedded")]
    broker: BrokerChoice,

    /// External broker's bootstrap servers.
    #[arg(long, env = "OPENORDER_BOOTSTRAP_SERVERS")]
    bootstrap_servers: Option<String>,

    /// PostgreSQL URL with the right to create databases (one fresh database per service and scenario).
    #[arg(long, env = "OPENORDER_CHAOS_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,

    /// Shell command that stops the external broker (for broker-restart).
    #[arg(long)]
    broker_stop_command: Option<String>,
    /// Shell command that starts it again, returning once it is up.
    #[arg(long)]
    broker_start_command: Option<String>,
    /// Shell command that stops the database (for database-restart).
    #[arg(long)]
    database_stop_command: Option<String>,
    /// Shell command that starts it again, returning once it is up.
    #[arg(long)]
    database_start_command: Option<String>,

    /// Replication factor of the topics the services create (3 on a three-node cluster,
    /// whose `min.insync.replicas` 2 then makes every acknowledged record survive one node's loss).
    #[arg(long, default_value_t = 1)]
    topic_replication_factor: i32,

    /// Orders per scenario (one-sku-contention sends ten times the hot SKU's stock).
    #[arg(long, default_value_t = 300)]
    orders: usize,

    /// Orders in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,

    /// How long a fault lasts before recovery (a killed service stays down this long).
    #[arg(long, default_value_t = 3)]
    fault_seconds: u64,

    /// Where logs and data go (default: a new directory under the system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,

    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
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

pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    let backend = match args.broker {
        BrokerChoice::Embedded => Backend::Embedded,
        BrokerChoice::External => Backend::External {
            bootstrap: args
                .bootstrap_servers
                .clone()
                .ok_or_else(|| anyhow::anyhow!("--broker external needs --bootstrap-servers"))?,
            postgres_url: args
                .postgres_url
                .clone()
                .ok_or_else(|| anyhow::anyhow!("--broker external needs --postgres-url"))?,
            broker_stop: args.broker_stop_command.clone(),
            broker_start: args.broker_start_command.clone(),
            database_stop: args.database_stop_command.clone(),
            database_start: args.database_start_command.clone(),
        },
    };
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
        let row = match run_scenario(scenario, &backend, &args, &dir).await {
            Ok(mut row) => {
                row.seconds = started.elapsed().as_secs_f64();
                row
            }
            Err(err) => Row {
                scenario: name(scenario),
                backend: backend.label().into(),
                orders: 0,
                faults: 0,
                lost: 0,
                duplicated: 0,
                violations: 1,
                seconds: started.elapsed().as_secs_f64(),
                skipped: None,
                details: vec![format!("harness error: {err:#}")],
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

fn skipped(scenario: Scenario, backend: &Backend, why: &str) -> Row {
    Row {
        scenario: name(scenario),
        backend: backend.label().into(),
        orders: 0,
        faults: 0,
        lost: 0,
        duplicated: 0,
        violations: 0,
        seconds: 0.0,
        skipped: Some(why.into()),
        details: vec![],
    }
}

async fn put_stock(
    http: &reqwest::Client,
    inventory_url: &str,
    sku: &str,
    available: i64,
) -> anyhow::Result<()> {
    let r = http
        .put(format!("{inventory_url}/api/inventory/{sku}"))
        .json(&serde_json::json!({"available": available}))
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "PUT stock of {sku} answered {}",
        r.status()
    );
    Ok(())
}

async fn run_scenario(
    scenario: Scenario,
    backend: &Backend,
    args: &ChaosArgs,
    dir: &std::path::Path,
) -> anyhow::Result<Row> {
    // Declared before the cluster, so that it is unmounted after the cluster stopped.
    let disk = match (scenario, backend) {
        (Scenario::DiskFull, Backend::Embedded) => match disk::SmallDisk::mount(dir, "256m") {
            Ok(disk) => Some(disk),
            Err(err) => return Ok(skipped(scenario, backend, &format!("{err:#}"))),
        },
        (Scenario::DiskFull, Backend::External { .. }) => {
            return Ok(skipped(
                scenario,
                backend,
                "the harness fills only the disk of its own work directory: embedded only",
            ))
        }
        _ => None,
    };
    let mut cluster = Cluster::new(backend.clone(), dir, args.topic_replication_factor).await?;
    // The held notices go by webhook, to a receiver here that counts them.
    let receiver = if scenario == Scenario::KillNotificationHeld {
        cluster.env.extend(notices::service_env());
        Some(notices::Receiver::start().await?)
    } else {
        None
    };
    match scenario {
        Scenario::BrokerRestart if !cluster.can_restart_broker() => {
            return Ok(skipped(
                scenario,
                backend,
                "no --broker-stop-command/--broker-start-command",
            ))
        }
        Scenario::DatabaseRestart if !cluster.can_restart_database() => {
            let why = match backend {
                Backend::Embedded => "SQLite lives in the service process: no database to stop",
                Backend::External { .. } => "no --database-stop-command/--database-start-command",
            };
            return Ok(skipped(scenario, backend, why));
        }
        Scenario::TwoInventoryInstances if matches!(backend, Backend::Embedded) => {
            return Ok(skipped(
                scenario,
                backend,
                "the embedded broker gives one group member every partition",
            ))
        }
        _ => {}
    }
    let order_url = cluster
        .start_service("order-service", "order-service")
        .await?;
    let inventory_url = cluster
        .start_service("inventory-service", "inventory-service")
        .await?;
    let notification_url = cluster
        .start_service("notification-service", "notification-service")
        .await?;
    let mut service_urls = vec![
        order_url.clone(),
        inventory_url.clone(),
        notification_url.clone(),
    ];
    if scenario == Scenario::TwoInventoryInstances {
        service_urls.push(
            cluster
                .start_service("inventory-service", "inventory-service-2")
                .await?,
        );
    }

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let (mix, count, initial) = if scenario == Scenario::OneSkuContention {
        let stock = (args.orders / 10).max(1) as i64;
        (
            Mix::Contention,
            stock as usize * 10,
            BTreeMap::from([(load::HOT.to_string(), stock)]),
        )
    } else {
        let mut initial: BTreeMap<String, i64> = load::IN_STOCK
            .iter()
            .map(|s| (s.to_string(), args.orders as i64))
            .collect();
        initial.insert(load::OUT_OF_STOCK.to_string(), 0);
        (Mix::Mixed, args.orders, initial)
    };
    for (sku, available) in &initial {
        put_stock(&http, &inventory_url, sku, *available).await?;
    }

    let progress = Arc::new(AtomicUsize::new(0));
    let concurrency = if mix == Mix::Contention {
        args.concurrency.max(50)
    } else {
        args.concurrency
    };
    let load = tokio::spawn({
        let (url, progress) = (order_url.clone(), progress.clone());
        async move { load::run(&url, mix, count, concurrency, progress).await }
    });

    // The fault, a third of the way into the load.
    let mut faults = 0;
    let fault = Duration::from_secs(args.fault_seconds);
    // kill-notification-held: its own orders, and what was seen waiting (or why not) with
    // how many webhooks had arrived by the kill.
    let mut held_orders: Vec<load::Sent> = Vec::new();
    let mut held: Option<(Result<notices::Waiting, String>, usize)> = None;
    let strike_at = count / 3;
    if scenario != Scenario::OneSkuContention {
        while progress.load(Ordering::Relaxed) < strike_at && !load.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match scenario {
            Scenario::KillInventory
            | Scenario::KillOrder
            | Scenario::KillNotification
            | Scenario::TwoInventoryInstances => {
                let instance = match scenario {
                    Scenario::KillInventory | Scenario::TwoInventoryInstances => {
                        "inventory-service"
                    }
                    Scenario::KillOrder => "order-service",
                    _ => "notification-service",
                };
                cluster.kill(instance).await?;
                faults += 1;
                tokio::time::sleep(fault).await;
                if scenario != Scenario::TwoInventoryInstances {
                    cluster.restart(instance).await?;
                } else {
                    // The survivor takes over the partitions; restart the killed one later
                    // only so that its status endpoint answers for the checks.
                    tokio::time::sleep(fault).await;
                    cluster.restart(instance).await?;
                }
            }
            Scenario::KillNotificationHeld => {
                let receiver = receiver
                    .as_ref()
                    .expect("started for kill-notification-held");
                let placed =
                    notices::place(&http, &order_url, &notification_url, &receiver.url).await?;
                held_orders.clone_from(&placed.sent);
                let waiting =
                    notices::waiting(&http, &notification_url, &placed, Duration::from_secs(60))
                        .await;
                let early = receiver.received().len();
                cluster.kill("notification-service").await?;
                faults += 1;
                tokio::time::sleep(fault).await;
                cluster.restart("notification-service").await?;
                held = Some((waiting, early));
            }
            Scenario::BrokerRestart => {
                cluster.stop_broker().await?;
                faults += 1;
                tokio::time::sleep(fault).await;
                cluster.restart_broker().await?;
            }
            Scenario::DatabaseRestart => {
                cluster.stop_database().await?;
                faults += 1;
                tokio::time::sleep(fault).await;
                cluster.start_database().await?;
            }
            Scenario::DiskFull => {
                // Set only for this scenario, above.
                let disk = disk.as_ref().expect("mounted for disk-full");
                disk.fill()?;
                faults += 1;
                tokio::time::sleep(fault).await;
                disk.free()?;
            }
            Scenario::OneSkuContention => {}
        }
    }
    let mut result = load.await?;
    result.accepted.extend(held_orders);
    let mut details: Vec<String> = result
        .unexpected
        .iter()
        .map(|u| format!("unexpected answer: {u}"))
        .collect();

    let kafka = platform::kafka::KafkaArgs::with_defaults(&cluster.bootstrap, &cluster.prefix);
    let mut verdict = check::Verdict::default();
    match check::quiesce(
        &http,
        &order_url,
        &service_urls,
        &result.accepted,
        Duration::from_secs(180),
    )
    .await
    {
        Ok(()) => {}
        Err(why) => details.push(why),
    }
    let checked = check::invariants(
        &http,
        &kafka,
        &order_url,
        &inventory_url,
        &notification_url,
        &result.accepted,
        &initial,
    )
    .await?;
    verdict.lost += checked.lost;
    verdict.duplicated += checked.duplicated;
    verdict.violations.extend(checked.violations);
    if let (Some((waiting, early)), Some(receiver)) = (&held, &receiver) {
        match waiting {
            Ok(waiting) => {
                details.push(waiting.describe());
                // The windows end at most 2 minutes after the orders; the restart and the
                // checks above took part of that.
                let found = notices::check(
                    &http,
                    &notification_url,
                    waiting,
                    receiver,
                    *early,
                    Duration::from_secs(240),
                )
                .await;
                verdict.lost += found.lost;
                verdict.duplicated += found.duplicated;
                verdict.violations.extend(found.violations);
            }
            Err(why) => verdict.violations.push(why.clone()),
        }
    }
    if scenario == Scenario::OneSkuContention {
        let stock = initial[load::HOT];
        let mut confirmed = 0;
        for sent in &result.accepted {
            let order: serde_json::Value = http
                .get(format!("{order_url}/api/orders/{}", sent.order_id))
                .send()
                .await?
                .json()
                .await?;
            if order["status"] == "CONFIRMED" {
                confirmed += 1;
            }
        }
        if confirmed != stock {
            verdict
                .violations
                .push(format!("{confirmed} CONFIRMED for a stock of {stock}"));
        }
        details.push(format!(
            "{confirmed} CONFIRMED, {} REJECTED",
            result.accepted.len() - confirmed as usize
        ));
    }
    let cancels = result
        .accepted
        .iter()
        .filter(|s| s.cancel_requested)
        .count();
    details.push(format!("{cancels} cancels requested"));
    if result.unacknowledged > 0 {
        details.push(format!(
            "{} orders never acknowledged (not counted as accepted)",
            result.unacknowledged
        ));
    }
    let violations = verdict.violations.len() + result.unexpected.len();
    details.extend(verdict.violations);
    cluster.shutdown().await;
    Ok(Row {
        scenario: name(scenario),
        backend: backend.label().into(),
        orders: result.accepted.len(),
        faults,
        lost: verdict.lost,
        duplicated: verdict.duplicated,
        violations,
        seconds: 0.0,
        skipped: None,
        details,
    })
}
