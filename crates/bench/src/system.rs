//! The system under test: `openorder up` on the embedded defaults (started again on other
//! ports when it exits at start), or the three services as processes against an external
//! Kafka and PostgreSQL; stocked for the run, and stopped after it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

use harness::cluster::{Backend, BrokerChoice, Cluster};
use harness::up::{up_command, UpPorts, UP_TOKEN_FILE};

use crate::{procstat, soak, BenchArgs, SKUS};

/// The system under test and how to reach it.
pub(crate) struct System {
    pub(crate) order_url: String,
    pub(crate) inventory_url: String,
    pub(crate) notification_url: String,
    /// The embedded system's data directory (None: the services' data is in PostgreSQL).
    pub(crate) data_dir: Option<PathBuf>,
    /// The operator token `up` made (None: the services run without operator tokens).
    pub(crate) operator_token: Option<String>,
    /// The console `up` serves, when the run needs one.
    pub(crate) console_url: Option<String>,
    pub(crate) kafka: platform::kafka::KafkaArgs,
    pub(crate) processes: Vec<(String, u32)>,
    /// The external servers found on this host (the Kafka broker, PostgreSQL with its
    /// backends), measured as the processes are: see [`servers_of`].
    pub(crate) servers: Vec<(String, u32)>,
    up: Option<tokio::process::Child>,
    pub(crate) cluster: Option<Cluster>,
}

/// Starts the system `args` name, its files under `dir`.
pub(crate) async fn start_system(
    args: &BenchArgs,
    dir: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<System> {
    let env = if args.soak {
        soak::environment(args.soak_window)
    } else {
        Vec::new()
    };
    match args.backend.broker {
        BrokerChoice::Embedded => {
            let console = args.tail || args.console_records > 0 || args.console_tails > 0;
            for attempt in 1.. {
                if let Some(system) = start_up(dir, http, attempt, &env, console).await? {
                    return Ok(system);
                }
            }
            unreachable!("start_up gives up after its last attempt")
        }
        BrokerChoice::External => start_cluster(args, dir, env).await,
    }
}

/// The three services as processes of their own against the external broker and
/// PostgreSQL `args` name.
async fn start_cluster(
    args: &BenchArgs,
    dir: &Path,
    env: Vec<(String, String)>,
) -> anyhow::Result<System> {
    let (bootstrap, postgres_url) = args.backend.external()?;
    let servers = servers_of(&bootstrap, &postgres_url);
    let backend = Backend::External {
        bootstrap,
        postgres_url,
        broker_stop: None,
        broker_start: None,
        database_stop: None,
        database_start: None,
    };
    let mut cluster = Cluster::new(backend, dir, 1).await?;
    cluster.env = env;
    let [order_url, inventory_url, notification_url] = cluster.start_services().await?;
    Ok(System {
        order_url,
        inventory_url,
        notification_url,
        data_dir: None,
        operator_token: None,
        console_url: None,
        kafka: platform::kafka::KafkaArgs::with_defaults(&cluster.bootstrap, &cluster.prefix),
        processes: cluster.pids(),
        servers,
        up: None,
        cluster: Some(cluster),
    })
}

/// The Kafka broker (the first bootstrap server's port) and the PostgreSQL server under
/// test, where they listen on this host; a server not found here (on another host, or not
/// visible to this user) is left out, and the bench says so.
fn servers_of(bootstrap: &str, postgres_url: &str) -> Vec<(String, u32)> {
    let kafka = bootstrap
        .split(',')
        .next()
        .and_then(|server| server.rsplit(':').next()?.parse::<u16>().ok());
    let postgres = reqwest::Url::parse(postgres_url)
        .ok()
        .map(|url| url.port().unwrap_or(5432));
    let mut servers = Vec::new();
    for (what, port) in [("Kafka broker", kafka), ("PostgreSQL", postgres)] {
        match port.and_then(|port| Some((port, procstat::listening_on(port)?))) {
            Some((port, pid)) => servers.push((format!("{what} (port {port})"), pid)),
            None => {
                println!("bench: the {what} is not a process of this host; its CPU is not measured")
            }
        }
    }
    servers
}

/// Most tries at starting `openorder up` (see [`start_up`]).
const UP_ATTEMPTS: u32 = 3;

/// Starts `openorder up` on free ports and waits until its three services are ready; `None`
/// if it exited at start and another attempt is left. The ports are found free and released
/// before `up` binds them, so another socket can take one in between (seen: the broker's
/// port, "Address already in use"); `up` then exits at once, and a new attempt picks new
/// ports.
async fn start_up(
    dir: &Path,
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
    let started = std::time::Instant::now();
    let mut child = spawn_up(&data, &ports, &log_path, env)?;
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
            return exited_at_start(attempt, &status, &log_path);
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
    let token = read_token(&data).await?;
    Ok(Some(System {
        order_url,
        inventory_url,
        notification_url,
        data_dir: Some(data),
        operator_token: Some(token),
        console_url: console.then(|| format!("http://127.0.0.1:{}", ports.console)),
        kafka: platform::kafka::KafkaArgs::with_defaults(
            &format!("127.0.0.1:{}", ports.broker),
            "",
        ),
        processes,
        servers: Vec::new(),
        up: Some(child),
        cluster: None,
    }))
}

/// `openorder up` on `data` and `ports`, with `env` beside its own, its output in `log_path`.
fn spawn_up(
    data: &Path,
    ports: &UpPorts,
    log_path: &Path,
    env: &[(String, String)],
) -> anyhow::Result<tokio::process::Child> {
    let log = std::fs::File::create(log_path)?;
    tokio::process::Command::from(up_command(&std::env::current_exe()?, data, ports))
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("Failed to start openorder up")
}

/// `up` exited (with `status`) before it was ready: `None`, to try again on other ports,
/// or an error with its log's first error line once the attempts are spent.
fn exited_at_start(attempt: u32, status: &str, log_path: &Path) -> anyhow::Result<Option<System>> {
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
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
    Ok(None)
}

/// The operator token `up` left in its data directory `data`.
async fn read_token(data: &Path) -> anyhow::Result<String> {
    let token_file = data.join(UP_TOKEN_FILE);
    let token = tokio::fs::read_to_string(&token_file)
        .await
        .with_context(|| {
            format!(
                "`openorder up` left no operator token in {}",
                token_file.display()
            )
        })?;
    Ok(token.trim().to_string())
}

impl System {
    /// Stops what [`start_system`] started: `up` by SIGTERM (15 s to exit), or the cluster.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut up) = self.up.take() {
            if let Some(pid) = up.id() {
                let _ = tokio::process::Command::new("kill")
                    .arg(pid.to_string())
                    .status()
                    .await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(15), up.wait()).await;
        }
        if let Some(cluster) = self.cluster.take() {
            cluster.shutdown().await;
        }
    }

    /// Stocks every bench SKU generously.
    pub(crate) async fn stock(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        for sku in SKUS {
            let mut put = http.put(format!("{}/api/inventory/{sku}", self.inventory_url));
            if let Some(token) = &self.operator_token {
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
}
