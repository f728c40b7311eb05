//! No secret is printed by `--help`: database URLs with passwords, Kafka options (which
//! carry SASL passwords), SMTP passwords, webhook secrets and operator tokens set in the environment stay
//! out of every command's help.

use std::process::Command;

const PLANTED: [(&str, &str); 6] = [
    ("OPENORDER_DATABASE_URL", "postgres://app:S3CRET-DB@db/x"),
    ("OPENORDER_KAFKA_OPTION", "sasl.password=S3CRET-SASL"),
    ("OPENORDER_SMTP_PASSWORD", "S3CRET-SMTP"),
    ("OPENORDER_WEBHOOK_SECRET", "S3CRET-HOOK"),
    ("OPENORDER_OPERATOR_TOKEN", "S3CRET-OPERATOR"),
    (
        "OPENORDER_CHAOS_POSTGRES_URL",
        "postgres://ops:S3CRET-CHAOS@db/y",
    ),
];

#[test]
fn no_command_prints_a_secret_from_the_environment_in_its_help() {
    for command in [
        vec!["--help"],
        vec!["up", "--help"],
        vec!["order-service", "--help"],
        vec!["inventory-service", "--help"],
        vec!["notification-service", "--help"],
        vec!["dlt", "--help"],
        vec!["status", "--help"],
        vec!["token", "new", "--help"],
        vec!["bench", "--help"],
        vec!["chaos", "--help"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_openorder"))
            .args(&command)
            .envs(PLANTED)
            .output()
            .expect("openorder runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{command:?}: {text}");
        assert!(!text.is_empty());
        for (name, value) in PLANTED {
            let secret = value
                .split(['=', ':', '@'])
                .find(|p| p.starts_with("S3CRET"))
                .unwrap();
            assert!(
                !text.contains(secret),
                "`openorder {}` printed {name}'s secret: {text}",
                command.join(" ")
            );
        }
    }
}
