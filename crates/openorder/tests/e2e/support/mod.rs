//! Test support: real brokers and databases, one fresh stack per test.
//!
//! - Brokers: the embedded Tansu broker (the `openorder-broker` binary, a fresh process and
//!   data directory per test) or Apache Kafka (`OPENORDER_TEST_KAFKA_BOOTSTRAP`, started by
//!   `scripts/test.sh`), isolated per test by a random topic and group prefix.
//! - Databases: SQLite (fresh files per test) or PostgreSQL (`OPENORDER_TEST_POSTGRES_URL`,
//!   a fresh database per service per test).
//!
//! Without those variables the external-broker tests fail with a message saying how to run
//! them (`scripts/test.sh`), unless `OPENORDER_TEST_SKIP_EXTERNAL=1` says to skip them.
//!
//! Ports, readiness, the broker's and the services' commands and the services in this
//! process are `harness`'s, as `openorder up`, `chaos` and `bench` use them.
//!
//! The stack and what it reads and writes are split by topic: [`broker`] (the broker of a
//! test), [`database`] (its databases), [`stack`] (the services in this process and their
//! HTTP APIs), [`records`] (records produced and read back), [`sentinels`] (records behind
//! others, to wait on events instead of time) and [`up`] (`openorder up` and one service as
//! child processes).

#![allow(dead_code)]

pub mod broker;
pub mod database;
pub mod issuer;
pub mod receivers;
pub mod records;
pub mod sentinels;
pub mod stack;
pub mod up;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

// Not every test binary uses each of these.
#[allow(unused_imports)]
pub use broker::{broker_exe, TestBroker};
#[allow(unused_imports)]
pub use database::database_url;
#[allow(unused_imports)]
pub use records::{groups_of, DltRecord};
#[allow(unused_imports)]
pub use sentinels::Sentinel;
#[allow(unused_imports)]
pub use stack::{Stack, StackOptions};
#[allow(unused_imports)]
pub use up::{standalone, up_command, UpProcess};

pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("openorder-test-{label}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[allow(unused_imports)] // Not every test binary starts `up`.
pub use harness::up::UpPorts;

/// The `openorder` binary under test.
fn openorder_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_openorder"))
}

/// A free loopback port (bound and released; good enough on a test machine).
pub fn free_port() -> u16 {
    harness::free_port().expect("a free loopback port")
}

pub fn external(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("OPENORDER_TEST_SKIP_EXTERNAL").as_deref() == Ok("1") => None,
        _ => panic!("{var} is not set: run the tests with scripts/test.sh, which starts Apache Kafka and PostgreSQL (or set OPENORDER_TEST_SKIP_EXTERNAL=1 to skip these tests)"),
    }
}

/// Log lines go through the test harness's capture, so passing tests stay quiet. And the
/// process may open as many files as the system allows (as every `openorder` command does):
/// one process runs the clients, databases and sockets of every end-to-end test.
pub fn init_tracing() {
    let _ = platform::fd_limit::raise();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rdkafka=off,librdkafka=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// The `GET /metrics` text of the service at `base_url`.
pub async fn metrics_text(http: &reqwest::Client, base_url: &str) -> String {
    http.get(format!("{base_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one series on the `GET /metrics` of the service at `base_url` (none when
/// the series is absent).
pub async fn metric(http: &reqwest::Client, base_url: &str, series: &str) -> Option<u64> {
    metrics_text(http, base_url)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

/// Waits until `base`'s `/health/ready` answers 200, for at most 60 s.
pub async fn wait_ready(http: &reqwest::Client, base: &str) {
    harness::wait_ready(http, base, Duration::from_secs(60))
        .await
        .unwrap_or_else(|err| panic!("{err:#}"));
}

/// Decodes the JSON body of the answer to `request` (of any status).
pub async fn json_of<T: serde::de::DeserializeOwned>(request: reqwest::RequestBuilder) -> T {
    request.send().await.unwrap().json().await.unwrap()
}

/// POSTs the order request `body` to the order-service at `order_url` (as a client of
/// `openorder up` does); returns the order's id (asserting 202).
pub async fn post_order_at(http: &reqwest::Client, order_url: &str, body: &Value) -> i64 {
    let response = http
        .post(format!("{order_url}/api/orders"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.unwrap()["orderId"]
        .as_i64()
        .unwrap()
}

/// A SKU no other test uses: `label` and 8 random hex digits.
pub fn unique_sku(label: &str) -> String {
    format!(
        "{label}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// An `order.created` event of `qty` of `sku` for order `order_id` (user 5, no contact), as
/// order-service writes it.
pub fn order_created(
    order_id: i64,
    event_id: uuid::Uuid,
    sku: &str,
    qty: i64,
) -> contracts::OrderCreated {
    contracts::OrderCreated {
        event_id,
        order_id,
        user_id: 5,
        items: vec![contracts::LineItem {
            sku: sku.to_string(),
            qty,
        }],
        created_at: chrono::Utc::now(),
        contact: None,
    }
}

/// [`order_created`] as the JSON of a record's value.
pub fn order_created_json(order_id: i64, event_id: uuid::Uuid, sku: &str, qty: i64) -> Vec<u8> {
    serde_json::to_vec(&order_created(order_id, event_id, sku, qty)).unwrap()
}

/// Which broker a test runs against.
#[derive(Clone, Copy, Debug)]
pub enum BrokerKind {
    Tansu,
    Kafka,
}

/// A backend matrix written once: one `#[tokio::test]` (multi-threaded, two workers) per
/// line, named as given, each running `$body(BrokerKind::$broker, DbKind::$db)`. For
/// example, in a module of `tests/e2e`:
///
/// ```text
/// crate::backends!(the_order_flow_holds {
///     the_order_flow_holds_on_tansu_with_sqlite => (Tansu, Sqlite),
///     the_order_flow_holds_on_apache_kafka_with_postgres => (Kafka, Postgres),
/// });
/// ```
#[macro_export]
macro_rules! backends {
    ($body:ident { $($name:ident => ($broker:ident, $db:ident)),+ $(,)? }) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $body(
                    $crate::support::BrokerKind::$broker,
                    $crate::support::DbKind::$db,
                )
                .await;
            }
        )+
    };
}

/// Which database the services use.
#[derive(Clone, Copy, Debug)]
pub enum DbKind {
    Sqlite,
    Postgres,
    /// PostgreSQL reached over TLS only, the server's certificate verified (`verify-full`).
    PostgresTls,
}

/// The partition a Java client puts `key` on among `partitions` ([`platform::kafka::partition_of`]).
pub fn java_partition(key: &[u8], partitions: i32) -> i32 {
    platform::kafka::partition_of(key, partitions)
}
