//! `openorder up`: the whole system in one command. Starts the embedded broker (the sibling
//! `openorder-broker` binary, as a child process) unless bootstrap servers are given, then
//! runs the three services in this process, each with its own SQLite database under the
//! data directory. Ctrl-C or SIGTERM stops the services in order, then the broker.

mod banner;
mod broker;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use platform::db::DatabaseArgs;
use platform::http::HttpArgs;
use platform::kafka::KafkaArgs;
use platform::CancellationToken;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use banner::{announce, banner};
use broker::{stop_broker, EmbeddedBroker};

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

    /// inventory-service's fault switches at start (`--fail-sku`, `--flaky-sku`).
    #[command(flatten)]
    pub faults: inventory_service::faults::FaultFlags,

    /// inventory-service's automatic redrive policy (off by default).
    #[command(flatten)]
    pub auto_redrive: inventory_service::AutoRedriveArgs,
}

fn sqlite_url(data_dir: &Path, name: &str) -> String {
    format!("sqlite://{}", data_dir.join(name).display())
}

/// `openorder up`: binds every port, starts the broker (unless bootstrap servers are
/// given), runs the services and the console until a signal or an error, then stops them
/// and the broker.
pub async fn run(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "Failed to create data directory {}",
            args.data_dir.display()
        )
    })?;
    let data_dir = args.data_dir.canonicalize()?;
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
    let listeners = Listeners::bind(&args).await?;
    // When the stop began, for the broker's share of the shutdown bound.
    let stop_began = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            tokio::time::Instant::now()
        })
    };
    let (kafka, broker) = kafka_and_broker(&args, &data_dir).await?;
    // Operators present the token `up` keeps in its data directory (besides any configured).
    let token_path = data_dir.join(harness::up::UP_TOKEN_FILE);
    let token = crate::token::up_token(&data_dir).await?;
    let mut http = args.http.clone();
    http.auth
        .operator_token_hashes
        .push(platform::auth::operators::Entry::for_token("up", &token));

    let mut services = JoinSet::new();
    let settings = Settings {
        args: &args,
        data_dir: &data_dir,
        kafka: &kafka,
        http: &http,
    };
    settings.spawn_services(listeners.services, &shutdown, &mut services);
    if let Some(listener) = listeners.console {
        let console = console::Console::new(&settings.console_args()).await?;
        services.spawn(console::serve(console, listener, shutdown.clone()));
    }

    let broker_line = match &broker {
        Some(_) => format!("embedded Tansu broker   {}", kafka.bootstrap()),
        None => format!("external Kafka          {}", kafka.bootstrap()),
    };
    let banner = banner(&args, &data_dir, &token_path, &broker_line, console_scheme);
    let announcer = announce(&args, banner, &shutdown);
    // The broker is watched (and restarted) while the services run.
    let supervisor = broker.map(|broker| tokio::spawn(broker.supervise(shutdown.clone())));

    let mut first_error = wait_for_services(&mut services, &shutdown).await;
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

/// What `up` listens on, bound before anything starts: order-, inventory- and
/// notification-service's ports, and the console's (None: its port is 0).
struct Listeners {
    services: [TcpListener; 3],
    console: Option<TcpListener>,
}

impl Listeners {
    async fn bind(args: &UpArgs) -> anyhow::Result<Self> {
        let at = |port| SocketAddr::new(args.host, port);
        let order = crate::bind(at(args.order_port), "order-service").await?;
        let inventory = crate::bind(at(args.inventory_port), "inventory-service").await?;
        let notification = crate::bind(at(args.notification_port), "notification-service").await?;
        let console = match args.console_port {
            0 => None,
            port => Some(crate::bind(at(port), "the console").await?),
        };
        Ok(Self {
            services: [order, inventory, notification],
            console,
        })
    }
}

/// The services' Kafka settings, and the embedded broker, started on `--broker-port`
/// unless bootstrap servers are given.
async fn kafka_and_broker(
    args: &UpArgs,
    data_dir: &Path,
) -> anyhow::Result<(KafkaArgs, Option<EmbeddedBroker>)> {
    let mut kafka = args.kafka.clone();
    let broker = match &kafka.broker.bootstrap_servers {
        Some(_) => None,
        None => {
            let address = SocketAddr::new(args.host, args.broker_port);
            let broker = EmbeddedBroker::start(data_dir, address).await?;
            kafka.broker.bootstrap_servers = Some(address.to_string());
            // One process, one member per group: read every partition directly rather than
            // rely on the embedded broker's group coordinator (see the book's Decisions).
            kafka.partition_assignment = platform::kafka::PartitionAssignment::All;
            Some(broker)
        }
    };
    Ok((kafka, broker))
}

/// The settings the services and the console run with under `up`.
struct Settings<'a> {
    args: &'a UpArgs,
    data_dir: &'a Path,
    /// With the embedded broker's address when `up` runs it.
    kafka: &'a KafkaArgs,
    /// With the token `up` keeps among the operators'.
    http: &'a HttpArgs,
}

impl Settings<'_> {
    /// Runs the three services in `services` on `listeners` (order-, inventory- and
    /// notification-service's), each on its SQLite database in the data directory.
    fn spawn_services(
        &self,
        listeners: [TcpListener; 3],
        shutdown: &CancellationToken,
        services: &mut JoinSet<anyhow::Result<()>>,
    ) {
        let args = self.args;
        let database = |name: &str| DatabaseArgs {
            retention: args.retention.clone(),
            database_url: sqlite_url(self.data_dir, name),
            database_max_connections: 8,
        };
        let mut deployment = harness::in_process::services(
            self.kafka,
            [
                database("order.db"),
                database("inventory.db"),
                database("notification.db"),
            ],
            self.http,
            &args.stop,
            &args.notify,
            &args.faults,
        );
        deployment.order.orders = args.orders.clone();
        deployment.inventory.auto_redrive = args.auto_redrive.clone();
        deployment.spawn(listeners, shutdown, services);
    }

    /// The console's settings under `up`: it reaches the services where they listen (on
    /// loopback when they listen on every address), takes the operator tokens they take,
    /// and reads the brokers they use.
    fn console_args(&self) -> console::ConsoleArgs {
        let args = self.args;
        let reach = if args.host.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            args.host
        };
        let url = |port: u16| format!("http://{}", SocketAddr::new(reach, port));
        console::ConsoleArgs {
            listen: SocketAddr::new(args.host, args.console_port),
            order_url: url(args.order_port),
            inventory_url: url(args.inventory_port),
            notification_url: url(args.notification_port),
            operator_tokens_file: self.http.auth.operator_tokens_file.clone(),
            operator_token_hashes: self.http.auth.operator_token_hashes.clone(),
            transport: args.console_transport.clone(),
            history: args.console_history.clone(),
            kafka: self.kafka.broker.clone(),
        }
    }
}

/// Runs until a signal, or until a service stops on its own (an error), or the broker
/// cannot be kept running (the supervisor then cancels `shutdown`): then stops the rest.
/// The first error a service ended with.
async fn wait_for_services(
    services: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &CancellationToken,
) -> Option<anyhow::Error> {
    let mut first_error = None;
    while let Some(joined) = services.join_next().await {
        services_ended(joined, &mut first_error);
        shutdown.cancel();
    }
    first_error
}

/// Logs a service's end if it was an error, and keeps the first.
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
