//! The three services of one test, in this process, against one broker and fresh topics
//! and databases ([`Stack::spawn`]), and what the tests ask of their HTTP APIs: orders
//! placed, read and cancelled, stock, notifications, metrics.

use std::time::Duration;

use platform::db::DatabaseArgs;
use platform::kafka::KafkaArgs;
use platform::CancellationToken;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{
    database_url, init_tracing, json_of, metric, temp_dir, wait_ready, BrokerKind, DbKind,
    TestBroker,
};

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
            &inventory_service::faults::FaultFlags::default(),
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

    /// The consumer groups that read `order.created` (inventory-service's, then
    /// notification-service's), as its dead letters name them; sorted, as
    /// [`super::records::groups_of`] gives them.
    pub fn order_created_groups(&self) -> [String; 2] {
        let topics = self.topics();
        [
            topics.group(inventory_service::GROUP),
            topics.group(notification_service::GROUP),
        ]
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
        json_of(self.http.get(url)).await
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

    /// POSTs the cancellation of order `id`; returns the answer's status and JSON body.
    pub async fn cancel_order(&self, id: i64) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/orders/{id}/cancel", self.order_url))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// The value of one series on a service's `GET /metrics` (0 when absent).
    pub async fn metric(&self, base_url: &str, series: &str) -> u64 {
        metric(&self.http, base_url, series).await.unwrap_or(0)
    }
}
