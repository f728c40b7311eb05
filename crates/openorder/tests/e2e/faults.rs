//! The faults real machines have, beyond crashes: a disk that fills up under the services'
//! databases and the embedded broker while orders arrive, and a database or broker that is
//! away when a service starts. What must hold: a 202 only for an order that was committed,
//! no order id answered twice, everything accepted decided once space returns (without a
//! restart); a starting service answers at once, says what it waits for, and stops at once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::support;
use crate::support::{free_port, temp_dir, UpPorts, UpProcess};
use serde_json::Value;

/// A small file system (tmpfs; the tests run as root, as CI does), unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = temp_dir("small-disk");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount(8) runs");
        assert!(
            status.success(),
            "mounting a {size} tmpfs at {} failed: the storage-fault tests need root",
            dir.display()
        );
        Self(dir)
    }

    /// Fills the disk: a file written until the disk refuses.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while let Ok(n) = filler.write(&chunk) {
            if n == 0 {
                break;
            }
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn post(http: &reqwest::Client, base: &str) -> (u16, Value) {
    let response = http
        .post(format!("{base}/api/orders"))
        .json(&serde_json::json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Waits until order `id` exists and has left PENDING (at most `bound`).
async fn decided(http: &reqwest::Client, base: &str, id: i64, bound: Duration) -> String {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let response = http
            .get(format!("{base}/api/orders/{id}"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() && body["status"] != "PENDING" {
            return body["status"].as_str().unwrap_or_default().to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} answered 202 is {status} {body} after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_answered_202_while_the_disk_was_full_all_exist_and_are_decided_once_space_returns_without_a_restart(
) {
    let disk = SmallDisk::mount("96m");
    let data = disk.0.join("data");
    let up = UpProcess::start(&data, &UpPorts::free().expect("free ports")).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = up.order_url.clone();
    let mut accepted = Vec::new();
    for _ in 0..20 {
        let (status, body) = post(&http, &base).await;
        assert_eq!(status, 202, "{body}");
        accepted.push(body["orderId"].as_i64().unwrap());
    }

    disk.fill();
    // Four clients post for five seconds against the full disk.
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (http, base) = (http.clone(), base.clone());
        clients.spawn(async move {
            let mut answers = Vec::new();
            let until = tokio::time::Instant::now() + Duration::from_secs(5);
            while tokio::time::Instant::now() < until {
                answers.push(post(&http, &base).await);
            }
            answers
        });
    }
    let mut refused = 0;
    while let Some(answers) = clients.join_next().await {
        for (status, body) in answers.unwrap() {
            match status {
                202 => accepted.push(body["orderId"].as_i64().unwrap()),
                503 => {
                    refused += 1;
                    let kind = body["type"].as_str().unwrap_or_default();
                    assert!(
                        kind.starts_with("/problems/storage-") || kind == "/problems/busy",
                        "a refusal names the storage fault: {body}"
                    );
                }
                other => panic!("answered {other} on a full disk: {body}"),
            }
        }
    }
    assert!(refused > 0, "a full disk refused nothing");
    let ids: HashSet<i64> = accepted.iter().copied().collect();
    assert_eq!(ids.len(), accepted.len(), "an order id was answered twice");

    // The failed commits are counted (a full disk lets some commits through: SQLite
    // rewrites its WAL from the start after a checkpoint without growing it).
    let failed = support::metric(
        &http,
        &base,
        "openorder_storage_commit_failures_total{fault=\"full\"}",
    )
    .await
    .unwrap_or(0);
    assert!(failed > 0, "no failed commit counted on /metrics");

    disk.free();
    // Space is back: the same processes take orders again and decide every one accepted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let next = loop {
        let (status, body) = post(&http, &base).await;
        if status == 202 {
            break body["orderId"].as_i64().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still refused 60 s after space returned: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(!ids.contains(&next), "order id {next} was answered before");
    accepted.push(next);
    for id in &accepted {
        let status = decided(&http, &base, *id, Duration::from_secs(90)).await;
        assert_eq!(status, "CONFIRMED", "order {id}");
    }
    support::wait_ready(&http, &base).await;
    up.stop();
}

/// A process killed when the test ends, passed or failed.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// One service alone ([`support::standalone`]), killed when the test ends.
fn standalone(
    service: &str,
    listen: &str,
    bootstrap: &str,
    database: &str,
    log: &Path,
) -> KillOnDrop {
    KillOnDrop(support::standalone(
        service, listen, bootstrap, database, log,
    ))
}

/// What a starting service must do while `waits_for` is away: live at once, ready 503
/// naming it, a log line saying so within 5 s.
async fn answers_while_waiting(base: &str, log: &Path, waits_for: &str) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let live = loop {
        if let Ok(r) = http.get(format!("{base}/health/live")).send().await {
            break r.status().as_u16();
        }
        assert!(started.elapsed() < Duration::from_secs(3), "no answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(live, 200);
    // Ready is 503 throughout; it names what start-up waits for once it got that far
    // (connecting a SQLite file comes first, and is quick).
    loop {
        let ready = http
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status().as_u16(), 503);
        let body: Value = ready.json().await.unwrap();
        let waiting = body["checks"]["startup"]["waiting"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if waiting.contains(waits_for) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not waiting for {waits_for} after 5 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let order = http
        .post(format!("{base}/api/orders"))
        .json(&serde_json::json!({"userId": 1, "items": [{"sku": "ABC-001", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status().as_u16(), 503);
    assert!(order.headers().contains_key("retry-after"));
    let deadline = started + Duration::from_secs(5);
    loop {
        let said = std::fs::read_to_string(log).unwrap_or_default();
        if said.contains(&format!("waiting for {waits_for}")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line about {waits_for} within 5 s:\n{said}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM: exit 0 within a second.
fn stops_at_once(child: &mut Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("still running 5 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?} to stop",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_broker_is_away_at_start_answers_at_once_says_why_and_is_ready_once_it_appears(
) {
    let dir = temp_dir("broker-away");
    let broker = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.join("order-service.log");
    let database = format!("sqlite://{}/order.db", dir.display());
    let mut service = standalone(
        "order-service",
        &format!("127.0.0.1:{port}"),
        &broker,
        &database,
        &log,
    );
    answers_while_waiting(&base, &log, "the Kafka brokers").await;
    // The broker appears: the service becomes ready by itself.
    let mut broker = support::TestBroker::start_tansu_at(&broker).await;
    support::wait_ready(&reqwest::Client::new(), &base).await;
    stops_at_once_or_in_its_bound(&mut service.0);
    broker.kill();
}

/// A service that started stops within its shutdown bound (it has work to finish); exit 0.
fn stops_at_once_or_in_its_bound(child: &mut Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_broker_is_away_at_start_stops_at_once_on_sigterm() {
    let dir = temp_dir("broker-away-stop");
    let port = free_port();
    let log = dir.join("order-service.log");
    let mut service = standalone(
        "order-service",
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", free_port()),
        &format!("sqlite://{}/order.db", dir.display()),
        &log,
    );
    answers_while_waiting(
        &format!("http://127.0.0.1:{port}"),
        &log,
        "the Kafka brokers",
    )
    .await;
    stops_at_once(&mut service.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_postgres_is_away_at_start_answers_at_once_says_why_and_stops_at_once() {
    let dir = temp_dir("postgres-away");
    let port = free_port();
    let log = dir.join("inventory-service.log");
    let mut service = standalone(
        "inventory-service",
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", free_port()),
        &format!(
            "postgres://openorder:openorder@127.0.0.1:{}/postgres",
            free_port()
        ),
        &log,
    );
    answers_while_waiting(&format!("http://127.0.0.1:{port}"), &log, "the database").await;
    stops_at_once(&mut service.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_bound_beyond_loopback_without_authentication_is_refused_before_anything_is_contacted(
) {
    let dir = temp_dir("open-bind");
    let log = dir.join("order-service.log");
    let mut service = standalone(
        "order-service",
        &format!("0.0.0.0:{}", free_port()),
        // Neither of these answers: the refusal must not wait for them.
        &format!("127.0.0.1:{}", free_port()),
        &format!(
            "postgres://openorder:openorder@127.0.0.1:{}/postgres",
            free_port()
        ),
        &log,
    );
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = service.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running: it waited for a dependency before refusing"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("beyond loopback"), "{said}");
}

/// Runs `sql` as PostgreSQL's administrator (the test server's URL).
async fn as_admin(sql: &str) {
    let url = support::external("OPENORDER_TEST_POSTGRES_URL").expect("PostgreSQL is configured");
    sqlx::any::install_default_drivers();
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(sql).execute(&mut admin).await.unwrap();
    let _ = sqlx::Connection::close(admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_answered_202_while_postgres_connections_were_killed_mid_commit_and_the_database_was_read_only_all_exist_and_are_decided(
) {
    let dir = temp_dir("postgres-faults");
    let mut databases = Vec::new();
    for service in ["order-service", "inventory-service", "notification-service"] {
        match support::database_url(support::DbKind::Postgres, &dir, service).await {
            Some(url) => databases.push(url),
            None => return eprintln!("skipped: no PostgreSQL"),
        }
    }
    let order_db = databases[0]
        .rsplit_once('/')
        .map(|(_, name)| name.split('?').next().unwrap_or(name).to_string())
        .unwrap();
    let options = support::StackOptions {
        databases: Some([
            databases[0].clone(),
            databases[1].clone(),
            databases[2].clone(),
        ]),
        ..Default::default()
    };
    let Some(stack) = support::Stack::spawn(
        support::BrokerKind::Tansu,
        support::DbKind::Postgres,
        options,
    )
    .await
    else {
        return eprintln!("skipped: no PostgreSQL");
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = stack.order_url.clone();
    stack.set_stock("ABC-001", 1_000_000).await;

    // Four clients post for six seconds while order-service's database is made to fail.
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (http, base) = (http.clone(), base.clone());
        clients.spawn(async move {
            let mut answers = Vec::new();
            let until = tokio::time::Instant::now() + Duration::from_secs(6);
            while tokio::time::Instant::now() < until {
                answers.push(post(&http, &base).await);
            }
            answers
        });
    }
    let kill = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{order_db}' AND pid <> pg_backend_pid()"
    );
    // Connections killed, mid-commit or not, every 300 ms for two seconds (the fault's
    // rhythm while the clients post, not a wait for anything)…
    for _ in 0..7 {
        as_admin(&kill).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // …then the database read-only (new sessions; the old ones are killed) until an order
    // posted here is refused as such (the clients post meanwhile).
    as_admin(&format!(
        "ALTER DATABASE {order_db} SET default_transaction_read_only = on"
    ))
    .await;
    as_admin(&kill).await;
    let mut probed = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = post(&http, &base).await;
        let read_only = status == 503 && body["type"] == "/problems/storage-read-only";
        probed.push((status, body));
        if read_only {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no order refused as read-only in 30 s: {:?}",
            probed.last()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    as_admin(&format!(
        "ALTER DATABASE {order_db} RESET default_transaction_read_only"
    ))
    .await;
    as_admin(&kill).await;

    let mut accepted = Vec::new();
    let mut refused = HashSet::new();
    let mut every = vec![probed];
    while let Some(answers) = clients.join_next().await {
        every.push(answers.unwrap());
    }
    for answers in every {
        for (status, body) in answers {
            match status {
                202 => accepted.push(body["orderId"].as_i64().unwrap()),
                503 => {
                    let kind = body["type"].as_str().unwrap_or_default().to_string();
                    assert!(
                        kind.starts_with("/problems/storage-") || kind == "/problems/busy",
                        "a refusal names the storage fault: {body}"
                    );
                    refused.insert(kind);
                }
                other => panic!("answered {other}: {body}"),
            }
        }
    }
    assert!(
        refused.contains("/problems/storage-read-only"),
        "the read-only database was not reported as such: {refused:?}"
    );
    let ids: HashSet<i64> = accepted.iter().copied().collect();
    assert_eq!(ids.len(), accepted.len(), "an order id was answered twice");
    assert!(!accepted.is_empty());
    for id in &accepted {
        let status = decided(&http, &base, *id, Duration::from_secs(90)).await;
        assert_eq!(status, "CONFIRMED", "order {id}");
    }
    let (status, body) = post(&http, &base).await;
    assert_eq!(status, 202, "{body}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stalls_is_logged_when_it_stops_and_when_it_answers_again_and_status_answers_meanwhile(
) {
    let mut broker = support::TestBroker::start_tansu_with_env(&[]).await;
    let dir = temp_dir("broker-stall");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.join("order-service.log");
    let mut service = standalone(
        "order-service",
        &format!("127.0.0.1:{port}"),
        &broker.bootstrap,
        &format!("sqlite://{}/order.db", dir.display()),
        &log,
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    support::wait_ready(&http, &base).await;
    let pid = broker.pid().expect("the embedded broker's pid").to_string();
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([format!("-{name}"), pid.clone()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("STOP");
    let logged = |text: &str, within: Duration| {
        let (log, text) = (log.clone(), text.to_string());
        async move {
            let deadline = tokio::time::Instant::now() + within;
            loop {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                if said.contains(&text) {
                    return said.matches(&text).count();
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no log line '{text}' within {within:?}:\n{said}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    logged("the Kafka brokers do not answer", Duration::from_secs(15)).await;
    // Status answers within its bound, each time, and says what it could not read (asked
    // again for up to 10 s: a read begun before the stall may still have been answered).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let asked = std::time::Instant::now();
        let status = http
            .get(format!("{base}/admin/status"))
            .send()
            .await
            .unwrap();
        let took = asked.elapsed();
        assert_eq!(status.status().as_u16(), 200);
        assert!(took < Duration::from_secs(4), "/admin/status took {took:?}");
        let body: Value = status.json().await.unwrap();
        let consumers = body["consumers"].as_array().cloned().unwrap_or_default();
        if consumers.iter().any(|c| c["error"].is_string()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a consumer's lag is reported as not read: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    signal("CONT");
    logged("the Kafka brokers answer again", Duration::from_secs(15)).await;
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        said.matches("the Kafka brokers do not answer").count(),
        1,
        "the stall is logged once:\n{said}"
    );
    stops_at_once_or_in_its_bound(&mut service.0);
    broker.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_its_broker_port_taken_exits_non_zero_with_the_brokers_own_reason() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut ports = UpPorts::free().expect("free ports");
    ports.broker = taken.local_addr().unwrap().port();
    let data = temp_dir("port-taken");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::from(support::up_command(&data, &ports)).output(),
    )
    .await
    .expect("up gives up within a minute")
    .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("cannot listen on") && said.contains(&ports.broker.to_string()),
        "up says why the broker could not start: {said}"
    );
    drop(taken);
}
