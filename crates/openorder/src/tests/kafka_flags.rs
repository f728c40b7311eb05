//! Each command takes the Kafka flags it uses and no others: the connection's for those
//! that only read or write topics (`dlt`, the console), none for those that reach no broker
//! (`status`, `token`), every one for the services and `up`.

use clap::CommandFactory;

use crate::Cli;

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
    dlt_takes_its_own_options_and_the_connections(&broker);
    status_and_token_reach_no_broker(&kafka);
    the_console_takes_the_connections_flags_and_none_of_the_services(&broker, &services_only);
    the_services_and_up_keep_every_flag(&kafka);
}

/// `dlt`: its own options, the connection's (`broker`), `--log-format` and `--help`.
fn dlt_takes_its_own_options_and_the_connections(broker: &[String]) {
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
}

/// `status` and `token` reach no broker: none of the `kafka` flags.
fn status_and_token_reach_no_broker(kafka: &[String]) {
    let reaching_no_broker: [&[&str]; 4] = [
        &["status"],
        &["token"],
        &["token", "new"],
        &["token", "hash"],
    ];
    for path in reaching_no_broker {
        let options = options_of(path);
        for flag in kafka {
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
}

/// The console reads topics: the connection's flags (`broker`), none of the services'.
fn the_console_takes_the_connections_flags_and_none_of_the_services(
    broker: &[String],
    services_only: &[&String],
) {
    let console = options_of(&["console"]);
    for flag in broker {
        assert!(console.contains(flag), "the console lacks {flag}");
    }
    for flag in services_only {
        assert!(!console.contains(flag), "the console takes {flag}");
    }
}

/// The services (and `up`) keep every flag of `kafka`, under the same names.
fn the_services_and_up_keep_every_flag(kafka: &[String]) {
    for service in [
        "up",
        "order-service",
        "inventory-service",
        "notification-service",
    ] {
        let options = options_of(&[service]);
        for flag in kafka {
            assert!(options.contains(flag), "{service} lost {flag}");
        }
    }
}
