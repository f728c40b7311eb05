//! `openorder`: the one binary. `up` runs everything on embedded defaults; each service
//! subcommand runs one service against an external broker and database.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

mod dlt;
mod slice;
mod status;
mod token;
mod up;

#[derive(Parser, Debug)]
#[command(
    name = "openorder",
    version,
    about = "Event-driven order processing on Kafka"
)]
struct Cli {
    /// How log lines are written: `text` for a person, `json` for a log collector (one
    /// object per line, with the `trace_id` and `span_id` of the span it was written in).
    #[arg(
        long,
        global = true,
        env = "OPENORDER_LOG_FORMAT",
        value_enum,
        default_value_t = platform::telemetry::LogFormat::Text
    )]
    log_format: platform::telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
// Parsed once, at start, and moved into the command it names: its size costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run everything: the embedded broker and all three services, SQLite under one data directory.
    Up(up::UpArgs),
    /// Run order-service alone (HTTP API on 8080).
    OrderService(OrderServiceArgs),
    /// Run inventory-service alone (admin HTTP on 8082).
    InventoryService(InventoryServiceArgs),
    /// Run notification-service alone (HTTP on 8083).
    NotificationService(NotificationServiceArgs),
    /// List, show and replay dead letters.
    Dlt(dlt::DltArgs),
    /// Consumer lag and outbox backlog of the running services.
    Status(status::StatusArgs),
    /// Fault-injection harness: real processes, real faults, invariants checked.
    Chaos(chaos::ChaosArgs),
    /// End-to-end throughput, latency and memory beside the broker's and HTTP's limits.
    Bench(bench::BenchArgs),
    /// Make operator tokens and the hash entries services accept them by.
    Token(token::TokenArgs),
    /// Run the console alone (browser UI on 8081) against any Kafka-API cluster and the services.
    Console(console::ConsoleArgs),
}

#[derive(Args, Debug)]
struct OrderServiceArgs {
    /// HTTP address to listen on.
    #[arg(long, env = "OPENORDER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    config: order_service::Config,
}

#[derive(Args, Debug)]
struct InventoryServiceArgs {
    /// HTTP address to listen on.
    #[arg(long, env = "OPENORDER_LISTEN", default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    #[command(flatten)]
    config: inventory_service::Config,
}

#[derive(Args, Debug)]
struct NotificationServiceArgs {
    /// HTTP address to listen on.
    #[arg(long, env = "OPENORDER_LISTEN", default_value = "127.0.0.1:8083")]
    listen: SocketAddr,
    #[command(flatten)]
    config: notification_service::Config,
}

impl Command {
    /// How traces name this process (unless `OTEL_SERVICE_NAME` does).
    fn service_name(&self) -> &'static str {
        match self {
            Command::Up(_) => "openorder",
            Command::OrderService(_) => "order-service",
            Command::InventoryService(_) => "inventory-service",
            Command::NotificationService(_) => "notification-service",
            _ => "openorder-cli",
        }
    }
}

async fn bind(address: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("Failed to listen on {address} for {what} (is the port in use?)"))
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(slice::shorten_this_threads_slice)
        .build()
        .context("Failed to start the Tokio runtime")?;
    // Parsed before the runtime starts: flags that name secret files read them here.
    let cli = Cli::parse();
    let result = runtime.block_on(run(cli));
    // The spans still queued go to the collector, for a second at most.
    platform::telemetry::flush(std::time::Duration::from_secs(1));
    // A blocking call abandoned at its stop deadline (a commit to a broker that is gone)
    // must not hold the exit: the runtime waits for it a moment only.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    platform::telemetry::init(cli.command.service_name(), cli.log_format);
    if let Err(err) = platform::fd_limit::raise() {
        tracing::warn!(%err, "could not raise the limit on open files; it stays as it was");
    }
    let shutdown = platform::shutdown::on_signal();
    let stop_bound = match &cli.command {
        Command::Up(args) => Some(args.stop.shutdown_timeout),
        Command::OrderService(args) => Some(args.config.core.stop.shutdown_timeout),
        Command::InventoryService(args) => Some(args.config.core.stop.shutdown_timeout),
        Command::NotificationService(args) => Some(args.config.core.stop.shutdown_timeout),
        _ => None,
    };
    let Some(bound) = stop_bound else {
        end_quietly_on_a_closed_pipe();
        return command(cli.command, shutdown).await;
    };
    // The last line of defence of the shutdown bound: every step of a stop is bounded on
    // its own, and if the whole still runs when the time is up, the process exits.
    let overdue = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            tokio::time::sleep(bound).await;
        }
    };
    tokio::select! {
        result = command(cli.command, shutdown) => result,
        () = overdue => {
            tracing::error!(
                "still stopping {} ms after the signal (--shutdown-timeout); exiting now",
                bound.as_millis()
            );
            std::process::exit(1);
        }
    }
}

/// A report piped into `head` ends quietly when the reader goes, as `ls` does, rather
/// than panicking on the broken pipe (Rust ignores SIGPIPE by default).
#[allow(unsafe_code)]
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: sets a signal's disposition back to the default; no handler is involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

async fn command(command: Command, shutdown: platform::CancellationToken) -> anyhow::Result<()> {
    match command {
        Command::Up(args) => up::run(args, shutdown).await,
        Command::OrderService(args) => {
            let listener = bind(args.listen, "order-service").await?;
            order_service::run(args.config, listener, shutdown).await
        }
        Command::InventoryService(args) => {
            let listener = bind(args.listen, "inventory-service").await?;
            inventory_service::run(args.config, listener, shutdown).await
        }
        Command::Dlt(args) => dlt::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Chaos(args) => chaos::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Token(args) => token::run(args),
        Command::Console(args) => {
            // Its settings first (a TLS certificate without its key is refused here).
            let console = console::Console::new(&args).await?;
            let listener = bind(args.listen, "the console").await?;
            println!(
                "OpenOrder console on {}://{}",
                console.scheme(),
                args.listen
            );
            console::serve(console, listener, shutdown).await
        }
        Command::NotificationService(args) => {
            let listener = bind(args.listen, "notification-service").await?;
            notification_service::run(args.config, listener, shutdown).await
        }
    }
}

#[cfg(test)]
mod tests;
