//! No secret is printed by `--help`: database URLs with passwords, Kafka options (which
//! carry SASL passwords), SMTP passwords, webhook secrets, SMS auth tokens and operator tokens
//! set in the environment stay out of every command's help.

use std::process::Command;

use crate::support::external;

const PLANTED: [(&str, &str); 7] = [
    ("OPENORDER_DATABASE_URL", "postgres://app:S3CRET-DB@db/x"),
    ("OPENORDER_KAFKA_OPTION", "sasl.password=S3CRET-SASL"),
    ("OPENORDER_SMTP_PASSWORD", "S3CRET-SMTP"),
    ("OPENORDER_WEBHOOK_SECRET", "S3CRET-HOOK"),
    ("OPENORDER_SMS_AUTH_TOKEN", "S3CRET-SMS"),
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

/// A service run with secrets in its database URL, Kafka options and SASL password (on
/// Apache Kafka and PostgreSQL, most verbose logging): none of them reaches its log, its
/// status, its metrics or a problem body, nor the error it stops with when the database
/// cannot be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_status_metrics_or_problems_of_a_running_service() {
    let (Some(kafka), Some(pg)) = (
        external("OPENORDER_TEST_KAFKA_BOOTSTRAP"),
        external("OPENORDER_TEST_POSTGRES_URL"),
    ) else {
        return;
    };
    // The test server trusts loopback, so the planted password is accepted as any would be.
    let host = pg.rsplit_once('@').unwrap().1.rsplit_once('/').unwrap().0;
    let token = platform::auth::operators::new_token();
    let port = harness::free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let prefix = format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let entry = platform::auth::operators::Entry::for_token("ops", &token).line();
    let env = [
        (
            "OPENORDER_DATABASE_URL",
            format!("postgres://openorder:S3CRET-DB@{host}/postgres"),
        ),
        ("OPENORDER_BOOTSTRAP_SERVERS", kafka.clone()),
        ("OPENORDER_TOPIC_PREFIX", prefix),
        (
            "OPENORDER_KAFKA_OPTION",
            "client.rack=S3CRET-RACK-is-not-secret,sasl.password=S3CRET-SASL".into(),
        ),
        ("OPENORDER_OPERATOR_TOKEN_HASHES", entry),
        ("OPENORDER_LISTEN", format!("127.0.0.1:{port}")),
        ("RUST_LOG", "debug".into()),
    ];
    let log = std::env::temp_dir().join(format!("secrets-{}.log", uuid::Uuid::new_v4()));
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_openorder"))
        .arg("order-service")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    if let Err(err) = harness::wait_ready(&http, &base, std::time::Duration::from_secs(60)).await {
        panic!(
            "order-service did not start ({err:#}): {}",
            std::fs::read_to_string(&log).unwrap()
        );
    }
    let mut answers = String::new();
    let order = serde_json::json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 1}]});
    for request in [
        http.post(format!("{base}/api/orders")).json(&order),
        http.post(format!("{base}/api/orders")).body("{not json"),
        http.get(format!("{base}/api/orders/999999")),
        http.get(format!("{base}/admin/status")).bearer_auth(&token),
        http.get(format!("{base}/admin/status"))
            .bearer_auth("S3CRET-WRONG-TOKEN"),
        http.get(format!("{base}/metrics")),
    ] {
        let response = request.send().await.unwrap();
        answers.push_str(&response.text().await.unwrap());
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let failed = a_start_waiting_for_an_away_database_says_so(&kafka).await;
    assert!(
        failed.contains("openorder:***@127.0.0.1:1"),
        "the wait names the database: {failed}"
    );

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("order accepted"),
        "the log is the service's: {logged}"
    );
    for (what, text) in [
        ("log", &logged),
        ("answers", &answers),
        ("failed start", &failed),
    ] {
        for secret in [
            "S3CRET-DB",
            "S3CRET-SASL",
            "S3CRET-WRONG-TOKEN",
            token.as_str(),
        ] {
            assert!(!text.contains(secret), "the {what} show {secret}");
        }
    }
    let _ = std::fs::remove_file(log);
}

/// A start that waits for a database that is away: it says so, naming the database
/// without its password, until it is stopped. Returns what it said in 10 s at most.
async fn a_start_waiting_for_an_away_database_says_so(kafka: &str) -> String {
    let waiting_log = std::env::temp_dir().join(format!("secrets-{}.log", uuid::Uuid::new_v4()));
    let waiting_out = std::fs::File::create(&waiting_log).unwrap();
    let mut waiting = Command::new(env!("CARGO_BIN_EXE_openorder"))
        .arg("order-service")
        .env(
            "OPENORDER_DATABASE_URL",
            "postgres://openorder:S3CRET-DB@127.0.0.1:1/x",
        )
        .env("OPENORDER_BOOTSTRAP_SERVERS", kafka)
        .env("OPENORDER_LISTEN", "127.0.0.1:0")
        .stdout(waiting_out.try_clone().unwrap())
        .stderr(waiting_out)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let failed = loop {
        let said = std::fs::read_to_string(&waiting_log).unwrap_or_default();
        if said.contains("waiting for the database") || std::time::Instant::now() > deadline {
            break said;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let _ = Command::new("kill").arg(waiting.id().to_string()).status();
    let _ = waiting.wait();
    failed
}
