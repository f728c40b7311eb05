//! `openorder bench --soak`: a long, bounded run at one rate with every retention window
//! shortened (topics, dead letters, the embedded broker's log, dedupe marks, idempotency
//! keys, notifications, orders; the services prune every sixth of it, at most every 10 s;
//! the broker runs retention at its default interval), sampled every `--sample-every`: the
//! resident memory and CPU of each process, the size of each file of the data directory (or,
//! on PostgreSQL, of each service's database), throughput and latency.
//! Once the first window has passed, memory and disk should stay flat; the report shows
//! whether they do, and what retention removed (rows pruned, the topics' low watermarks).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use super::{driver, procstat, report};

/// The settings that shorten every retention window to `window` for the system under test
/// (environment variables of `up`, its broker and the services).
pub fn environment(window: Duration) -> Vec<(String, String)> {
    let age = format!("{}s", window.as_secs().max(1));
    let often = format!("{}s", (window.as_secs() / 6).clamp(1, 10));
    [
        ("OPENORDER_TOPIC_RETENTION", age.as_str()),
        ("OPENORDER_DEAD_LETTER_RETENTION", &age),
        ("OPENORDER_BROKER_RETENTION", &age),
        ("OPENORDER_RETAIN_DEDUPE", &age),
        ("OPENORDER_RETAIN_IDEMPOTENCY_KEYS", &age),
        ("OPENORDER_RETAIN_NOTIFICATIONS", &age),
        ("OPENORDER_RETAIN_ORDERS", &age),
        ("OPENORDER_PRUNE_EVERY", &often),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One sample of the soak.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Seconds since the soak began, at the sample's end.
    pub at_seconds: f64,
    pub offered_rate: f64,
    /// Orders decided within the sample.
    pub completed: usize,
    pub completed_per_second: f64,
    pub errors: usize,
    pub lost: usize,
    pub post_p99_ms: f64,
    pub end_to_end_p50_ms: f64,
    pub end_to_end_p99_ms: f64,
    /// Resident memory now (VmRSS) and CPU over the sample, per process.
    pub processes: Vec<ProcessSample>,
    /// Each file of the data directory (path inside it) and its size.
    pub files: Vec<(String, u64)>,
    /// Each service's PostgreSQL database and its size (`pg_database_size`).
    pub databases: Vec<(String, u64)>,
    /// The files and databases together.
    pub data_bytes: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessSample {
    pub name: String,
    pub rss_mib: f64,
    pub cpu_percent: f64,
}

/// What the soak measured, and what retention did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Soak {
    pub window_seconds: u64,
    pub samples: Vec<Sample>,
    /// `openorder_rows_pruned_total` of every service, added up, at the end.
    pub rows_pruned: u64,
    /// Every partition of the event topics: `(topic, partition, low, high)` at the end.
    pub watermarks: Vec<(String, i32, i64, i64)>,
    /// Bytes of the data directory (or databases) at the soak's end ÷ the orders completed
    /// in its last window: what one order retained costs on disk.
    pub bytes_per_order_retained: Option<f64>,
}

/// Everything the soak needs from the system under test.
pub struct Target<'a> {
    pub http: &'a reqwest::Client,
    pub order_url: &'a str,
    pub service_urls: &'a [String],
    pub kafka: &'a platform::kafka::KafkaArgs,
    pub processes: &'a [(String, u32)],
    pub data_dir: Option<&'a Path>,
    /// PostgreSQL (a URL with the right to read `pg_database_size`) and the services'
    /// databases on it.
    pub databases: Option<(&'a str, Vec<String>)>,
}

/// Runs `rate` orders/s for `duration`, sampling every `every`.
pub async fn run(
    target: &Target<'_>,
    decisions: &driver::Decisions,
    rate: f64,
    duration: Duration,
    every: Duration,
    window: Duration,
) -> anyhow::Result<Soak> {
    let began = Instant::now();
    let mut samples = Vec::new();
    let steps = (duration.as_secs_f64() / every.as_secs_f64())
        .ceil()
        .max(1.0) as usize;
    println!(
        "{:>7} {:>11} {:>6} {:>9} {:>9} {:>9} {:>10}  RSS MiB",
        "AT s", "COMPLETED/s", "LOST", "POST p99", "E2E p50", "E2E p99", "DATA MiB"
    );
    let sizes = match &target.databases {
        Some((url, names)) => Some(DatabaseSizes::connect(url, names.clone()).await?),
        None => None,
    };
    for _ in 0..steps {
        let sample = take_sample(target, decisions, rate, every, sizes.as_ref(), began).await?;
        print_sample(&sample);
        samples.push(sample);
    }
    if let Some(sizes) = sizes {
        sizes.pool.close().await;
    }
    let mut rows_pruned = 0;
    for url in target.service_urls {
        rows_pruned += pruned(target.http, url).await.unwrap_or(0);
    }
    let watermarks = watermarks(target.kafka).await.unwrap_or_default();
    let bytes_per_order_retained = bytes_per_order_retained(&samples, began, window);
    Ok(Soak {
        window_seconds: window.as_secs(),
        samples,
        rows_pruned,
        watermarks,
        bytes_per_order_retained,
    })
}

/// One step of the soak: `rate` orders/s for `every`, then what they did and what the
/// processes, files and databases use now.
async fn take_sample(
    target: &Target<'_>,
    decisions: &driver::Decisions,
    rate: f64,
    every: Duration,
    sizes: Option<&DatabaseSizes>,
    began: Instant,
) -> anyhow::Result<Sample> {
    let cpu = procstat::Span::start(target.processes);
    let count = (rate * every.as_secs_f64()) as usize;
    let sent = driver::open_loop(target.http, target.order_url, rate, count).await?;
    driver::wait_decided(&sent, decisions, Duration::from_secs(30)).await;
    let run = report::summarize(rate, &sent, decisions);
    drop(sent);
    let used = cpu.finish(run.completed);
    let processes: Vec<ProcessSample> = used
        .iter()
        .map(|p| ProcessSample {
            name: p.name.clone(),
            rss_mib: procstat::rss_kib(p.pid).unwrap_or(0) as f64 / 1024.0,
            cpu_percent: p.cpu_percent,
        })
        .collect();
    let files = target.data_dir.map(files_of).unwrap_or_default();
    let databases = match sizes {
        Some(sizes) => sizes.now().await?,
        None => Vec::new(),
    };
    let data_bytes = files.iter().chain(&databases).map(|(_, n)| n).sum();
    Ok(Sample {
        at_seconds: began.elapsed().as_secs_f64(),
        offered_rate: rate,
        completed: run.completed,
        completed_per_second: run.completed_per_second,
        errors: run.errors,
        lost: run.lost,
        post_p99_ms: run.post.p99_ms,
        end_to_end_p50_ms: run.end_to_end.p50_ms,
        end_to_end_p99_ms: run.end_to_end.p99_ms,
        processes,
        files,
        databases,
        data_bytes,
    })
}

/// One row of the soak's table.
fn print_sample(sample: &Sample) {
    println!(
        "{:>7.0} {:>11.0} {:>6} {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>10.1}  {}",
        sample.at_seconds,
        sample.completed_per_second,
        sample.lost,
        sample.post_p99_ms,
        sample.end_to_end_p50_ms,
        sample.end_to_end_p99_ms,
        sample.data_bytes as f64 / 1_048_576.0,
        sample
            .processes
            .iter()
            .map(|p| format!("{} {:.1}", p.name, p.rss_mib))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// The last sample's data bytes ÷ the orders completed in the last `window`: the orders
/// of the last window are what the data directory holds.
fn bytes_per_order_retained(samples: &[Sample], began: Instant, window: Duration) -> Option<f64> {
    let end = began.elapsed().as_secs_f64();
    let retained: usize = samples
        .iter()
        .filter(|s| end - s.at_seconds < window.as_secs_f64())
        .map(|s| s.completed)
        .sum();
    samples
        .last()
        .filter(|s| s.data_bytes > 0 && retained > 0)
        .map(|s| s.data_bytes as f64 / retained as f64)
}

/// The sizes of the services' PostgreSQL databases, read through one connection.
struct DatabaseSizes {
    pool: sqlx::AnyPool,
    names: Vec<String>,
}

impl DatabaseSizes {
    async fn connect(url: &str, names: Vec<String>) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let pool = sqlx::pool::PoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .context("Failed to connect to PostgreSQL for the databases' sizes")?;
        Ok(Self { pool, names })
    }

    async fn now(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for name in &self.names {
            let (bytes,): (i64,) = sqlx::query_as("SELECT pg_database_size($1)")
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .with_context(|| format!("Failed to read the size of database {name}"))?;
            out.push((name.clone(), bytes as u64));
        }
        Ok(out)
    }
}

/// Every file under `dir` (recursively) with its size, by path inside `dir`.
fn files_of(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.metadata() {
                Ok(m) if m.is_dir() => pending.push(path),
                Ok(m) => out.push((
                    path.strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                    m.len(),
                )),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

/// `openorder_rows_pruned_total` of the service at `base`, all tables added up.
async fn pruned(http: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("openorder_rows_pruned_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// The low and high watermarks of every partition of the event topics.
async fn watermarks(
    kafka: &platform::kafka::KafkaArgs,
) -> anyhow::Result<Vec<(String, i32, i64, i64)>> {
    use contracts::topics as t;
    let topics = t::Topics::with_prefix(kafka.broker.topic_prefix.clone());
    let names: Vec<String> = [
        t::ORDER_CREATED,
        t::INVENTORY_RESERVED,
        t::INVENTORY_REJECTED,
        t::ORDER_CREATED_DLT,
    ]
    .iter()
    .map(|name| topics.name(name))
    .collect();
    let consumer: BaseConsumer =
        platform::kafka::base(&kafka.broker, "openorder-bench-soak")?.create()?;
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(10);
        let mut out = Vec::new();
        for topic in names {
            let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
            for t in metadata.topics() {
                for p in t.partitions() {
                    let (low, high) = consumer.fetch_watermarks(&topic, p.id(), timeout)?;
                    out.push((topic.clone(), p.id(), low, high));
                }
            }
        }
        anyhow::Ok(out)
    })
    .await?
}

/// The soak's chart: memory per process, the data directory's size and the latency, by
/// sample.
pub fn chart(soak: &Soak, title: &str) -> String {
    const COLOURS: [&str; 5] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"];
    let names: Vec<&str> = soak
        .samples
        .first()
        .map(|s| s.processes.iter().map(|p| p.name.as_str()).collect())
        .unwrap_or_default();
    let rss: Vec<report::Line<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (
                *name,
                COLOURS[i % COLOURS.len()],
                soak.samples
                    .iter()
                    .map(|s| s.processes.get(i).map_or(0.0, |p| p.rss_mib))
                    .collect(),
            )
        })
        .collect();
    let of = |f: fn(&Sample) -> f64| soak.samples.iter().map(f).collect::<Vec<f64>>();
    report::panels(
        title,
        &[
            ("resident memory, MiB (by sample)", rss),
            (
                "data on disk, MiB",
                vec![(
                    "data directory or databases",
                    "#d62728",
                    of(|s| s.data_bytes as f64 / 1_048_576.0),
                )],
            ),
            (
                "orders/s and latency, ms",
                vec![
                    ("completed/s", "#2ca02c", of(|s| s.completed_per_second)),
                    ("end-to-end p99 ms", "#d62728", of(|s| s.end_to_end_p99_ms)),
                ],
            ),
        ],
    )
}
