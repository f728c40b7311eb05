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
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every environment variable of every command, nested ones included.
    fn known_env_vars() -> Vec<String> {
        fn walk(command: &clap::Command, out: &mut Vec<String>) {
            for arg in command.get_arguments() {
                if let Some(env) = arg.get_env() {
                    out.push(env.to_string_lossy().into_owned());
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, out);
            }
        }
        let mut out = Vec::new();
        walk(&Cli::command(), &mut out);
        // And those of `openorder-broker` (a package of its own, which `up` starts), from
        // its flags' definitions.
        let broker = include_str!("../../openorder-broker/src/main.rs");
        for (_, rest) in broker
            .match_indices("env = \"")
            .map(|(i, _)| broker.split_at(i + 7))
        {
            if let Some((name, _)) = rest.split_once('"') {
                out.push(name.to_string());
            }
        }
        out
    }

    #[test]
    fn every_setting_in_docker_compose_is_one_the_services_read() {
        let compose = include_str!("../../../docker-compose.yml");
        let known = known_env_vars();
        let used: Vec<&str> = compose
            .lines()
            .filter_map(|line| line.trim().split_once(':').map(|(k, _)| k.trim()))
            .filter(|k| k.starts_with("OPENORDER_"))
            .collect();
        assert!(used.len() >= 6, "compose sets the services' variables");
        for name in used {
            assert!(
                known.iter().any(|k| k == name),
                "docker-compose.yml sets {name}, which no service reads"
            );
        }
    }

    /// The systemd units in `deploy/systemd/`.
    const UNITS: [(&str, &str); 4] = [
        (
            "openorder.service",
            include_str!("../../../deploy/systemd/openorder.service"),
        ),
        (
            "openorder-order.service",
            include_str!("../../../deploy/systemd/openorder-order.service"),
        ),
        (
            "openorder-inventory.service",
            include_str!("../../../deploy/systemd/openorder-inventory.service"),
        ),
        (
            "openorder-notification.service",
            include_str!("../../../deploy/systemd/openorder-notification.service"),
        ),
    ];

    #[test]
    fn every_setting_in_the_systemd_units_is_one_the_services_read_and_stops_fit_the_bound() {
        let known = known_env_vars();
        for (unit, text) in UNITS {
            let named: Vec<&str> = text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("OPENORDER_"))
                .collect();
            assert!(!named.is_empty(), "{unit} sets no variable");
            for name in named {
                assert!(
                    known.iter().any(|k| k == name),
                    "{unit} names {name}, which nothing reads"
                );
            }
            let setting = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .unwrap_or_else(|| panic!("{unit} has no {key}"))
                    .trim()
                    .to_string()
            };
            let stop = platform::shutdown::parse_duration(&setting("TimeoutStopSec=")).unwrap();
            let bound = setting("Environment=OPENORDER_SHUTDOWN_TIMEOUT=");
            let bound = platform::shutdown::parse_duration(&bound).unwrap();
            assert!(
                stop > bound,
                "{unit}: systemd must wait longer ({stop:?}) than the stop may take ({bound:?})"
            );
            assert_eq!(
                setting("KillMode="),
                "mixed",
                "{unit}: only the main process is signalled first"
            );
            // The command the unit runs exists.
            let command = setting("ExecStart=/usr/local/bin/openorder ");
            let sub = command.split_whitespace().next().unwrap();
            assert!(
                Cli::command()
                    .get_subcommands()
                    .any(|c| c.get_name() == sub),
                "{unit} runs `openorder {sub}`, which is no command"
            );
        }
    }

    /// README.md and every page of the book (docs/book/src), each with its path, read when
    /// the test runs; a page that includes a file (`{{#include ../../../BENCHMARKS.md}}`)
    /// documents what it includes.
    fn documentation() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = vec![root.join("README.md")];
        let mut dirs = vec![root.join("docs/book/src")];
        while let Some(dir) = dirs.pop() {
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()));
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension() == Some(std::ffi::OsStr::new("md")) {
                    files.push(path);
                }
            }
        }
        files
            .into_iter()
            .map(|path| {
                let mut text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
                while let Some(start) = text.find("{{#include ") {
                    let end = start + text[start..].find("}}").expect("an include ends with }}");
                    let target = text[start + "{{#include ".len()..end].trim();
                    let target = target.split(':').next().unwrap_or(target);
                    let included = path.parent().unwrap().join(target);
                    let body = std::fs::read_to_string(&included).unwrap_or_else(|err| {
                        panic!("{} includes {}: {err}", path.display(), included.display())
                    });
                    text.replace_range(start..end + "}}".len(), &body);
                }
                let name = path
                    .strip_prefix(&root)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                (name, text)
            })
            .collect()
    }

    #[test]
    fn every_variable_the_docs_document_is_one_the_services_read() {
        let known = known_env_vars();
        let mut in_configuration_page = 0;
        for (name, text) in documentation() {
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.len() > "OPENORDER_".len()
                    && word.starts_with("OPENORDER_")
                    && !word.starts_with("OPENORDER_TEST_")
                {
                    if name.ends_with("configuration.md") {
                        in_configuration_page += 1;
                    }
                    assert!(
                        known.iter().any(|k| k == word),
                        "{name} documents {word}, which no service reads"
                    );
                }
            }
        }
        assert!(
            in_configuration_page >= 15,
            "the book's configuration table lists the variables"
        );
    }

    /// Every long flag of every command (nested ones included), `--help` and `--version`,
    /// and those of `openorder-broker`, each named as its variable is
    /// (`OPENORDER_BROKER_MAINTAIN_EVERY`: `--maintain-every`).
    fn known_flags() -> Vec<String> {
        fn walk(command: &clap::Command, out: &mut Vec<String>) {
            for arg in command.get_arguments() {
                if let Some(long) = arg.get_long() {
                    out.push(format!("--{long}"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, out);
            }
        }
        let mut out = vec!["--help".to_string(), "--version".to_string()];
        walk(&Cli::command(), &mut out);
        let broker = include_str!("../../openorder-broker/src/main.rs");
        let prefix = "env = \"OPENORDER_BROKER_";
        for (i, _) in broker.match_indices(prefix) {
            if let Some((name, _)) = broker[i + prefix.len()..].split_once('"') {
                out.push(format!("--{}", name.to_lowercase().replace('_', "-")));
            }
        }
        out
    }

    #[test]
    fn every_flag_the_docs_document_is_one_a_command_takes() {
        let known = known_flags();
        let mut documented = 0;
        for (name, text) in documentation() {
            // Code spans that begin with a flag (the configuration tables' first column, and
            // the prose), outside code blocks, whose commands may be other programs'.
            let mut in_block = false;
            for line in text.lines() {
                if line.trim_start().starts_with("```") {
                    in_block = !in_block;
                    continue;
                }
                if in_block {
                    continue;
                }
                for span in line.split('`').skip(1).step_by(2) {
                    if !span.starts_with("--") {
                        continue;
                    }
                    let flag = span
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                        .next()
                        .unwrap_or(span);
                    documented += 1;
                    assert!(
                        known.iter().any(|k| k == flag),
                        "{name} documents {flag}, which no command takes"
                    );
                }
            }
        }
        assert!(documented >= 50, "the docs document the flags");
    }

    #[test]
    fn every_environment_variable_is_prefixed_with_openorder() {
        for name in known_env_vars() {
            assert!(name.starts_with("OPENORDER_"), "{name}");
        }
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The long options `openorder <path…> --help` lists: the command's own, the global
    /// `--log-format`, and `--help`.
    fn options_of(path: &[&str]) -> Vec<String> {
        let mut cli = Cli::command();
        cli.build();
        let mut command = &cli;
        for name in path {
            command = command
                .find_subcommand(name)
                .unwrap_or_else(|| panic!("`openorder {}` is no command", path.join(" ")));
        }
        let mut options: Vec<String> = command
            .get_arguments()
            .filter(|arg| !arg.is_positional() && !arg.is_hide_set())
            .filter_map(|arg| arg.get_long())
            .map(|long| format!("--{long}"))
            .collect();
        options.sort();
        options
    }

    /// The long options of one set of flags (`BrokerArgs`, `KafkaArgs`).
    fn flags_of<A: clap::Args>() -> Vec<String> {
        A::augment_args(clap::Command::new("flags"))
            .get_arguments()
            .filter_map(|arg| arg.get_long())
            .map(|long| format!("--{long}"))
            .collect()
    }

    #[test]
    fn each_command_takes_only_the_kafka_flags_it_uses() {
        let broker = flags_of::<platform::kafka::BrokerArgs>();
        let kafka = flags_of::<platform::kafka::KafkaArgs>();
        // What only a service's clients use (topic creation, consumers, retries).
        let services_only: Vec<&String> = kafka.iter().filter(|f| !broker.contains(f)).collect();
        for flag in ["--consume-batch", "--retry-attempts", "--topic-partitions"] {
            assert!(
                services_only.contains(&&flag.to_string()),
                "{flag} is a service's"
            );
        }
        for flag in [
            "--bootstrap-servers",
            "--topic-prefix",
            "--kafka-option",
            "--kafka-security-protocol",
        ] {
            assert!(
                broker.contains(&flag.to_string()),
                "{flag} is the connection's"
            );
        }

        // `dlt`: its own options, the connection's, `--log-format` and `--help`.
        let filter = [
            "--class",
            "--original-topic",
            "--since",
            "--until",
            "--order-ids",
            "--match",
        ];
        let list: Vec<&str> = ["--topic", "--json", "--parked"]
            .into_iter()
            .chain(filter)
            .collect();
        let replay: Vec<&str> = [
            "--offset",
            "--order-id",
            "--all",
            "--dry-run",
            "--force",
            "--max-replays",
            "--patch",
            "--rate",
            "--parked",
        ]
        .into_iter()
        .chain(filter)
        .collect();
        let dlt: [(&[&str], &[&str]); 3] = [
            (&["dlt", "list"], list.as_slice()),
            (&["dlt", "show"], &[]),
            (&["dlt", "replay"], replay.as_slice()),
        ];
        for (path, own) in dlt {
            let options = options_of(path);
            let mut expected: Vec<String> = own
                .iter()
                .chain(&["--log-format", "--help"])
                .map(|o| o.to_string())
                .chain(broker.iter().cloned())
                .collect();
            expected.sort();
            assert_eq!(
                options,
                expected,
                "`openorder {}` takes {} options",
                path.join(" "),
                options.len()
            );
            for flag in ["--consume-batch", "--retry-attempts", "--topic-partitions"] {
                assert!(
                    !options.contains(&flag.to_string()),
                    "{path:?} takes {flag}"
                );
            }
        }
        assert_eq!(options_of(&["dlt", "list"]).len(), 9 + broker.len() + 2);

        // `status` and `token` reach no broker.
        let reaching_no_broker: [&[&str]; 4] = [
            &["status"],
            &["token"],
            &["token", "new"],
            &["token", "hash"],
        ];
        for path in reaching_no_broker {
            let options = options_of(path);
            for flag in &kafka {
                assert!(
                    !options.contains(flag),
                    "`openorder {}` takes {flag}",
                    path.join(" ")
                );
            }
        }
        assert!(!options_of(&["token"]).contains(&"--bootstrap-servers".to_string()));
        assert_eq!(options_of(&["token"]), ["--help", "--log-format"]);
        assert_eq!(
            options_of(&["status"]).len(),
            8,
            "{:?}",
            options_of(&["status"])
        );

        // The console reads topics: the connection's flags, none of the services'.
        let console = options_of(&["console"]);
        for flag in &broker {
            assert!(console.contains(flag), "the console lacks {flag}");
        }
        for flag in &services_only {
            assert!(!console.contains(flag), "the console takes {flag}");
        }

        // The services (and `up`) keep every flag, under the same names.
        for service in [
            "up",
            "order-service",
            "inventory-service",
            "notification-service",
        ] {
            let options = options_of(&[service]);
            for flag in &kafka {
                assert!(options.contains(flag), "{service} lost {flag}");
            }
        }
    }
}
