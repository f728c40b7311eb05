//! The command line against what documents and deploys it: every variable and flag that
//! `docker-compose.yml`, the systemd units and the docs name is one a command reads; the
//! Kafka flags each command takes are in [`kafka_flags`], and how each command's help reads
//! in [`help`].

mod help;
mod kafka_flags;

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
