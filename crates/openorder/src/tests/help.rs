//! Each command's help: `-h` fits in one screen and shows what a first run needs, `--help`
//! lists every option, grouped under the heading of the subsystem it sets.

use clap::CommandFactory;

use crate::Cli;

/// The most lines `openorder <command> -h` may print: one screen.
const SCREEN: usize = 60;

/// Every command and subcommand of `openorder`, built, each with its path
/// (`openorder dlt list`); not clap's own `help` subcommands.
fn every_command() -> Vec<(String, clap::Command)> {
    fn walk(parent: &str, command: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        let path = format!("{parent} {}", command.get_name())
            .trim()
            .to_string();
        out.push((path.clone(), command.clone()));
        for sub in command
            .get_subcommands()
            .filter(|sub| sub.get_name() != "help")
        {
            walk(&path, sub, out);
        }
    }
    let mut cli = Cli::command();
    cli.build();
    let mut out = Vec::new();
    walk("", &cli, &mut out);
    out
}

/// The command at `openorder <path…>`.
fn command_at(path: &str) -> clap::Command {
    every_command()
        .into_iter()
        .find(|(p, _)| p == path)
        .map(|(_, command)| command)
        .unwrap_or_else(|| panic!("`{path}` is no command"))
}

/// Whether `help` lists the option `--long` (on its own line, as `--long <VALUE>`,
/// `--long` or `-x, --long`), not just names it in another's text.
fn lists(help: &str, long: &str) -> bool {
    let flag = format!("--{long}");
    help.lines().any(|line| {
        let line = line.trim_start();
        let line = match line.split_once(", ") {
            Some((short, rest)) if short.len() == 2 && short.starts_with('-') => rest,
            _ => line,
        };
        line.strip_prefix(&flag)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    })
}

#[test]
fn every_commands_short_help_fits_in_one_screen_and_its_long_help_lists_every_option() {
    let commands = every_command();
    assert!(commands.len() >= 15, "{} commands", commands.len());
    for (path, mut command) in commands {
        let short = command.render_help().to_string();
        let long = command.render_long_help().to_string();
        let lines = short.lines().count();
        assert!(
            lines <= SCREEN,
            "`{path} -h` prints {lines} lines, more than a screen ({SCREEN}):\n{short}"
        );
        for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
            if let Some(name) = arg.get_long() {
                assert!(lists(&long, name), "`{path} --help` does not list --{name}");
            }
        }
    }
}

#[test]
fn each_commands_short_help_keeps_what_a_first_run_needs() {
    let service = [
        "listen",
        "bootstrap-servers",
        "topic-prefix",
        "database-url",
        "log-format",
    ];
    let essentials: [(&str, &[&str]); 12] = [
        (
            "openorder up",
            &[
                "data-dir",
                "host",
                "broker-port",
                "order-port",
                "inventory-port",
                "notification-port",
                "console-port",
                "log-format",
            ],
        ),
        ("openorder order-service", &service),
        ("openorder inventory-service", &service),
        ("openorder notification-service", &service),
        (
            "openorder console",
            &[
                "listen",
                "order-url",
                "inventory-url",
                "notification-url",
                "operator-tokens-file",
                "bootstrap-servers",
            ],
        ),
        (
            "openorder dlt list",
            &["topic", "parked", "json", "class", "bootstrap-servers"],
        ),
        ("openorder dlt show", &["bootstrap-servers"]),
        (
            "openorder dlt replay",
            &[
                "offset",
                "order-id",
                "all",
                "dry-run",
                "patch",
                "rate",
                "bootstrap-servers",
            ],
        ),
        (
            "openorder bench",
            &[
                "rate",
                "duration",
                "broker",
                "bootstrap-servers",
                "postgres-url",
            ],
        ),
        (
            "openorder chaos",
            &["scenario", "broker", "bootstrap-servers", "postgres-url"],
        ),
        ("openorder status", &["order-url", "operator-token"]),
        ("openorder token new", &["name"]),
    ];
    for (path, flags) in essentials {
        let short = command_at(path).render_help().to_string();
        for flag in flags {
            assert!(lists(&short, flag), "`{path} -h` lacks --{flag}:\n{short}");
        }
    }
    // What a first run does without stays in `--help` only.
    let up = command_at("openorder up").render_help().to_string();
    for flag in [
        "kafka-sasl-password",
        "smtp-host",
        "retain-orders",
        "auto-redrive",
    ] {
        assert!(!lists(&up, flag), "`openorder up -h` lists --{flag}");
    }
}

/// A command's path and, per option, the heading it is listed under (`None`: no heading).
type Headings<'a> = (&'a str, &'a [(&'a str, Option<&'a str>)]);

#[test]
fn each_option_is_listed_under_the_heading_of_the_subsystem_it_sets() {
    let headings: [Headings; 4] = [
        (
            "openorder up",
            &[
                ("data-dir", None),
                ("console-port", None),
                ("console-tls-cert", Some("Console")),
                ("console-history-every", Some("Console")),
                ("bootstrap-servers", Some("Kafka connection")),
                ("kafka-sasl-username", Some("Kafka connection")),
                ("topic-partitions", Some("Kafka topics")),
                ("retry-attempts", Some("Kafka consumers")),
                ("max-in-flight-requests", Some("HTTP")),
                ("oidc-issuer", Some("Authentication")),
                ("shutdown-timeout", Some("Shutdown")),
                ("retain-dedupe", Some("Retention")),
                ("smtp-host", Some("E-mail")),
                ("webhook-allow-networks", Some("Webhooks")),
                ("sms-from", Some("SMS")),
                ("push-subject", Some("Web Push")),
                ("notify-batch", Some("Notifications")),
                ("templates-dir", Some("Notifications")),
                ("stuck-after", Some("Orders")),
                ("fail-sku", Some("Inventory")),
                ("auto-redrive", Some("Automatic redrive")),
            ],
        ),
        (
            "openorder inventory-service",
            &[
                ("listen", None),
                ("database-url", Some("Database")),
                ("retain-orders", Some("Retention")),
                ("seed-file", Some("Inventory")),
                ("auto-redrive-after", Some("Automatic redrive")),
            ],
        ),
        (
            "openorder dlt replay",
            &[
                ("offset", None),
                ("since", Some("Filter")),
                ("topic-prefix", Some("Kafka connection")),
            ],
        ),
        (
            "openorder chaos",
            &[
                ("orders", None),
                ("postgres-url", Some("Backend")),
                ("broker-stop-command", Some("Backend")),
            ],
        ),
    ];
    for (path, expected) in headings {
        let command = command_at(path);
        for (flag, heading) in expected {
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_long() == Some(*flag))
                .unwrap_or_else(|| panic!("`{path}` has no --{flag}"));
            assert_eq!(arg.get_help_heading(), *heading, "`{path}`'s --{flag}");
        }
    }
}
