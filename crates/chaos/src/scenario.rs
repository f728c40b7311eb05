//! One scenario, step by step: its cluster and services, the stock and the load, the fault
//! a third of the way into the load, then quiescence and the checks, as one [`Row`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::cluster::{Backend, Cluster};
use tokio::task::JoinHandle;

use crate::load::{self, LoadResult, Mix, Sent};
use crate::{check, disk, notices, skipped, ChaosArgs, Row, Scenario};

/// Runs `scenario` on `backend`, its logs and data under `dir`.
pub(crate) async fn run(
    scenario: Scenario,
    backend: &Backend,
    args: &ChaosArgs,
    dir: &Path,
) -> anyhow::Result<Row> {
    // Declared before the cluster, so that it is unmounted after the cluster stopped.
    let disk = match small_disk(scenario, backend, dir) {
        Ok(disk) => disk,
        Err(why) => return Ok(skipped(scenario, backend, &why)),
    };
    let mut cluster = Cluster::new(backend.clone(), dir, args.topic_replication_factor).await?;
    // The held notices go by webhook, to a receiver here that counts them.
    let receiver = if scenario == Scenario::KillNotificationHeld {
        cluster.env.extend(notices::service_env());
        Some(notices::Receiver::start().await?)
    } else {
        None
    };
    if let Some(why) = unsupported(scenario, backend, &cluster) {
        return Ok(skipped(scenario, backend, why));
    }
    let urls = Urls::start(&mut cluster, scenario).await?;
    let mut stage = Stage {
        scenario,
        receiver,
        cluster,
        disk: disk.as_ref(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        urls,
        fault: Duration::from_secs(args.fault_seconds),
    };
    let plan = Plan::for_scenario(scenario, args);
    for (sku, available) in &plan.initial {
        put_stock(&stage.http, &stage.urls.inventory, sku, *available).await?;
    }

    let progress = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn({
        let (url, progress) = (stage.urls.order.clone(), progress.clone());
        let (mix, count, concurrency) = (plan.mix, plan.count, plan.concurrency);
        async move { load::run(&url, mix, count, concurrency, progress).await }
    });
    let struck = stage.strike(&progress, &load, plan.count).await?;
    let mut result = load.await?;
    result.accepted.extend(struck.held_orders);
    let mut details: Vec<String> = result
        .unexpected
        .iter()
        .map(|u| format!("unexpected answer: {u}"))
        .collect();
    let verdict = stage
        .judge(&plan, &result, &struck.held, &mut details)
        .await?;
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
    stage.cluster.shutdown().await;
    Ok(Row {
        orders: result.accepted.len(),
        faults: struck.faults,
        lost: verdict.lost,
        duplicated: verdict.duplicated,
        violations,
        details,
        ..Row::empty(scenario, backend)
    })
}

/// The small file system of disk-full, mounted on `dir` (None for the other scenarios);
/// why the scenario cannot run, if it cannot.
fn small_disk(
    scenario: Scenario,
    backend: &Backend,
    dir: &Path,
) -> Result<Option<disk::SmallDisk>, String> {
    match (scenario, backend) {
        (Scenario::DiskFull, Backend::Embedded) => match disk::SmallDisk::mount(dir, "256m") {
            Ok(disk) => Ok(Some(disk)),
            Err(err) => Err(format!("{err:#}")),
        },
        (Scenario::DiskFull, Backend::External { .. }) => {
            Err("the harness fills only the disk of its own work directory: embedded only".into())
        }
        _ => Ok(None),
    }
}

/// Why `scenario` cannot run on `backend` and `cluster`, if it cannot.
fn unsupported(scenario: Scenario, backend: &Backend, cluster: &Cluster) -> Option<&'static str> {
    match scenario {
        Scenario::BrokerRestart if !cluster.can_restart_broker() => {
            Some("no --broker-stop-command/--broker-start-command")
        }
        Scenario::DatabaseRestart if !cluster.can_restart_database() => Some(match backend {
            Backend::Embedded => "SQLite lives in the service process: no database to stop",
            Backend::External { .. } => "no --database-stop-command/--database-start-command",
        }),
        Scenario::TwoInventoryInstances if matches!(backend, Backend::Embedded) => {
            Some("the embedded broker gives one group member every partition")
        }
        _ => None,
    }
}

/// Where the scenario's services answer.
struct Urls {
    order: String,
    inventory: String,
    notification: String,
    /// Every service instance's, the second inventory-service's too: all must be quiet.
    all: Vec<String>,
}

impl Urls {
    /// Starts the three services (and a second inventory-service for
    /// two-inventory-instances) on `cluster`.
    async fn start(cluster: &mut Cluster, scenario: Scenario) -> anyhow::Result<Self> {
        let [order, inventory, notification] = cluster.start_services().await?;
        let mut all = vec![order.clone(), inventory.clone(), notification.clone()];
        if scenario == Scenario::TwoInventoryInstances {
            all.push(
                cluster
                    .start_service("inventory-service", "inventory-service-2")
                    .await?,
            );
        }
        Ok(Self {
            order,
            inventory,
            notification,
            all,
        })
    }
}

/// The orders a scenario sends, and the stock they start from.
struct Plan {
    mix: Mix,
    count: usize,
    concurrency: usize,
    /// Each checked SKU's stock before the load.
    initial: BTreeMap<String, i64>,
}

impl Plan {
    /// one-sku-contention: ten orders per unit of one hot SKU, at least 50 in flight; the
    /// others: `--orders` of the mix, every in-stock SKU stocked for all of them.
    fn for_scenario(scenario: Scenario, args: &ChaosArgs) -> Self {
        if scenario == Scenario::OneSkuContention {
            let stock = (args.orders / 10).max(1) as i64;
            return Self {
                mix: Mix::Contention,
                count: stock as usize * 10,
                concurrency: args.concurrency.max(50),
                initial: BTreeMap::from([(load::HOT.to_string(), stock)]),
            };
        }
        let mut initial: BTreeMap<String, i64> = load::IN_STOCK
            .iter()
            .map(|s| (s.to_string(), args.orders as i64))
            .collect();
        initial.insert(load::OUT_OF_STOCK.to_string(), 0);
        Self {
            mix: Mix::Mixed,
            count: args.orders,
            concurrency: args.concurrency,
            initial,
        }
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

/// One scenario's running system and what the harness reaches it with.
struct Stage<'a> {
    scenario: Scenario,
    /// kill-notification-held's webhook receiver.
    receiver: Option<notices::Receiver>,
    cluster: Cluster,
    /// disk-full's file system.
    disk: Option<&'a disk::SmallDisk>,
    http: reqwest::Client,
    urls: Urls,
    /// How long a fault lasts.
    fault: Duration,
}

/// kill-notification-held: what was seen waiting at the kill (or why not), and how many
/// webhooks had arrived by then.
type Held = (Result<notices::Waiting, String>, usize);

/// What the fault left for the checks.
#[derive(Default)]
struct Struck {
    faults: usize,
    /// kill-notification-held: its own orders, and what was seen waiting (or why not) with
    /// how many webhooks had arrived by the kill.
    held_orders: Vec<Sent>,
    held: Option<Held>,
}

impl Stage<'_> {
    /// The fault, a third of the way into the load of `count` orders (none for
    /// one-sku-contention).
    async fn strike(
        &mut self,
        progress: &AtomicUsize,
        load: &JoinHandle<LoadResult>,
        count: usize,
    ) -> anyhow::Result<Struck> {
        let mut struck = Struck::default();
        if self.scenario == Scenario::OneSkuContention {
            return Ok(struck);
        }
        let strike_at = count / 3;
        while progress.load(Ordering::Relaxed) < strike_at && !load.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let fault = self.fault;
        match self.scenario {
            Scenario::KillInventory
            | Scenario::KillOrder
            | Scenario::KillNotification
            | Scenario::TwoInventoryInstances => {
                self.kill_and_restart().await?;
                struck.faults += 1;
            }
            Scenario::KillNotificationHeld => {
                let (held_orders, held) = self.kill_while_held().await?;
                struck.faults += 1;
                struck.held_orders = held_orders;
                struck.held = Some(held);
            }
            Scenario::BrokerRestart => {
                self.cluster.stop_broker().await?;
                struck.faults += 1;
                tokio::time::sleep(fault).await;
                self.cluster.restart_broker().await?;
            }
            Scenario::DatabaseRestart => {
                self.cluster.stop_database().await?;
                struck.faults += 1;
                tokio::time::sleep(fault).await;
                self.cluster.start_database().await?;
            }
            Scenario::DiskFull => {
                // Set only for this scenario, above.
                let disk = self.disk.expect("mounted for disk-full");
                disk.fill()?;
                struck.faults += 1;
                tokio::time::sleep(fault).await;
                disk.free()?;
            }
            Scenario::OneSkuContention => {}
        }
        Ok(struck)
    }

    /// `kill -9` of the scenario's service, restarted after the fault.
    async fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        let instance = match self.scenario {
            Scenario::KillInventory | Scenario::TwoInventoryInstances => "inventory-service",
            Scenario::KillOrder => "order-service",
            _ => "notification-service",
        };
        self.cluster.kill(instance).await?;
        tokio::time::sleep(self.fault).await;
        if self.scenario == Scenario::TwoInventoryInstances {
            // The survivor takes over the partitions; restart the killed one later only so
            // that its status endpoint answers for the checks.
            tokio::time::sleep(self.fault).await;
        }
        self.cluster.restart(instance).await
    }

    /// kill-notification-held: places its orders, waits until their notices wait, then
    /// kills notification-service and restarts it after the fault; the orders, and what
    /// was seen waiting with how many webhooks had arrived by the kill.
    async fn kill_while_held(&mut self) -> anyhow::Result<(Vec<Sent>, Held)> {
        let receiver = self
            .receiver
            .as_ref()
            .expect("started for kill-notification-held");
        let urls = &self.urls;
        let placed =
            notices::place(&self.http, &urls.order, &urls.notification, &receiver.url).await?;
        let waiting = notices::waiting(
            &self.http,
            &urls.notification,
            &placed,
            Duration::from_secs(60),
        )
        .await;
        let early = receiver.received().len();
        self.cluster.kill("notification-service").await?;
        tokio::time::sleep(self.fault).await;
        self.cluster.restart("notification-service").await?;
        Ok((placed.sent, (waiting, early)))
    }

    /// Waits for quiescence, then checks every invariant, the held notices of
    /// kill-notification-held and the CONFIRMED count of one-sku-contention; what the row's
    /// details should say besides goes into `details`.
    async fn judge(
        &self,
        plan: &Plan,
        result: &LoadResult,
        held: &Option<Held>,
        details: &mut Vec<String>,
    ) -> anyhow::Result<check::Verdict> {
        let (http, urls) = (&self.http, &self.urls);
        let kafka = platform::kafka::KafkaArgs::with_defaults(
            &self.cluster.bootstrap,
            &self.cluster.prefix,
        );
        let mut verdict = check::Verdict::default();
        let quiet = check::quiesce(
            http,
            &urls.order,
            &urls.all,
            &result.accepted,
            Duration::from_secs(180),
        )
        .await;
        if let Err(why) = quiet {
            details.push(why);
        }
        let checked = check::invariants(
            http,
            &kafka,
            &urls.order,
            &urls.inventory,
            &urls.notification,
            &result.accepted,
            &plan.initial,
        )
        .await?;
        verdict.add(checked);
        if let (Some((waiting, early)), Some(receiver)) = (held, &self.receiver) {
            match waiting {
                Ok(waiting) => {
                    details.push(waiting.describe());
                    // The windows end at most 2 minutes after the orders; the restart and
                    // the checks above took part of that.
                    let found = notices::check(
                        http,
                        &urls.notification,
                        waiting,
                        receiver,
                        *early,
                        Duration::from_secs(240),
                    )
                    .await;
                    verdict.add(found);
                }
                Err(why) => verdict.violations.push(why.clone()),
            }
        }
        if self.scenario == Scenario::OneSkuContention {
            self.contention(plan, &result.accepted, &mut verdict, details)
                .await?;
        }
        Ok(verdict)
    }

    /// one-sku-contention: exactly the hot SKU's stock of orders CONFIRMED.
    async fn contention(
        &self,
        plan: &Plan,
        accepted: &[Sent],
        verdict: &mut check::Verdict,
        details: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let stock = plan.initial[load::HOT];
        let mut confirmed = 0;
        for sent in accepted {
            let order: serde_json::Value = self
                .http
                .get(format!("{}/api/orders/{}", self.urls.order, sent.order_id))
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
            accepted.len() - confirmed as usize
        ));
        Ok(())
    }
}
