//! `openorder up`: the whole system in one command. Starts the embedded broker (the sibling
//! `openorder-broker` binary, as a child process) unless bootstrap servers are given, then
//! runs the three services in this process, each with its own SQLite database under the
//! data directory. Ctrl-C or SIGTERM stops the services in order, then the broker.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use platform::db::DatabaseArgs;
use platform::http::HttpArgs;
use platform::kafka::KafkaArgs;
use platform::CancellationToken;
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Directory for all state: the broker's data and one SQLite database per service.
    #[arg(long, env = "OPENORDER_DATA_DIR", default_value = "openorder-data")]
    pub data_dir: PathBuf,

    /// Address every listener binds to.
    #[arg(long, env = "OPENORDER_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port of the embedded broker (Kafka protocol).
    #[arg(long, env = "OPENORDER_BROKER_PORT", default_value_t = 9092)]
    pub broker_port: u16,

    /// Port of order-service's HTTP API.
    #[arg(long, env = "OPENORDER_ORDER_PORT", default_value_t = 8080)]
    pub order_port: u16,

    /// Port of inventory-service's HTTP API (stock, admin).
    #[arg(long, env = "OPENORDER_INVENTORY_PORT", default_value_t = 8082)]
    pub inventory_port: u16,

    /// Port of notification-service's HTTP API.
    #[arg(long, env = "OPENORDER_NOTIFICATION_PORT", default_value_t = 8083)]
    pub notification_port: u16,

    /// Port of the console (the browser UI; 0 leaves it off).
    #[arg(long, env = "OPENORDER_CONSOLE_PORT", default_value_t = 8081)]
    pub console_port: u16,

    /// The console over HTTPS, and a proxy in front of it.
    #[command(flatten)]
    pub console_transport: console::transport::TransportArgs,

    /// How often the console samples its overview's charts.
    #[command(flatten)]
    pub console_history: console::history::HistoryArgs,

    /// Orders with an item of this SKU fail every attempt, for fault injection (empty disables).
    #[arg(long, env = "OPENORDER_FAIL_SKU", default_value = "FAIL")]
    pub fail_sku: String,

    /// Orders with an item of this SKU fail their first attempt only (empty disables).
    #[arg(long, env = "OPENORDER_FLAKY_SKU", default_value = "FLAKY")]
    pub flaky_sku: String,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub stop: platform::shutdown::StopArgs,

    #[command(flatten)]
    pub retention: platform::retention::RetentionArgs,

    /// notification-service's channels (e-mail, webhook), templates and retries.
    #[command(flatten)]
    pub notify: notification_service::NotifyArgs,

    /// order-service's waiting requests, stuck and expired orders.
    #[command(flatten)]
    pub orders: order_service::OrderArgs,

    /// inventory-service's automatic redrive policy (off by default).
    #[command(flatten)]
    pub auto_redrive: inventory_service::AutoRedriveArgs,
}

/// The embedded broker child process.
struct EmbeddedBroker {
    child: Child,
    exe: PathBuf,
    data_dir: PathBuf,
    address: SocketAddr,
    /// Where the running broker's lines begin in `broker.log`.
    log_from: u64,
}

/// Restarts of a broker that keeps dying before `up` gives up (each after a longer wait:
/// 0.5, 1, 2, 4, 8 s). A broker that ran for [`BROKER_STABLE`] starts the count again.
const BROKER_RESTARTS: u32 = 5;
const BROKER_STABLE: Duration = Duration::from_secs(60);

impl EmbeddedBroker {
    async fn start(data_dir: &Path, address: SocketAddr) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("Failed to find the openorder executable")?;
        let broker_exe = harness::broker::broker_exe(&exe)?;
        let log_from = log_length(data_dir);
        let child = Self::spawn(&broker_exe, data_dir, address).await?;
        Ok(Self {
            child,
            exe: broker_exe,
            data_dir: data_dir.to_path_buf(),
            address,
            log_from,
        })
    }

    async fn spawn(exe: &Path, data_dir: &Path, address: SocketAddr) -> anyhow::Result<Child> {
        let log_path = data_dir.join("broker.log");
        let bootstrap = address.to_string();
        let mut command = Command::from(harness::broker::broker_command(
            exe,
            &data_dir.join("broker"),
            &bootstrap,
            &log_path,
        )?);
        command
            // A process group of its own: a Ctrl-C or a SIGTERM/SIGHUP to the terminal's or
            // the service manager's group reaches `up` only, and `up` stops the broker after
            // the services, which still need it for their last commits.
            .process_group(0)
            .kill_on_drop(true);
        die_with_parent(&mut command);
        // Up to 30 s for a previous broker on this data directory to stop, then start-up.
        harness::broker::start_broker(&mut command, &bootstrap, &log_path, Duration::from_secs(60))
            .await
    }

    /// Watches the broker until `shutdown`: if it exits, it is started again after a
    /// growing wait (logged). When it cannot be kept running (it died [`BROKER_RESTARTS`]
    /// times in a row, or would not start again), this cancels `shutdown`, so that
    /// everything stops, and returns the error. Returns the broker, to be stopped.
    async fn supervise(self, shutdown: CancellationToken) -> (Self, anyhow::Result<()>) {
        let (broker, result) = self.keep_running(&shutdown).await;
        if result.is_err() {
            shutdown.cancel();
        }
        (broker, result)
    }

    async fn keep_running(mut self, shutdown: &CancellationToken) -> (Self, anyhow::Result<()>) {
        let mut restarts = 0u32;
        let mut running_since = tokio::time::Instant::now();
        loop {
            let status = tokio::select! {
                _ = shutdown.cancelled() => return (self, Ok(())),
                status = self.child.wait() => status,
            };
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            let reason = harness::broker::said(&self.data_dir.join("broker.log"), self.log_from);
            if running_since.elapsed() >= BROKER_STABLE {
                restarts = 0;
            }
            if restarts >= BROKER_RESTARTS {
                let err = anyhow::anyhow!(
                    "the embedded broker exited ({status}) {} times in a row: {reason}; giving up (see {})",
                    restarts + 1,
                    self.data_dir.join("broker.log").display()
                );
                return (self, Err(err));
            }
            let wait = platform::backoff::Backoff::doubling(
                Duration::from_millis(500),
                Duration::from_secs(8),
            )
            .delay(restarts + 1);
            restarts += 1;
            tracing::error!(
                %status, %reason, restart = restarts, of = BROKER_RESTARTS, wait_ms = wait.as_millis() as u64,
                "the embedded broker exited; starting it again"
            );
            tokio::select! {
                _ = shutdown.cancelled() => return (self, Ok(())),
                _ = tokio::time::sleep(wait) => {}
            }
            self.log_from = log_length(&self.data_dir);
            let started = tokio::select! {
                _ = shutdown.cancelled() => return (self, Ok(())),
                started = Self::spawn(&self.exe, &self.data_dir, self.address) => started,
            };
            match started {
                Ok(child) => {
                    tracing::info!(address = %self.address, "the embedded broker is running again");
                    self.child = child;
                    running_since = tokio::time::Instant::now();
                }
                Err(err) => {
                    return (
                        self,
                        Err(err
                            .context("the embedded broker exited and could not be started again")),
                    )
                }
            }
        }
    }

    /// SIGTERM, then until `deadline` for the broker to stop, then SIGKILL.
    async fn stop(mut self, deadline: tokio::time::Instant) {
        if let Some(pid) = self.child.id() {
            terminate(pid);
        }
        if tokio::time::timeout_at(deadline, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!("the embedded broker did not stop in time; killing it");
            let _ = self.child.kill().await;
        }
    }
}

/// The length of `broker.log` in `data_dir` (0 if there is none yet).
fn log_length(data_dir: &Path) -> u64 {
    harness::broker::log_length(&data_dir.join("broker.log"))
}

/// Makes the kernel SIGTERM the broker if `openorder up` dies without stopping it (kill -9).
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child being spawned.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// Waits until every URL answers 200 (each service serves), polling; false if `shutdown`
/// came first (a service failed to start, or a signal).
async fn all_answer(addresses: &[SocketAddr], shutdown: &CancellationToken) -> bool {
    for address in addresses {
        while !answers_live(*address).await {
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }
    true
}

/// Does `GET /health/live` on `address` answer 200 within a second? A plain request on a
/// socket: an HTTP client (its TLS set-up) would cost `up` megabytes for a start-up check.
async fn answers_live(address: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: up\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ask).await,
        Ok(Ok(true))
    )
}

fn sqlite_url(data_dir: &Path, name: &str) -> String {
    format!("sqlite://{}", data_dir.join(name).display())
}

pub async fn run(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "Failed to create data directory {}",
            args.data_dir.display()
        )
    })?;
    let data_dir = args.data_dir.canonicalize()?;
    let at = |port| SocketAddr::new(args.host, port);
    // The console's TLS files are checked before anything starts (a certificate without
    // its key is refused here, not once the broker runs).
    let console_scheme = match args.console_port {
        0 => "http",
        _ => match args.console_transport.tls()? {
            Some(_) => "https",
            None => "http",
        },
    };

    // Bind first, so a port in use fails before anything starts.
    let order_listener = crate::bind(at(args.order_port), "order-service").await?;
    let inventory_listener = crate::bind(at(args.inventory_port), "inventory-service").await?;
    let notification_listener =
        crate::bind(at(args.notification_port), "notification-service").await?;
    let console_listener = match args.console_port {
        0 => None,
        port => Some(crate::bind(at(port), "the console").await?),
    };

    // When the stop began, for the broker's share of the shutdown bound.
    let stop_began = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            tokio::time::Instant::now()
        })
    };
    let mut kafka = args.kafka.clone();
    let broker = match &kafka.broker.bootstrap_servers {
        Some(_) => None,
        None => {
            let address = at(args.broker_port);
            let broker = EmbeddedBroker::start(&data_dir, address).await?;
            kafka.broker.bootstrap_servers = Some(address.to_string());
            // One process, one member per group: read every partition directly rather than
            // rely on the embedded broker's group coordinator (see the book's Decisions).
            kafka.partition_assignment = platform::kafka::PartitionAssignment::All;
            Some(broker)
        }
    };
    // Operators present the token `up` keeps in its data directory (besides any configured).
    let token_path = data_dir.join(harness::up::UP_TOKEN_FILE);
    let token = crate::token::up_token(&data_dir).await?;
    let mut http = args.http.clone();
    http.auth
        .operator_token_hashes
        .push(platform::auth::operators::Entry::for_token("up", &token));
    let database = |name: &str| DatabaseArgs {
        retention: args.retention.clone(),
        database_url: sqlite_url(&data_dir, name),
        database_max_connections: 8,
    };

    let mut services = JoinSet::new();
    let mut deployment = harness::in_process::services(
        &kafka,
        [
            database("order.db"),
            database("inventory.db"),
            database("notification.db"),
        ],
        &http,
        &args.stop,
        &args.notify,
        &args.fail_sku,
        &args.flaky_sku,
    );
    deployment.order.orders = args.orders.clone();
    deployment.inventory.auto_redrive = args.auto_redrive.clone();
    deployment.spawn(
        [order_listener, inventory_listener, notification_listener],
        &shutdown,
        &mut services,
    );

    // The console reaches the services where they listen (on loopback when they listen on
    // every address), and asks for the operator tokens they take.
    let reach = if args.host.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        args.host
    };
    if let Some(listener) = console_listener {
        let console_args = console_args(&args, reach, &http, &kafka);
        let console = console::Console::new(&console_args).await?;
        services.spawn(console::serve(console, listener, shutdown.clone()));
    }

    let broker_line = match &broker {
        Some(_) => format!("embedded Tansu broker   {}", kafka.bootstrap()),
        None => format!("external Kafka          {}", kafka.bootstrap()),
    };
    let banner = banner(&args, &data_dir, &token_path, &broker_line, console_scheme);
    // Printed once every service answers on its port: then "up" is true.
    let live: Vec<SocketAddr> = [args.order_port, args.inventory_port, args.notification_port]
        .iter()
        .map(|port| at(*port))
        .collect();
    let announcer = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if all_answer(&live, &shutdown).await {
                println!("{banner}");
            }
        })
    };

    // The broker is watched (and restarted) while the services run.
    let supervisor = broker.map(|broker| tokio::spawn(broker.supervise(shutdown.clone())));

    // Run until a signal, or until a service stops on its own (an error), or the broker
    // cannot be kept running (the supervisor then cancels `shutdown`): then stop the rest.
    let mut first_error = None;
    while let Some(joined) = services.join_next().await {
        services_ended(joined, &mut first_error);
        shutdown.cancel();
    }
    announcer.abort();
    if let Some(watch) = supervisor {
        let bound = args.stop.shutdown_timeout;
        if let Err(err) = stop_broker(watch, stop_began, bound).await {
            first_error.get_or_insert(err);
        }
    }
    println!("OpenOrder stopped.");
    match first_error {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// The console's settings under `up`: it reaches the services at `reach` on their ports,
/// takes the operator tokens they take, and reads the brokers they use.
fn console_args(
    args: &UpArgs,
    reach: IpAddr,
    http: &HttpArgs,
    kafka: &KafkaArgs,
) -> console::ConsoleArgs {
    let url = |port: u16| format!("http://{}", SocketAddr::new(reach, port));
    console::ConsoleArgs {
        listen: SocketAddr::new(args.host, args.console_port),
        order_url: url(args.order_port),
        inventory_url: url(args.inventory_port),
        notification_url: url(args.notification_port),
        operator_tokens_file: http.auth.operator_tokens_file.clone(),
        operator_token_hashes: http.auth.operator_token_hashes.clone(),
        transport: args.console_transport.clone(),
        history: args.console_history.clone(),
        kafka: kafka.broker.clone(),
    }
}

/// What `up` prints once every service answers: where everything is, the operator
/// token's file, and two requests to try.
fn banner(
    args: &UpArgs,
    data_dir: &Path,
    token_path: &Path,
    broker_line: &str,
    console_scheme: &str,
) -> String {
    let host = args.host;
    let console_line = match args.console_port {
        0 => String::new(),
        port => format!(
            "console                 {console_scheme}://{host}:{port} (sign in with the operator token)\n  "
        ),
    };
    format!(
        "OpenOrder is up. Data in {data}\n  \
         {broker_line}\n  \
         order-service           http://{host}:{o}\n  \
         inventory-service       http://{host}:{i}\n  \
         notification-service    http://{host}:{n}\n  \
         {console_line}operator token          {token} (stock, faults, dead letters, status)\n\
         Try:\n  \
         curl -i -X POST http://{host}:{o}/api/orders -H 'Content-Type: application/json' \
         -d '{{\"userId\":42,\"items\":[{{\"sku\":\"ABC-001\",\"qty\":2}}]}}'\n  \
         curl -H \"Authorization: Bearer $(cat {token})\" http://{host}:{i}/admin/status\n\
         Ctrl-C stops everything.",
        data = data_dir.display(),
        token = token_path.display(),
        o = args.order_port,
        i = args.inventory_port,
        n = args.notification_port,
    )
}

/// Waits for the embedded broker's supervisor (`watch`), then stops the broker within
/// 95 % of `bound` from when the stop began (at least 200 ms from now): the services
/// stopped first, so their last records went out. The supervisor's error, if it had one.
async fn stop_broker(
    watch: tokio::task::JoinHandle<(EmbeddedBroker, anyhow::Result<()>)>,
    stop_began: tokio::task::JoinHandle<tokio::time::Instant>,
    bound: Duration,
) -> anyhow::Result<()> {
    let (broker, watched) = watch
        .await
        .map_err(|err| anyhow::anyhow!("the broker's supervisor failed: {err}"))?;
    if let Err(err) = &watched {
        tracing::error!(error = format!("{err:#}"), "stopping all");
    }
    let began = stop_began
        .await
        .unwrap_or_else(|_| tokio::time::Instant::now());
    let deadline = began + bound.mul_f64(0.95);
    broker
        .stop(deadline.max(tokio::time::Instant::now() + Duration::from_millis(200)))
        .await;
    watched
}

fn services_ended(
    joined: Result<anyhow::Result<()>, tokio::task::JoinError>,
    first_error: &mut Option<anyhow::Error>,
) {
    let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
    if let Err(err) = result {
        tracing::error!(
            error = format!("{err:#}"),
            "a service stopped with an error; stopping all"
        );
        first_error.get_or_insert(err);
    }
}
