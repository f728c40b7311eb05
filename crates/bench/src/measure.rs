//! One bench run on a started system, step by step: stock and warm up, then what the flags
//! ask for (many console tails, the console's pages, a soak, a saturation search, or one
//! open-loop run at one rate), then the broker's and HTTP's limits beside it: the
//! [`Report`].

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use harness::cluster::BrokerChoice;

use crate::system::System;
use crate::{console, driver, limits, procstat, report, soak, BenchArgs, SKUS};

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

/// What the measured part of a run found, before the limits are measured beside it.
#[derive(Default)]
struct Found {
    runs: Vec<report::RunResult>,
    sustained_rate: Option<f64>,
    soak: Option<soak::Soak>,
    console_pages: Option<Vec<console::PageTiming>>,
    tailed: Option<console::Tailed>,
    console_tails: Option<console::TailsLoad>,
}

/// The system under test, the flags and the one HTTP client every step uses.
struct Run<'a> {
    args: &'a BenchArgs,
    system: &'a System,
    http: &'a reqwest::Client,
    decisions: driver::Decisions,
}

/// Measures what `args` ask for on `system`, then the limits beside it.
pub(crate) async fn measure(
    args: &BenchArgs,
    system: &System,
    http: &reqwest::Client,
) -> anyhow::Result<Report> {
    system.stock(http).await?;
    let stop = CancellationToken::new();
    let decisions = driver::observe(&system.kafka, args.hops, stop.clone())?;
    // Warm-up: connections, consumer fetch sessions, database caches.
    let warm = driver::open_loop(http, &system.order_url, 200.0, 200).await?;
    driver::wait_decided(&warm, &decisions, Duration::from_secs(60)).await;

    let postgres = match &args.backend.postgres_url {
        Some(url) if args.backend.broker == BrokerChoice::External => {
            let durability = postgres_durability(url).await;
            println!("bench: PostgreSQL {durability}");
            Some(durability)
        }
        _ => None,
    };
    let span = procstat::Span::start(&system.processes);
    let servers = procstat::Span::start_trees(&system.servers);
    let run = Run {
        args,
        system,
        http,
        decisions,
    };
    let found = run.measured().await?;
    let completed = found.runs.iter().map(|r| r.completed).sum();
    let mut processes = span.finish(completed);
    processes.extend(servers.finish(completed));
    stop.cancel();
    run.with_limits(found, processes, postgres).await
}

impl Run<'_> {
    /// The part of the run the flags choose, while the processes' use is sampled.
    async fn measured(&self) -> anyhow::Result<Found> {
        let (args, system) = (self.args, self.system);
        let mut found = Found::default();
        let signed_in = match (&system.console_url, &system.operator_token) {
            (Some(url), Some(token)) => Some((url.clone(), console::sign_in(url, token).await?)),
            _ => None,
        };
        if args.console_tails > 0 {
            found.console_tails = Some(self.console_tails().await?);
        } else if args.console_records > 0 {
            let (url, cookie) = signed_in
                .clone()
                .context("--console-records needs the embedded broker")?;
            found.console_pages = Some(
                console::pages(
                    self.http,
                    &system.kafka,
                    &url,
                    &cookie,
                    args.console_records,
                )
                .await?,
            );
        } else if args.soak {
            found.soak = Some(self.soak().await?);
        } else if args.saturate {
            (found.runs, found.sustained_rate) = self.saturate().await?;
        } else {
            let (run, tailed) = self.open_loop(&signed_in).await?;
            found.runs.push(run);
            found.tailed = tailed;
        }
        Ok(found)
    }

    /// `--console-tails`: that many live tails through the console while orders flow.
    async fn console_tails(&self) -> anyhow::Result<console::TailsLoad> {
        let system = self.system;
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
        let flow = driver::open_loop(self.http, &system.order_url, 100.0, 2000);
        let tails = console::tails_load(&url, &token, &topic, self.args.console_tails, up);
        let (flow, tails) = tokio::join!(flow, tails);
        flow?;
        let tails = tails?;
        println!(
            "bench: {} live tails asked, {} admitted, {} refused; up RSS {} → {} → {} KiB, threads {} → {} → {} (before, open, 15 s after closing)",
            tails.asked, tails.admitted, tails.refused,
            tails.rss_kib[0], tails.rss_kib[1], tails.rss_kib[2],
            tails.threads[0], tails.threads[1], tails.threads[2]
        );
        Ok(tails)
    }

    /// `--soak`: one long run, sampled.
    async fn soak(&self) -> anyhow::Result<soak::Soak> {
        let (args, system) = (self.args, self.system);
        let service_urls = [
            system.order_url.clone(),
            system.inventory_url.clone(),
            system.notification_url.clone(),
        ];
        let target = soak::Target {
            http: self.http,
            order_url: &system.order_url,
            service_urls: &service_urls,
            kafka: &system.kafka,
            processes: &system.processes,
            data_dir: system.data_dir.as_deref(),
            databases: match (&system.cluster, &args.backend.postgres_url) {
                (Some(cluster), Some(url)) => Some((
                    url.as_str(),
                    ["order-service", "inventory-service", "notification-service"]
                        .map(|s| cluster.database_name(s))
                        .to_vec(),
                )),
                _ => None,
            },
        };
        soak::run(
            &target,
            &self.decisions,
            args.rate,
            Duration::from_secs_f64(args.duration),
            Duration::from_secs_f64(args.sample_every.max(1.0)),
            args.soak_window,
        )
        .await
    }

    /// `--saturate`: steps of rising rate until one is not sustained; each step's result and
    /// the highest rate sustained.
    async fn saturate(&self) -> anyhow::Result<(Vec<report::RunResult>, Option<f64>)> {
        let (args, decisions) = (self.args, &self.decisions);
        let mut runs = Vec::new();
        let mut sustained_rate = None;
        let mut rate = 250.0_f64;
        while rate <= args.max_rate {
            let count = (rate * args.step_seconds) as usize;
            let samples = driver::open_loop(self.http, &self.system.order_url, rate, count).await?;
            let last_scheduled = samples.iter().map(|s| s.scheduled).max();
            driver::wait_decided(&samples, decisions, Duration::from_secs(2)).await;
            let run = report::summarize(rate, &samples, decisions);
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
                driver::wait_decided(&samples, decisions, Duration::from_secs(120)).await;
                break;
            }
            sustained_rate = Some(rate);
            rate *= 1.5;
        }
        Ok((runs, sustained_rate))
    }

    /// One open-loop run at `--rate` for `--duration`, with the `FAIL` orders and the
    /// console's tail beside it when asked; its result, and what the tail received.
    async fn open_loop(
        &self,
        signed_in: &Option<(String, String)>,
    ) -> anyhow::Result<(report::RunResult, Option<console::Tailed>)> {
        let (args, system) = (self.args, self.system);
        let count = (args.rate * args.duration) as usize;
        let failing = (args.fail_every > 0.0).then(|| {
            tokio::spawn(driver::post_failing_orders(
                self.http.clone(),
                system.order_url.clone(),
                Duration::from_secs_f64(args.fail_every),
                Duration::from_secs_f64(args.duration),
            ))
        });
        let tail_stop = CancellationToken::new();
        let tailing = match (signed_in, args.tail) {
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
            driver::open_loop_as(self.http, &system.order_url, args.rate, count, client).await?;
        if let Some(line) = report::client_line(args.rate, &samples, client) {
            println!("{line}");
        }
        let mut tailed = None;
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
        driver::wait_decided(&samples, &self.decisions, Duration::from_secs(120)).await;
        Ok((
            report::summarize(args.rate, &samples, &self.decisions),
            tailed,
        ))
    }

    /// Measures the HTTP ceiling and the broker's raw rate, and puts them beside what was
    /// `found`.
    async fn with_limits(
        &self,
        found: Found,
        processes: Vec<procstat::ProcessUse>,
        postgres: Option<String>,
    ) -> anyhow::Result<Report> {
        let http_limit = limits::http(self.http, 64, 3.0).await?;
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
        let broker_limit =
            limits::broker(&self.system.kafka, self.args.raw_records, &sample_event).await?;
        let runs = found.runs;
        let best = runs
            .iter()
            .filter(|r| r.lost == 0 && r.errors == 0)
            .max_by(|a, b| a.completed_per_second.total_cmp(&b.completed_per_second))
            .or(runs.last());
        let (completed, accepted) = best.map_or((0.0, 0.0), |b| {
            (b.completed_per_second, b.accepted_per_second)
        });
        Ok(Report {
            backend: match self.args.backend.broker {
                BrokerChoice::Embedded => "embedded (openorder up: Tansu + SQLite)".into(),
                BrokerChoice::External => "Kafka + PostgreSQL (three service processes)".into(),
            },
            machine: machine(),
            completed_vs_broker: completed / broker_limit.orders_per_second,
            accepted_vs_http: accepted / http_limit.requests_per_second,
            soak: found.soak,
            tailed: found.tailed,
            console_pages: found.console_pages,
            console_tails: found.console_tails,
            postgres,
            runs,
            sustained_rate: found.sustained_rate,
            processes,
            broker_limit,
            http_limit,
        })
    }
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
