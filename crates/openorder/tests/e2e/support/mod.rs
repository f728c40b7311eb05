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

#![allow(dead_code)]

pub mod issuer;
pub mod receivers;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use platform::db::DatabaseArgs;

use platform::kafka::KafkaArgs;
use platform::CancellationToken;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

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

/// A running broker for one test.
pub struct TestBroker {
    pub bootstrap: String,
    child: Option<Child>,
    /// The embedded broker's data directory (kept across [`TestBroker::restart`]).
    data_dir: Option<PathBuf>,
}

impl TestBroker {
    /// None when the broker is external and the run skips external tests.
    pub async fn start(kind: BrokerKind) -> Option<Self> {
        match kind {
            BrokerKind::Kafka => external("OPENORDER_TEST_KAFKA_BOOTSTRAP").map(|bootstrap| Self {
                bootstrap,
                child: None,
                data_dir: None,
            }),
            BrokerKind::Tansu => Some(Self::start_tansu_with_env(&[]).await),
        }
    }

    /// The embedded broker, with these environment variables set (its flags' twins).
    pub async fn start_tansu_with_env(env: &[(&str, &str)]) -> Self {
        let dir = temp_dir("tansu");
        let address = format!("127.0.0.1:{}", free_port());
        let child = spawn_tansu(&dir, &address, env).await;
        Self {
            bootstrap: address,
            child: Some(child),
            data_dir: Some(dir),
        }
    }

    /// The embedded broker on `address` (e.g. one a service was told to wait for).
    pub async fn start_tansu_at(address: &str) -> Self {
        let dir = temp_dir("tansu");
        let child = spawn_tansu(&dir, address, &[]).await;
        Self {
            bootstrap: address.to_string(),
            child: Some(child),
            data_dir: Some(dir),
        }
    }

    /// Kills the embedded broker (SIGKILL: the harshest way for a broker to go away).
    pub fn kill(&mut self) {
        let child = self
            .child
            .as_mut()
            .expect("only the embedded broker can be killed");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The embedded broker's data directory (None for an external broker).
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dir.as_deref()
    }

    /// The embedded broker's process id (None for an external broker).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the embedded broker again on the same address and data.
    pub async fn restart(&mut self) {
        let dir = self
            .data_dir
            .clone()
            .expect("only the embedded broker restarts");
        self.child = Some(spawn_tansu(&dir, &self.bootstrap, &[]).await);
    }
}

/// The `openorder-broker` binary: a package of its own (it cannot link sqlx), built beside
/// `openorder` by `cargo build --workspace`, which `scripts/test.sh` runs first.
pub fn broker_exe() -> PathBuf {
    harness::broker::broker_exe(openorder_exe()).unwrap_or_else(|err| panic!("{err:#}"))
}

async fn spawn_tansu(dir: &std::path::Path, address: &str, env: &[(&str, &str)]) -> Child {
    let child =
        harness::broker::broker_command(&broker_exe(), dir, address, &dir.join("broker.log"))
            .expect("the broker's log opens")
            .envs(env.iter().copied())
            .spawn()
            .expect("the openorder-broker binary starts");
    platform::kafka::wait_until_ready(address, Duration::from_secs(30))
        .await
        .expect("the embedded broker becomes ready");
    child
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A database URL for `service` of one test.
pub async fn database_url(kind: DbKind, dir: &std::path::Path, service: &str) -> Option<String> {
    match kind {
        DbKind::Sqlite => Some(format!("sqlite://{}/{service}.db", dir.display())),
        DbKind::Postgres | DbKind::PostgresTls => {
            let admin_url = match kind {
                DbKind::PostgresTls => external("OPENORDER_TEST_POSTGRES_TLS_URL")?,
                _ => external("OPENORDER_TEST_POSTGRES_URL")?,
            };
            let (admin_url, query) = match admin_url.split_once('?') {
                Some((url, query)) => (url.to_string(), format!("?{query}")),
                None => (admin_url, String::new()),
            };
            let name = format!(
                "t_{}_{}",
                service.replace('-', "_"),
                uuid::Uuid::new_v4().simple()
            );
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&format!("{admin_url}{query}"))
                .await
                .expect("PostgreSQL reachable");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .expect("test database created");
            pool.close().await;
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or(&admin_url);
            Some(format!("{base}/{name}{query}"))
        }
    }
}

/// What a stack is started with beyond the defaults.
#[derive(Clone, Debug)]
pub struct StackOptions {
    pub retry_attempts: u32,
    pub retry_backoff_ms: u64,
    pub notify: notification_service::NotifyArgs,
    /// Every service's authentication (none by default: the services listen on loopback).
    pub auth: platform::auth::AuthArgs,
    /// Reach the broker at this address with these settings (TLS, SASL) instead.
    pub kafka_security: Option<(String, platform::kafka::KafkaSecurityArgs)>,
    /// What every service prunes, and how often.
    pub retention: platform::retention::RetentionArgs,
    /// The databases of order-, inventory- and notification-service, as made elsewhere
    /// (instead of fresh ones of the stack's kind).
    pub databases: Option<[String; 3]>,
    /// inventory-service's automatic redrive policy (off by default).
    pub auto_redrive: inventory_service::AutoRedriveArgs,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            retry_attempts: 3,
            retry_backoff_ms: 100,
            notify: notification_service::NotifyArgs::defaults(),
            auth: Default::default(),
            kafka_security: None,
            retention: Default::default(),
            databases: None,
            auto_redrive: Default::default(),
        }
    }
}

/// The three services running in this process against one broker, fresh topics, fresh databases.
pub struct Stack {
    pub broker: TestBroker,
    pub kafka: KafkaArgs,
    pub order_url: String,
    pub inventory_url: String,
    pub notification_url: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    services: Option<Services>,
}

/// The services of a stack, on a runtime of their own (as `openorder` runs them): when it
/// ends, a blocking call they abandoned at their stop deadline (a commit to a broker that
/// is gone, which librdkafka waits on without end) is left behind after 200 ms, as `main`
/// leaves it, instead of holding the test's runtime (and so the test) for ever.
type Services = std::thread::JoinHandle<Vec<anyhow::Result<()>>>;

fn listener() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

/// Runs `services` (each on its listener: order-, inventory- and notification-service's)
/// on a runtime of their own in a thread, until `shutdown`.
fn run_services(
    services: harness::in_process::Services,
    listeners: [std::net::TcpListener; 3],
    shutdown: CancellationToken,
) -> Services {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the services");
        let results = runtime.block_on(async move {
            let mut running = JoinSet::new();
            let listeners =
                listeners.map(|listener| TcpListener::from_std(listener).expect("a listener"));
            services.spawn(listeners, &shutdown, &mut running);
            let mut results = Vec::new();
            while let Some(result) = running.join_next().await {
                results.push(result.expect("service task"));
            }
            results
        });
        runtime.shutdown_timeout(Duration::from_millis(200));
        results
    })
}

/// A stack dropped without [`Stack::stop`] (a test that failed) stops its services.
impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Stack {
    /// None when this combination needs an external system the run skips.
    pub async fn spawn(broker: BrokerKind, db: DbKind, options: StackOptions) -> Option<Self> {
        init_tracing();
        let kind = broker;
        let broker = TestBroker::start(broker).await?;
        let dir = temp_dir("stack");
        let prefix = format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut kafka = KafkaArgs::with_defaults(&broker.bootstrap, &prefix);
        kafka.retry_attempts = options.retry_attempts;
        kafka.retry_backoff_ms = options.retry_backoff_ms;
        kafka.retry_backoff_multiplier = 2.0;
        if let Some((bootstrap, security)) = &options.kafka_security {
            kafka.broker.bootstrap_servers = Some(bootstrap.clone());
            kafka.broker.security = security.clone();
        }
        // As `openorder up` does with the embedded broker.
        if let BrokerKind::Tansu = kind {
            kafka.partition_assignment = platform::kafka::PartitionAssignment::All;
        }
        let database = |url: String| DatabaseArgs {
            retention: options.retention.clone(),
            database_url: url,
            database_max_connections: 8,
        };
        let [order_url, inventory_url, notification_url] = match options.databases.clone() {
            Some(urls) => urls,
            None => [
                database_url(db, &dir, "order").await?,
                database_url(db, &dir, "inventory").await?,
                database_url(db, &dir, "notification").await?,
            ],
        };
        let databases = [
            database(order_url),
            database(inventory_url),
            database(notification_url),
        ];

        let shutdown = CancellationToken::new();
        let (order_listener, order_url) = listener();
        let (inventory_listener, inventory_url) = listener();
        let (notification_listener, notification_url) = listener();
        // The tests' webhook receivers listen on loopback: opened for both services.
        let loopback = platform::config::WebhookDestinationArgs {
            webhook_allow_networks: vec![
                contracts::destinations::Network::parse("127.0.0.0/8").unwrap()
            ],
        };
        let http = platform::http::HttpArgs {
            auth: options.auth.clone(),
            ..Default::default()
        };
        let mut notify = options.notify.clone();
        if notify
            .webhook
            .destinations
            .webhook_allow_networks
            .is_empty()
        {
            notify.webhook.destinations = loopback.clone();
        }
        let mut services = harness::in_process::services(
            &kafka,
            databases,
            &http,
            &platform::shutdown::StopArgs::default(),
            &notify,
            "FAIL",
            "FLAKY",
        );
        services.order.webhooks = loopback;
        services.inventory.auto_redrive = options.auto_redrive.clone();
        let services = run_services(
            services,
            [order_listener, inventory_listener, notification_listener],
            shutdown.clone(),
        );
        let stack = Self {
            broker,
            kafka,
            order_url,
            inventory_url,
            notification_url,
            http: reqwest::Client::new(),
            shutdown,
            services: Some(services),
        };
        for url in [
            &stack.order_url,
            &stack.inventory_url,
            &stack.notification_url,
        ] {
            wait_ready(&stack.http, url).await;
        }
        Some(stack)
    }

    /// Stops every service and checks that each stopped cleanly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let services = self.services.take().expect("running");
        let results = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || services.join()),
        )
        .await
        .expect("the services stop within 30 s")
        .expect("joined")
        .expect("the services' thread did not panic");
        for result in results {
            result.expect("service stopped cleanly");
        }
    }

    pub fn topics(&self) -> contracts::Topics {
        self.kafka.topics()
    }

    /// POSTs an order; returns its id (asserting 202).
    pub async fn post_order(&self, user_id: i64, items: &[(&str, i64)]) -> i64 {
        let items: Vec<Value> = items
            .iter()
            .map(|(sku, qty)| serde_json::json!({"sku": sku, "qty": qty}))
            .collect();
        self.post_order_body(serde_json::json!({"userId": user_id, "items": items}))
            .await
    }

    /// POSTs an order request body as given; returns the order's id (asserting 202).
    pub async fn post_order_body(&self, body: Value) -> i64 {
        let response = self
            .http
            .post(format!("{}/api/orders", self.order_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let location = response.headers()["location"].to_str().unwrap().to_string();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "PENDING");
        let id = body["orderId"].as_i64().unwrap();
        assert_eq!(location, format!("/api/orders/{id}"));
        id
    }

    /// GETs `url` and decodes its JSON body (of any status).
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, url: String) -> T {
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn order(&self, id: i64) -> Value {
        self.get_json(format!("{}/api/orders/{id}", self.order_url))
            .await
    }

    /// Waits until the order leaves PENDING; returns it.
    pub async fn settled_order(&self, id: i64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let order = self.order(id).await;
            if order["status"] != "PENDING" {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {id} still PENDING after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn notifications(&self, order_id: i64) -> Vec<Value> {
        self.get_json(format!(
            "{}/api/notifications?orderId={order_id}",
            self.notification_url
        ))
        .await
    }

    /// Waits until the order has at least one notification; returns them.
    pub async fn wait_notifications(&self, order_id: i64) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.notifications(order_id).await;
            if !found.is_empty() {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no notification for order {order_id} in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stock(&self, sku: &str) -> Value {
        self.get_json(format!("{}/api/inventory/{sku}", self.inventory_url))
            .await
    }

    pub async fn set_stock(&self, sku: &str, available: i64) {
        let response = self
            .http
            .put(format!("{}/api/inventory/{sku}", self.inventory_url))
            .json(&serde_json::json!({"available": available}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// Produces a raw record, as a misbehaving or duplicating producer would; returns where
    /// it went (partition, offset).
    pub async fn produce_raw(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> (i32, i64) {
        self.produce_with(topic, Some(key), payload, headers, &[])
            .await
    }

    /// Produces `record` (as read back) again to `topic` under `key`, headers and all: a
    /// redelivery or a duplicate publish.
    pub async fn produce_again(&self, topic: &str, key: &str, record: &DltRecord) {
        let headers: Vec<(String, String)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.produce_raw(topic, key, &record.payload, &headers)
            .await;
    }

    /// Produces one record, with or without a key, with extra producer settings (e.g. a
    /// larger `message.max.bytes`, as a Java client configured for large records has);
    /// returns where it went (partition, offset).
    pub async fn produce_with(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        headers: &[(&str, &str)],
        settings: &[(&str, &str)],
    ) -> (i32, i64) {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.broker.bootstrap);
        for (k, v) in settings {
            config.set(*k, *v);
        }
        let producer: FutureProducer = config.create().unwrap();
        let mut hs = OwnedHeaders::new();
        for (k, v) in headers {
            hs = hs.insert(rdkafka::message::Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut record = FutureRecord::<str, [u8]>::to(topic)
            .payload(payload)
            .headers(hs);
        if let Some(key) = key {
            record = record.key(key);
        }
        let delivered = producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("record produced");
        (delivered.partition, delivered.offset)
    }

    /// Produces `records` (key, value) to one partition of `topic` in one producer batch,
    /// so that a consumer fetches them together.
    pub async fn produce_raw_together(
        &self,
        topic: &str,
        partition: i32,
        records: &[(String, Vec<u8>)],
    ) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.broker.bootstrap)
            .set("linger.ms", "200")
            .create()
            .unwrap();
        let sends = records.iter().map(|(key, payload)| {
            producer.send(
                FutureRecord::to(topic)
                    .partition(partition)
                    .key(key)
                    .payload(payload),
                Duration::from_secs(10),
            )
        });
        for sent in futures_util::future::join_all(sends).await {
            sent.expect("record produced");
        }
    }

    /// Produces one record keyed `key` on the partition the services' producers (and
    /// Java's) put that key on ([`platform::kafka::PARTITIONER`]), so that it shares a
    /// partition, in order, with the records of [`Stack::order_id_beside`] the key; returns
    /// where it went (partition, offset).
    pub async fn produce_keyed(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> (i32, i64) {
        self.produce_with(
            topic,
            Some(key),
            payload,
            headers,
            &[("partitioner", platform::kafka::PARTITIONER)],
        )
        .await
    }

    /// The partition the services' producers put `key` on, in this stack's topics.
    pub fn partition_of(&self, key: &str) -> i32 {
        java_partition(key.as_bytes(), self.kafka.topic_partitions)
    }

    /// A fresh order id (900,000,000 and up, never one order-service gives) whose records
    /// share a partition with those keyed `key`. A consumer applies a partition in order,
    /// so a record of it produced after one keyed `key` is a sentinel: once its effect
    /// shows, the earlier record was processed. (Each event is keyed by its own orderId,
    /// as the contract says, so a sentinel cannot simply borrow the key.)
    pub fn order_id_beside(&self, key: &str) -> i64 {
        let partition = self.partition_of(key);
        loop {
            let id = 900_000_000 + rand::random_range(0..99_999_999i64);
            if id.to_string() != key && self.partition_of(&id.to_string()) == partition {
                return id;
            }
        }
    }

    /// Produces, as order-service would write it, the `order.created` of a sentinel: a fresh
    /// order beside `key` ([`Stack::order_id_beside`]) of one unit of a fresh SKU (stocked
    /// with one), with `contact` if any. Nothing is waited for.
    pub async fn produce_sentinel_order(&self, key: &str, contact: Option<Value>) -> Sentinel {
        let id = self.order_id_beside(key);
        let sku = format!(
            "SENTINEL-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        self.set_stock(&sku, 1).await;
        let event_id = contracts::new_event_id();
        let mut value = serde_json::to_value(contracts::OrderCreated {
            event_id,
            order_id: id,
            user_id: 5,
            items: vec![contracts::LineItem {
                sku: sku.clone(),
                qty: 1,
            }],
            created_at: chrono::Utc::now(),
            contact: None,
        })
        .unwrap();
        if let Some(contact) = contact {
            value["contact"] = contact;
        }
        let event_id = event_id.to_string();
        let at = self
            .produce_keyed(
                &self.topics().order_created(),
                &id.to_string(),
                value.to_string().as_bytes(),
                &[("event-id", &event_id), ("event-type", "order.created")],
            )
            .await;
        Sentinel { id, sku, at }
    }

    /// A sentinel behind the records keyed `key` on `order.created`
    /// ([`Stack::produce_sentinel_order`]), waited for until inventory-service has reserved it
    /// and committed past it ([`Stack::wait_consumed`]): every record of its partition before
    /// it, those keyed `key` included, is finished by then (applied, or dead-lettered; one
    /// set aside to be retried holds the commit back until it is done). Returns its id.
    pub async fn order_created_sentinel(&self, key: &str) -> i64 {
        let sentinel = self.produce_sentinel_order(key, None).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.stock(&sentinel.sku).await["reserved"] != 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the sentinel order {} was not reserved in 60 s",
                sentinel.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait_consumed(
            &self.inventory_url,
            &self.topics().order_created(),
            sentinel.at,
        )
        .await;
        sentinel.id
    }

    /// Two sentinels behind the records keyed `key` on `order.created`, the second followed
    /// one hop on: once the first is through inventory-service
    /// ([`Stack::order_created_sentinel`]), every decision it made on the records before it
    /// is in its outbox, so its decision on the second comes after them on the partition of
    /// `inventory.reserved` they share (the relay publishes in the outbox's order). Waits
    /// until order-service and notification-service have committed past that decision:
    /// whatever inventory-service decided on the records keyed `key` has been applied by
    /// both. Returns the second sentinel's id (it is notified by then).
    pub async fn decision_sentinel(&self, key: &str) -> i64 {
        self.order_created_sentinel(key).await;
        let second = self.order_created_sentinel(key).await;
        let topic = self.topics().inventory_reserved();
        let decision = self.wait_record(&topic, &second.to_string()).await;
        for base_url in [&self.order_url, &self.notification_url] {
            self.wait_consumed(base_url, &topic, (decision.partition, decision.offset))
                .await;
        }
        second
    }

    /// Waits (at most 60 s) until every consumer of the service at `base_url` that reads
    /// partition `partition` of `topic` has committed past `offset`, as its
    /// `GET /admin/status` reports: every record of that partition up to `offset` is
    /// finished by then (applied, or dead-lettered), its effects committed. A record set
    /// aside to be retried holds its partition's commit back until it is done.
    pub async fn wait_consumed(
        &self,
        base_url: &str,
        topic: &str,
        (partition, offset): (i32, i64),
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status: Value = self.get_json(format!("{base_url}/admin/status")).await;
            let committed: Vec<Option<i64>> = status["consumers"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["partitions"].as_array().into_iter().flatten())
                .filter(|p| p["topic"] == topic && p["partition"] == partition)
                .map(|p| p["committed"].as_i64())
                .collect();
            let past = |c: &Option<i64>| matches!(c, Some(c) if *c > offset);
            if !committed.is_empty() && committed.iter().all(past) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{base_url} did not commit past offset {offset} of {topic}/{partition} in 60 s: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of one series on a service's `GET /metrics` (0 when absent).
    pub async fn metric(&self, base_url: &str, series: &str) -> u64 {
        metric(&self.http, base_url, series).await.unwrap_or(0)
    }

    /// Waits until `topic` holds a record whose key is `key`; returns its headers and value.
    pub async fn wait_record(&self, topic: &str, key: &str) -> DltRecord {
        let records = self
            .records_with_key(topic, key, Duration::from_secs(60), 1)
            .await;
        records
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no record with key {key} on {topic} in 60 s"))
    }

    /// Reads `topic` from the beginning (no consumer group) until `want` records with
    /// `key` were seen or `timeout` passed.
    pub async fn records_with_key(
        &self,
        topic: &str,
        key: &str,
        timeout: Duration,
        want: usize,
    ) -> Vec<DltRecord> {
        self.read_keyed(topic, key, timeout, want, None).await
    }

    /// The records of `topic` keyed `key` that come before the first one keyed `sentinel`
    /// (the key of a later record on the same partition, e.g. a sentinel order's id after
    /// [`Stack::decision_sentinel`]): every one there is, without a reading window. Fails
    /// if the sentinel's record is not there within 60 s.
    pub async fn records_with_key_before(
        &self,
        topic: &str,
        key: &str,
        sentinel: &str,
    ) -> Vec<DltRecord> {
        self.read_keyed(
            topic,
            key,
            Duration::from_secs(60),
            usize::MAX,
            Some(sentinel.to_string()),
        )
        .await
    }

    /// Reads `topic` from the beginning (no consumer group) until `want` records with `key`
    /// were seen, or one keyed `until` (which must come, within `timeout`), or `timeout`
    /// passed.
    async fn read_keyed(
        &self,
        topic: &str,
        key: &str,
        timeout: Duration,
        want: usize,
        until: Option<String>,
    ) -> Vec<DltRecord> {
        let bootstrap = self.broker.bootstrap.clone();
        let topic_name = topic;
        let topic = topic.to_string();
        let key = key.to_string();
        let until_key = until.clone();
        let (found, reached) = tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", "openorder-test-reader")
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            let metadata = consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            for p in metadata.topics()[0].partitions() {
                tpl.add_partition_offset(&topic, p.id(), Offset::Beginning)
                    .unwrap();
            }
            consumer.assign(&tpl).unwrap();
            let deadline = std::time::Instant::now() + timeout;
            let mut found = Vec::new();
            let mut reached = false;
            while std::time::Instant::now() < deadline && found.len() < want {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                    if until.is_some() && m.key() == until.as_deref().map(str::as_bytes) {
                        reached = true;
                        break;
                    }
                    if m.key() == Some(key.as_bytes()) {
                        let headers = m
                            .headers()
                            .map(|hs| {
                                hs.iter()
                                    .map(|h| {
                                        (
                                            h.key.to_string(),
                                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        found.push(DltRecord {
                            headers,
                            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                            partition: m.partition(),
                            offset: m.offset(),
                        });
                    }
                }
            }
            (found, reached)
        })
        .await
        .unwrap();
        if let Some(until) = until_key {
            assert!(
                reached,
                "no record keyed {until} on {topic_name} in {timeout:?}"
            );
        }
        found
    }
}

/// A sentinel order ([`Stack::produce_sentinel_order`]).
pub struct Sentinel {
    pub id: i64,
    pub sku: String,
    /// Where its `order.created` went (partition, offset).
    pub at: (i32, i64),
}

/// A record read back from a topic.
pub struct DltRecord {
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
    /// Where it was read.
    pub partition: i32,
    pub offset: i64,
}

impl DltRecord {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn header_text(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// `openorder up` as a child process with its own data directory and ports.
pub struct UpProcess {
    pub child: Child,
    pub order_url: String,
    pub inventory_url: String,
    pub notification_url: String,
    pub console_url: String,
}

/// `openorder up` on `data_dir` and `ports`, its embedded broker (no
/// `OPENORDER_BOOTSTRAP_SERVERS` from the test's environment).
pub fn up_command(data_dir: &std::path::Path, ports: &UpPorts) -> Command {
    harness::up::up_command(openorder_exe(), data_dir, ports)
}

/// One service alone (`openorder <service>`), its output appended to `log`, with none of
/// the test's broker, database or log settings from the environment.
pub fn standalone(
    service: &str,
    listen: &str,
    bootstrap: &str,
    database: &str,
    log: &std::path::Path,
) -> Child {
    harness::service_command(openorder_exe(), service, listen, bootstrap, database, log)
        .expect("the service's log opens")
        .env_remove("OPENORDER_BOOTSTRAP_SERVERS")
        .env_remove("OPENORDER_DATABASE_URL")
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap()
}

impl UpProcess {
    pub async fn start(data_dir: &std::path::Path, ports: &UpPorts) -> Self {
        Self::start_with_env(data_dir, ports, &[]).await
    }

    /// [`Self::start`] with extra environment variables (e.g. notification settings).
    pub async fn start_with_env(
        data_dir: &std::path::Path,
        ports: &UpPorts,
        env: &[(&str, &str)],
    ) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        use std::os::unix::process::CommandExt;
        let child = up_command(data_dir, ports)
            // A process group of its own, led by `up`, as a terminal or a service manager
            // gives it: a test can signal the whole group.
            .process_group(0)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("openorder up starts");
        let up = Self {
            child,
            order_url: format!("http://127.0.0.1:{}", ports.order),
            inventory_url: format!("http://127.0.0.1:{}", ports.inventory),
            notification_url: format!("http://127.0.0.1:{}", ports.notification),
            console_url: format!("http://127.0.0.1:{}", ports.console),
        };
        let http = reqwest::Client::new();
        for base in [&up.order_url, &up.inventory_url, &up.notification_url] {
            wait_ready(&http, base).await;
        }
        up
    }

    /// Sends `signal` (`TERM`, `INT`, `HUP`, `KILL`) to `up` alone, or to its whole
    /// process group (as systemd's `KillMode=control-group` and a closed terminal do).
    pub fn signal(&self, signal: &str, group: bool) {
        let pid = self.child.id().to_string();
        let target = if group { format!("-{pid}") } else { pid };
        let status = Command::new("kill")
            .args([format!("-{signal}"), "--".into(), target])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits up to `bound` for `up` to exit; returns its status and how long it took.
    pub fn wait_exit(&mut self, bound: Duration) -> (std::process::ExitStatus, Duration) {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < bound,
                "openorder up still running {bound:?} after the signal"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of `up`'s embedded broker child (from /proc: a child whose name is the
    /// broker binary's, which the kernel cuts to 15 characters).
    pub fn broker_pid(&self) -> Option<u32> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).ok()?;
        tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
            .flat_map(|children| {
                children
                    .split_whitespace()
                    .filter_map(|pid| pid.parse::<u32>().ok())
                    .collect::<Vec<_>>()
            })
            .find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "openorder-broke")
            })
    }

    /// SIGTERM, and the exit status must be success.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "openorder up exited with {exit}");
    }
}

impl Drop for UpProcess {
    /// A test that failed half-way must not leave `up` (and its broker) running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The partition a Java client puts `key` on among `partitions` ([`platform::kafka::partition_of`]).
pub fn java_partition(key: &[u8], partitions: i32) -> i32 {
    platform::kafka::partition_of(key, partitions)
}
