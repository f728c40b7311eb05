//! `openorder bench`: end-to-end throughput, latency and memory, beside the limits they are
//! compared with, measured in one run on one machine.
//!
//! It starts the system under test itself (`openorder up` on the embedded defaults, or the
//! three services as processes against an external Kafka and PostgreSQL), warms it up,
//! drives it open loop over HTTP ([`driver`]), observes each order's decision on the result
//! topics, samples the processes' memory and CPU ([`procstat`]), then measures the broker's
//! raw rate and the HTTP ceiling ([`limits`]), and writes `report.json` and `chart.svg`
//! ([`report`]) and a summary table. With `--soak`, one long run with every retention
//! window shortened, sampled each `--sample-every` ([`soak`]): memory, disk, throughput.
//!
//! [`run`] is `openorder bench`: it runs inside the `openorder` binary, whose executable it
//! starts again as `up` or as each service ([`harness::up`], [`harness::cluster`]).

pub mod console;
pub mod driver;
pub mod limits;
pub mod procstat;
pub mod report;
pub mod soak;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use harness::cluster::{Backend, BrokerChoice, Cluster};
use harness::up::{up_command, UpPorts, UP_TOKEN_FILE};

/// The SKUs bench orders use (stocked generously before the run).
pub const SKUS: [&str; 8] = [
    "BENCH-0", "BENCH-1", "BENCH-2", "BENCH-3", "BENCH-4", "BENCH-5", "BENCH-6", "BENCH-7",
];

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "embedded")]
    broker: BrokerChoice,

    /// External broker's bootstrap servers.
    #[arg(long, env = "OPENORDER_BOOTSTRAP_SERVERS")]
    bootstrap_servers: Option<String>,

    /// PostgreSQL URL with the right to create databases.
    #[arg(long, env = "OPENORDER_CHAOS_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,

    /// Offered rate of the open-loop run, orders per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,

    /// Length of the open-loop run, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,

    /// Instead of one rate: raise the rate step by step (×1.5) and report the highest one
    /// sustained for a whole step: completions ≥ 95 % of the offered rate, nothing lost, and
    /// the backlog drained within 2 s of the step's end.
    #[arg(long)]
    saturate: bool,

    /// Length of each saturation step, seconds.
    #[arg(long, default_value_t = 5.0)]
    step_seconds: f64,

    /// Highest rate a saturation search tries.
    #[arg(long, default_value_t = 20_000.0)]
    max_rate: f64,

    /// Raw records sent through the broker for its limit.
    #[arg(long, default_value_t = 20_000)]
    raw_records: usize,

    /// Also read `order.created` to split the end-to-end time into hops (relay produced
    /// `order.created` / inventory produced the decision / decision seen). Off by default: the
    /// extra consumer makes the broker serve one more read per order.
    #[arg(long)]
    hops: bool,

    /// Also post an order with an item of the `FAIL` SKU every this many seconds during the
    /// open-loop run (not counted in the figures): each is retried and dead-lettered while
    /// the measured orders go on, so a run with it beside one without shows what a failing
    /// record costs the others. 0: none.
    #[arg(long, default_value_t = 0.0)]
    fail_every: f64,

    /// How the clients of the open-loop run learn each order's outcome: `fire` (take the
    /// 202 and go; the decision is seen on the result topics only), `prefer-wait` (POST with
    /// `Prefer: wait=10`: the answer comes with the decision), `poll` (after the 202,
    /// `GET /api/orders/{id}` every `--poll-every-ms` until it is decided). The report then
    /// says when each client knew, and how many requests that took.
    #[arg(long, value_enum, default_value = "fire")]
    client: driver::Client,

    /// With `--client poll`: milliseconds between a client's reads of its order.
    #[arg(long, default_value_t = 100)]
    poll_every_ms: u64,

    /// A soak instead: `--rate` for `--duration` seconds with every retention window
    /// (topics, dead letters, the embedded broker, dedupe marks, idempotency keys,
    /// notifications, orders) set to `--soak-window`, sampled every `--sample-every`
    /// seconds: RSS and CPU of every process, each data file's size, throughput, latency.
    #[arg(long)]
    soak: bool,

    /// Every retention window of a soak (`3m`, `90s`).
    #[arg(long, default_value = "3m", value_parser = platform::retention::parse_age)]
    soak_window: Duration,

    /// Seconds between a soak's samples.
    #[arg(long, default_value_t = 60.0)]
    sample_every: f64,

    /// Tail `order.created` in the console through the run, as a browser does (embedded
    /// only: the console runs in `up`); a run with it beside one without shows its cost.
    #[arg(long)]
    tail: bool,

    /// Instead of a run: fill a topic with this many records and time the console's pages
    /// of 100 on it (embedded only).
    #[arg(long, default_value_t = 0)]
    console_records: usize,

    /// Instead of a run: open this many live tails of `order.created` through the console
    /// (each its own session, as that many browsers) while orders flow at 100/s for 20 s,
    /// then close them; prints `up`'s memory and threads before, with them open and after,
    /// and how many the console admitted (embedded only).
    #[arg(long, default_value_t = 0)]
    console_tails: usize,

    /// Where report.json and chart.svg go.
    #[arg(long, default_value = "bench-report")]
    out: PathBuf,
}

/// The system under test and how to reach it.
struct System {
    order_url: String,
    inventory_url: String,
    notification_url: String,
    /// The embedded system's data directory (None: the services' data is in PostgreSQL).
    data_dir: Option<PathBuf>,
    /// The operator token `up` made (None: the services run without operator tokens).
    operator_token: Option<String>,
    /// The console `up` serves, when the run needs one.
    console_url: Option<String>,
    kafka: platform::kafka::KafkaArgs,
    processes: Vec<(String, u32)>,
    up: Option<tokio::process::Child>,
    cluster: Option<Cluster>,
}

async fn start_system(
    args: &BenchArgs,
    dir: &std::path::Path,
    http: &reqwest::Client,
) -> anyhow::Result<System> {
    let env = if args.soak {
        soak::environment(args.soak_window)
    } else {
        Vec::new()
    };
    match args.broker {
        BrokerChoice::Embedded => {
            let console = args.tail || args.console_records > 0 || args.console_tails > 0;
            for attempt in 1.. {
                if let Some(system) = start_up(dir, http, attempt, &env, console).await? {
                    return Ok(system);
                }
            }
            unreachable!("start_up gives up after its last attempt")
        }
        BrokerChoice::External => {
            let backend = Backend::External {
                bootstrap: args
                    .bootstrap_servers
                    .clone()
                    .context("--broker external needs --bootstrap-servers")?,
                postgres_url: args
                    .postgres_url
                    .clone()
                    .context("--broker external needs --postgres-url")?,
                broker_stop: None,
                broker_start: None,
                database_stop: None,
                database_start: None,
            };
            let mut cluster = Cluster::new(backend, dir, 1).await?;
            cluster.env = env;
            let order_url = cluster
                .start_service("order-service", "order-service")
                .await?;
            let inventory_url = cluster
                .start_service("inventory-service", "inventory-service")
                .await?;
            let notification_url = cluster
                .start_service("notification-service", "notification-service")
                .await?;
            Ok(System {
                order_url,
                inventory_url,
                notification_url,
                data_dir: None,
                operator_token: None,
                console_url: None,
                kafka: platform::kafka::KafkaArgs::with_defaults(
                    &cluster.bootstrap,
                    &cluster.prefix,
                ),
                processes: cluster.pids(),
                up: None,
                cluster: Some(cluster),
            })
        }
    }
}

/// Most tries at starting `openorder up` (see [`start_up`]).
const UP_ATTEMPTS: u32 = 3;

/// Starts `openorder up` on free ports and waits until its three services are ready; `None`
/// if it exited at start and another attempt is left. The ports are found free and released
/// before `up` binds them, so another socket can take one in between (seen: the broker's
/// port, "Address already in use"); `up` then exits at once, and a new attempt picks new
/// ports.
async fn start_up(
    dir: &std::path::Path,
    http: &reqwest::Client,
    attempt: u32,
    env: &[(String, String)],
    console: bool,
) -> anyhow::Result<Option<System>> {
    let mut ports = UpPorts::free()?;
    if !console {
        ports.console = 0;
    }
    let data = dir.join("data");
    let _ = std::fs::remove_dir_all(&data);
    let log_path = dir.join("up.log");
    let log = std::fs::File::create(&log_path)?;
    let started = std::time::Instant::now();
    let mut child =
        tokio::process::Command::from(up_command(&std::env::current_exe()?, &data, &ports))
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("Failed to start openorder up")?;
    let order_url = format!("http://127.0.0.1:{}", ports.order);
    let inventory_url = format!("http://127.0.0.1:{}", ports.inventory);
    let notification_url = format!("http://127.0.0.1:{}", ports.notification);
    let ready = async {
        for url in [&order_url, &inventory_url, &notification_url] {
            harness::wait_ready(http, url, Duration::from_secs(120)).await?;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        ready = ready => ready?,
        status = child.wait() => {
            let status = status.map_or_else(|err| err.to_string(), |status| status.to_string());
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let first_error = log
                .lines()
                .find(|line| line.starts_with("Error:") || line.starts_with("error:"))
                .unwrap_or("no error line")
                .to_string();
            anyhow::ensure!(
                attempt < UP_ATTEMPTS,
                "`openorder up` exited at start {attempt} times, the last with {status}: {first_error} (log: {})",
                log_path.display()
            );
            println!("bench: `openorder up` exited at start ({first_error}); trying again on other ports");
            return Ok(None);
        }
    }
    println!(
        "bench: `openorder up` ready in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let pid = child.id().context("up has a pid")?;
    let mut processes = vec![("openorder up".to_string(), pid)];
    for c in procstat::children(pid) {
        processes.push(("openorder-broker (child of up)".to_string(), c));
    }
    let token_file = data.join(UP_TOKEN_FILE);
    let token = tokio::fs::read_to_string(&token_file)
        .await
        .with_context(|| {
            format!(
                "`openorder up` left no operator token in {}",
                token_file.display()
            )
        })?;
    Ok(Some(System {
        order_url,
        inventory_url,
        notification_url,
        data_dir: Some(data),
        operator_token: Some(token.trim().to_string()),
        console_url: console.then(|| format!("http://127.0.0.1:{}", ports.console)),
        kafka: platform::kafka::KafkaArgs::with_defaults(
            &format!("127.0.0.1:{}", ports.broker),
            "",
        ),
        processes,
        up: Some(child),
        cluster: None,
    }))
}

/// Everything the run measured.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub backend: String,
    pub machine: String,
    pub runs: Vec<report::RunResult>,
    /// Highest rate sustained (saturation mode).
    pub sustained_rate: Option<f64>,
    pub processes: Vec<procstat::ProcessUse>,
    pub broker_limit: limits::BrokerLimit,
    pub http_limit: limits::HttpLimit,
    /// completed orders/s of the main run ÷ broker-limited orders/s.
    pub completed_vs_broker: f64,
    /// accepted orders/s of the main run ÷ the no-op HTTP ceiling.
    pub accepted_vs_http: f64,
    /// The soak's samples (`--soak`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak: Option<soak::Soak>,
    /// What the console's tail received (`--tail`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tailed: Option<console::Tailed>,
    /// The console's pages timed (`--console-records`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_pages: Option<Vec<console::PageTiming>>,
    /// How durable the PostgreSQL server under test was (`fsync`, `synchronous_commit`,
    /// `full_page_writes`), on `--broker external`: figures on a server that does not sync
    /// its commits are not the deployed path's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    /// Many live tails at once (`--console-tails`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_tails: Option<console::TailsLoad>,
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!("{cpus} cores, {model}")
}

async fn stock(http: &reqwest::Client, system: &System) -> anyhow::Result<()> {
    for sku in SKUS {
        let mut put = http.put(format!("{}/api/inventory/{sku}", system.inventory_url));
        if let Some(token) = &system.operator_token {
            put = put.bearer_auth(token);
        }
        let r = put
            .json(&serde_json::json!({"available": 1_000_000_000}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "stocking {sku}: {}", r.status());
    }
    Ok(())
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let dir =
        std::env::temp_dir().join(format!("openorder-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let kept = || format!("the bench's files are kept in {}", dir.display());
    let mut system = start_system(&args, &dir, &http).await.with_context(kept)?;
    let result = measure(&args, &system, &http).await;
    if let Some(mut up) = system.up.take() {
        if let Some(pid) = up.id() {
            let _ = tokio::process::Command::new("kill")
                .arg(pid.to_string())
                .status()
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), up.wait()).await;
    }
    if let Some(cluster) = system.cluster.take() {
        cluster.shutdown().await;
    }
    let report = result.with_context(kept)?;
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(
        args.out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    if let Some(main) = report.runs.last() {
        let title = format!(
            "openorder bench, {}: {:.0} orders/s offered",
            report.backend, main.offered_rate
        );
        std::fs::write(args.out.join("chart.svg"), report::chart(main, &title))?;
    }
    if let Some(soaked) = &report.soak {
        let title = format!(
            "openorder bench --soak, {}: {:.0} orders/s, retention windows {} s",
            report.backend, args.rate, soaked.window_seconds
        );
        std::fs::write(args.out.join("soak.svg"), soak::chart(soaked, &title))?;
        println!(
            "soak: rows pruned {}, bytes on disk per order retained {}",
            soaked.rows_pruned,
            soaked
                .bytes_per_order_retained
                .map_or_else(|| "-".into(), |b| format!("{b:.0}"))
        );
        for (topic, partition, low, high) in &soaked.watermarks {
            println!("soak: {topic}[{partition}] low {low} high {high}");
        }
    }
    print_summary(&report);
    println!("bench: report in {}", args.out.display());
    // The system's databases, up to a gigabyte after a minute at 5,000/s.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn measure(
    args: &BenchArgs,
    system: &System,
    http: &reqwest::Client,
) -> anyhow::Result<Report> {
    stock(http, system).await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let decisions = driver::observe(&system.kafka, args.hops, stop.clone())?;
    // Warm-up: connections, consumer fetch sessions, database caches.
    let warm = driver::open_loop(http, &system.order_url, 200.0, 200).await?;
    driver::wait_decided(&warm, &decisions, Duration::from_secs(60)).await;

    let postgres = match &args.postgres_url {
        Some(url) if args.broker == BrokerChoice::External => {
            let durability = postgres_durability(url).await;
            println!("bench: PostgreSQL {durability}");
            Some(durability)
        }
        _ => None,
    };
    let span = procstat::Span::start(&system.processes);
    let mut runs = Vec::new();
    let mut sustained_rate = None;
    let mut soaked = None;
    let mut console_pages = None;
    let mut tailed = None;
    let mut console_tails = None;
    let signed_in = match (&system.console_url, &system.operator_token) {
        (Some(url), Some(token)) => Some((url.clone(), console::sign_in(url, token).await?)),
        _ => None,
    };
    if args.console_tails > 0 {
        let (url, token) = match (&system.console_url, &system.operator_token) {
            (Some(url), Some(token)) => (url.clone(), token.clone()),
            _ => anyhow::bail!("--console-tails needs the embedded broker"),
        };
        let up = system
            .processes
            .first()
            .map(|(_, pid)| *pid)
            .context("up's process")?;
        let topic = system.kafka.topics().name(contracts::topics::ORDER_CREATED);
        let flow = driver::open_loop(http, &system.order_url, 100.0, 2000);
        let tails = console::tails_load(&url, &token, &topic, args.console_tails, up);
        let (flow, tails) = tokio::join!(flow, tails);
        flow?;
        let tails = tails?;
        println!(
            "bench: {} live tails asked, {} admitted, {} refused; up RSS {} → {} → {} KiB, threads {} → {} → {} (before, open, 15 s after closing)",
            tails.asked, tails.admitted, tails.refused,
            tails.rss_kib[0], tails.rss_kib[1], tails.rss_kib[2],
            tails.threads[0], tails.threads[1], tails.threads[2]
        );
        console_tails = Some(tails);
    } else if args.console_records > 0 {
        let (url, cookie) = signed_in
            .clone()
            .context("--console-records needs the embedded broker")?;
        console_pages =
            Some(console::pages(http, &system.kafka, &url, &cookie, args.console_records).await?);
    } else if args.soak {
        let service_urls = [
            system.order_url.clone(),
            system.inventory_url.clone(),
            system.notification_url.clone(),
        ];
        let target = soak::Target {
            http,
            order_url: &system.order_url,
            service_urls: &service_urls,
            kafka: &system.kafka,
            processes: &system.processes,
            data_dir: system.data_dir.as_deref(),
            databases: match (&system.cluster, &args.postgres_url) {
                (Some(cluster), Some(url)) => Some((
                    url.as_str(),
                    ["order-service", "inventory-service", "notification-service"]
                        .map(|s| cluster.database_name(s))
                        .to_vec(),
                )),
                _ => None,
            },
        };
        soaked = Some(
            soak::run(
                &target,
                &decisions,
                args.rate,
                Duration::from_secs_f64(args.duration),
                Duration::from_secs_f64(args.sample_every.max(1.0)),
                args.soak_window,
            )
            .await?,
        );
    } else if args.saturate {
        let mut rate = 250.0_f64;
        while rate <= args.max_rate {
            let count = (rate * args.step_seconds) as usize;
            let samples = driver::open_loop(http, &system.order_url, rate, count).await?;
            let last_scheduled = samples.iter().map(|s| s.scheduled).max();
            driver::wait_decided(&samples, &decisions, Duration::from_secs(2)).await;
            let run = report::summarize(rate, &samples, &decisions);
            let drained = last_scheduled.is_some_and(|t| {
                samples
                    .iter()
                    .filter_map(|s| s.order_id.and_then(|id| decisions.get(id)))
                    .all(|at| at.saturating_duration_since(t) <= Duration::from_secs(2))
            });
            // Sustained: nothing lost or refused, completions kept pace with the offered rate
            // (≥ 95 %), and the step's backlog drained within 2 s of its end.
            let ok = run.errors == 0
                && run.lost == 0
                && drained
                && run.completed_per_second >= 0.95 * rate;
            println!(
                "bench: step {rate:>8.0}/s: accepted {:>8.0}/s, completed {:>8.0}/s, e2e p99 {:>8.1} ms {}",
                run.accepted_per_second,
                run.completed_per_second,
                run.end_to_end.p99_ms,
                if ok { "sustained" } else { "NOT sustained" }
            );
            runs.push(run);
            if !ok {
                // Let the backlog drain before measuring anything else.
                driver::wait_decided(&samples, &decisions, Duration::from_secs(120)).await;
                break;
            }
            sustained_rate = Some(rate);
            rate *= 1.5;
        }
    } else {
        let count = (args.rate * args.duration) as usize;
        let failing = (args.fail_every > 0.0).then(|| {
            tokio::spawn(driver::post_failing_orders(
                http.clone(),
                system.order_url.clone(),
                Duration::from_secs_f64(args.fail_every),
                Duration::from_secs_f64(args.duration),
            ))
        });
        let tail_stop = tokio_util::sync::CancellationToken::new();
        let tailing = match (&signed_in, args.tail) {
            (Some((url, cookie)), true) => Some(tokio::spawn(console::tail(
                url.clone(),
                cookie.clone(),
                system.kafka.topics().order_created(),
                tail_stop.clone(),
            ))),
            (None, true) => anyhow::bail!("--tail needs the embedded broker"),
            _ => None,
        };
        let client = match args.client {
            driver::Client::Poll => {
                driver::ClientMode::Poll(Duration::from_millis(args.poll_every_ms.max(1)))
            }
            driver::Client::PreferWait => driver::ClientMode::PreferWait,
            driver::Client::Fire => driver::ClientMode::Fire,
        };
        let samples =
            driver::open_loop_as(http, &system.order_url, args.rate, count, client).await?;
        if let Some(line) = report::client_line(args.rate, &samples, client) {
            println!("{line}");
        }
        if let Some(tailing) = tailing {
            // The last records of the run reach the tail within a half-second or so.
            tokio::time::sleep(Duration::from_secs(2)).await;
            tail_stop.cancel();
            let got = tailing.await??;
            println!(
                "bench: the console's tail received {} records in {} events ({} skipped past its cap)",
                got.records, got.events, got.skipped
            );
            tailed = Some(got);
        }
        if let Some(failing) = failing {
            let posted = failing.await.unwrap_or(0);
            println!("bench: {posted} orders with the FAIL SKU posted during the run");
        }
        driver::wait_decided(&samples, &decisions, Duration::from_secs(120)).await;
        runs.push(report::summarize(args.rate, &samples, &decisions));
    }
    let processes = span.finish();
    stop.cancel();

    let http_limit = limits::http(http, 64, 3.0).await?;
    let sample_event = serde_json::to_vec(&contracts::OrderCreated {
        event_id: contracts::new_event_id(),
        order_id: 123_456,
        user_id: 42,
        items: vec![contracts::LineItem {
            sku: SKUS[0].into(),
            qty: 1,
        }],
        created_at: chrono::Utc::now(),
        contact: None,
    })?;
    let broker_limit = limits::broker(&system.kafka, args.raw_records, &sample_event).await?;
    let best = runs
        .iter()
        .filter(|r| r.lost == 0 && r.errors == 0)
        .max_by(|a, b| a.completed_per_second.total_cmp(&b.completed_per_second))
        .or(runs.last());
    let (completed, accepted) = best.map_or((0.0, 0.0), |b| {
        (b.completed_per_second, b.accepted_per_second)
    });
    Ok(Report {
        backend: match args.broker {
            BrokerChoice::Embedded => "embedded (openorder up: Tansu + SQLite)".into(),
            BrokerChoice::External => "Kafka + PostgreSQL (three service processes)".into(),
        },
        machine: machine(),
        completed_vs_broker: completed / broker_limit.orders_per_second,
        accepted_vs_http: accepted / http_limit.requests_per_second,
        soak: soaked,
        tailed,
        console_pages,
        console_tails,
        postgres,
        runs,
        sustained_rate,
        processes,
        broker_limit,
        http_limit,
    })
}

fn print_summary(r: &Report) {
    println!("\n{} on {}", r.backend, r.machine);
    println!(
        "{:>9} {:>7} {:>7} {:>7} {:>5} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9}",
        "OFFERED/s",
        "SENT",
        "ERRORS",
        "REFUSED",
        "LOST",
        "ACCEPTED/s",
        "COMPLETED/s",
        "POST p50",
        "POST p99",
        "E2E p50",
        "E2E p99"
    );
    for run in &r.runs {
        println!(
            "{:>9.0} {:>7} {:>7} {:>7} {:>5} {:>10.0} {:>11.0} {:>7.2}ms {:>7.2}ms {:>7.1}ms {:>7.1}ms",
            run.offered_rate,
            run.sent,
            run.errors,
            run.refused,
            run.lost,
            run.accepted_per_second,
            run.completed_per_second,
            run.post.p50_ms,
            run.post.p99_ms,
            run.end_to_end.p50_ms,
            run.end_to_end.p99_ms
        );
    }
    for (run, hops) in r
        .runs
        .iter()
        .filter_map(|run| Some((run, run.hops.as_ref()?)))
    {
        println!(
            "{:>9.0} by hop, p50 / p99: POST → order.created produced {:.1} / {:.1} ms; → decision produced {:.1} / {:.1} ms; → decision seen {:.1} / {:.1} ms",
            run.offered_rate,
            hops.to_created_produced.p50_ms,
            hops.to_created_produced.p99_ms,
            hops.to_decision_produced.p50_ms,
            hops.to_decision_produced.p99_ms,
            hops.to_decision_seen.p50_ms,
            hops.to_decision_seen.p99_ms,
        );
    }
    for run in &r.runs {
        println!(
            "{:>9.0} client send lag (scheduled → sent, included in POST): p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            run.offered_rate, run.send_lag.p50_ms, run.send_lag.p99_ms, run.send_lag.max_ms
        );
    }
    if let Some(rate) = r.sustained_rate {
        println!("highest rate sustained: {rate:.0} orders/s");
    }
    for p in &r.processes {
        println!(
            "process {:<32} peak RSS {:>7.1} MiB, CPU {:>6.1} s ({:>5.1} % of a core)",
            p.name, p.peak_rss_mib, p.cpu_seconds, p.cpu_percent
        );
    }
    println!(
        "broker raw: {:.0} records/s produced, {:.0} consumed ({} B records) → broker-limited {:.0} orders/s",
        r.broker_limit.produced_per_second,
        r.broker_limit.consumed_per_second,
        r.broker_limit.record_bytes,
        r.broker_limit.orders_per_second
    );
    println!(
        "HTTP no-op ceiling: {:.0} requests/s",
        r.http_limit.requests_per_second
    );
    println!(
        "ratios: completed ÷ broker-limited = {:.3}; accepted ÷ HTTP ceiling = {:.3}",
        r.completed_vs_broker, r.accepted_vs_http
    );
}

/// `fsync=…, synchronous_commit=…, full_page_writes=…` of the server at `url` (or why it
/// could not be read).
async fn postgres_durability(url: &str) -> String {
    sqlx::any::install_default_drivers();
    let read = async {
        let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await?;
        let row = sqlx::query(
            "SELECT current_setting('fsync') AS f, current_setting('synchronous_commit') AS s, \
             current_setting('full_page_writes') AS p",
        )
        .fetch_one(&mut connection)
        .await?;
        use sqlx::Row;
        let text = format!(
            "fsync={}, synchronous_commit={}, full_page_writes={}",
            row.try_get::<String, _>("f")?,
            row.try_get::<String, _>("s")?,
            row.try_get::<String, _>("p")?
        );
        let _ = sqlx::Connection::close(connection).await;
        Ok::<_, sqlx::Error>(text)
    };
    match tokio::time::timeout(Duration::from_secs(10), read).await {
        Ok(Ok(text)) => text,
        Ok(Err(err)) => format!("durability unknown ({err})"),
        Err(_) => "durability unknown (no answer within 10 s)".into(),
    }
}
