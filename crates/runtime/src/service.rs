//! The start-up and shutdown sequence every service shares, so a service's `run` reads as
//! "my schema, my topics, my consumers, my routes": [`Runtime::run`] starts, lets the
//! service add its own parts ([`Assemble`]) and serves.
//!
//! Start: check the static configuration (authentication for the address bound, the
//! database URL) before contacting anything, then, while the port answers that the
//! service is starting ([`crate::starting`]): wait for the database and connect it
//! (applying the schema), create the producer, wait for the brokers, create missing
//! topics, start the outbox relay. Stop (on the token): HTTP stops accepting and finishes
//! in-flight requests, consumers finish the record in hand and commit, workers (such as
//! notification-service's dispatcher) finish what they hold, and only then does the relay
//! make its last pass and flush, so events caused by those last records go out.
//!
//! Every step of the stop is bounded: HTTP gets half of the services' budget
//! ([`crate::shutdown::StopArgs::services_budget`]) to finish its requests, the rest share
//! what is left. A step still running at the deadline is abandoned (its task aborted):
//! what it held is redone after a restart, since offsets are committed only after effects
//! and outbox rows are deleted only once acknowledged. The Kafka clients are closed last,
//! on a blocking thread (closing a consumer waits for its broker).

use rdkafka::producer::FutureProducer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::shutdown::StopArgs;
use messaging::consumer::ConsumerLoop;
use messaging::relay::Relay;
use messaging::router::{BeforeBatch, Router};
use store::db::{Database, Schema};
use web::http::{health_router, Health};
use {
    kafka_clients::{KafkaArgs, PartitionAssignment},
    store::db::DatabaseArgs,
};

mod run;
pub use run::Assemble;

/// What every service is started with: its brokers, its database, its HTTP edge and how it
/// stops. Each service's `Config` flattens it (as `core`) beside its own settings, so the
/// three take these flags alike and [`Runtime::start`] takes them in one piece.
#[derive(clap::Args, Clone, Debug)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub http: web::http::HttpArgs,

    #[command(flatten)]
    pub stop: StopArgs,
}

/// A started service's shared parts.
pub struct Runtime {
    pub service: contracts::Service,
    pub name: &'static str,
    pub db: Database,
    pub producer: FutureProducer,
    pub kafka: KafkaArgs,
    pub metrics: telemetry::metrics::Metrics,
    consumers: JoinSet<()>,
    workers: JoinSet<()>,
    workers_stop: CancellationToken,
    watched: Vec<crate::status::Watched>,
    relay_stop: CancellationToken,
    relay: tokio::task::JoinHandle<()>,
    /// Every consumer, so that the last reference is dropped here, off the async threads.
    kafka_consumers: Vec<std::sync::Arc<rdkafka::consumer::StreamConsumer>>,
    /// The keys the consumers wait on (health, status, gauges).
    pub stalls: messaging::stalls::Stalls,
    /// The event types the consumers route, checked against the topic map at `serve`.
    routed: Vec<String>,
    /// How long what is pruned is kept.
    pub retention: store::retention::RetentionArgs,
    /// Who may call what, settled before anything was contacted.
    auth: Option<web::auth::Auth>,
    /// Cancelled when the service is to stop (the token it was started with): it stops
    /// the consumers.
    pub shutdown: CancellationToken,
}

impl Runtime {
    /// Connects `service`'s database (applying `schema`), creates the topics the topic
    /// map gives it ([`contracts::topics::topics_of`]) and starts its outbox relay, while
    /// `listener` answers that the service is starting ([`crate::starting`]). `None` when
    /// `shutdown` came first (not an error: the service was stopped while it waited).
    /// Static configuration errors (an address beyond loopback without authentication, a
    /// malformed database URL) fail at once, before anything is contacted.
    pub async fn start(
        service: contracts::Service,
        core: &ServiceArgs,
        schema: &Schema,
        listener: &TcpListener,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Self>> {
        let ServiceArgs {
            kafka,
            database,
            http,
            ..
        } = core;
        let name = service.name();
        let address = listener.local_addr()?;
        let auth = web::auth::Auth::start(&http.auth, name, address, shutdown).await?;
        Database::check_url(&database.database_url)?;
        let starting = crate::starting::Starting::open(name, listener)?;
        let started =
            Self::start_behind(&starting, service, kafka, database, schema, auth, shutdown).await;
        starting.close().await;
        started
    }

    async fn start_behind(
        starting: &crate::starting::Starting,
        service: contracts::Service,
        kafka: &KafkaArgs,
        database: &DatabaseArgs,
        schema: &Schema,
        auth: web::auth::Auth,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Self>> {
        let name = service.name();
        let topics = kafka.topics().of_service(service);
        let url = &database.database_url;
        let what = format!("the database {}", store::db::redact(url));
        if starting
            .until(&what, shutdown, || Database::reachable(url))
            .await
            .is_none()
        {
            return Ok(None);
        }
        starting.waiting_for(format!("connecting {what} and applying its schema"));
        let db = Database::connect(url, database.database_max_connections, schema).await?;
        let producer = kafka_clients::producer(kafka, name)?;
        let probe = kafka_clients::BrokerProbe::new(&kafka.broker)?;
        let what = format!("the Kafka brokers at {}", probe.bootstrap());
        if starting
            .until(&what, shutdown, || probe.answers())
            .await
            .is_none()
        {
            return Ok(None);
        }
        drop(probe);
        starting.waiting_for("creating the topics");
        match kafka_clients::ensure_topics(kafka, &topics, shutdown).await {
            Err(_) if shutdown.is_cancelled() => return Ok(None),
            created => created?,
        }
        let waker = db.relay_waker();
        let relay_stop = CancellationToken::new();
        let relay = Relay::new(
            name,
            db.clone(),
            producer.clone(),
            waker.clone(),
            500,
            std::time::Duration::from_millis(500),
        );
        let relay = tokio::spawn(relay.run(relay_stop.clone()));
        let mut runtime = Self {
            service,
            name,
            db,
            producer,
            kafka: kafka.clone(),
            metrics: telemetry::metrics::Metrics::default(),
            consumers: JoinSet::new(),
            workers: JoinSet::new(),
            workers_stop: CancellationToken::new(),
            watched: Vec::new(),
            relay_stop,
            relay,
            kafka_consumers: Vec::new(),
            stalls: Default::default(),
            routed: Vec::new(),
            retention: database.retention.clone(),
            auth: Some(auth),
            shutdown: shutdown.clone(),
        };
        let (watched, bootstrap) = (runtime.producer.clone(), kafka.bootstrap().to_string());
        runtime
            .spawn_worker(move |stop| kafka_clients::watch_brokers(name, watched, bootstrap, stop));
        Ok(Some(runtime))
    }

    /// Starts a consumer of `group` (prefixed) on the topics `router` routes, which must
    /// be arrows of the topic map into this service, until [`Runtime::shutdown`]. `linger`:
    /// how long a batch may wait for more records after its first one
    /// ([`ConsumerLoop::linger`]).
    pub async fn spawn_consumer<B: BeforeBatch>(
        &mut self,
        consumer_name: &'static str,
        group: &str,
        router: Router<B>,
        linger: std::time::Duration,
    ) -> anyhow::Result<()> {
        use rdkafka::consumer::Consumer;
        for event_type in router.event_types() {
            anyhow::ensure!(
                contracts::topics::consumes(self.service, event_type),
                "{} routes {event_type}, which the topic map does not give it",
                self.name
            );
        }
        self.routed
            .extend(router.event_types().iter().map(|t| t.to_string()));
        let pattern = self.kafka.partition_assignment == PartitionAssignment::Group;
        let topics = router.subscription(pattern);
        let group_id = self.kafka.topics().group(group);
        let handler = router.in_group(group_id.clone());
        let consumer = kafka_clients::consumer(&self.kafka, &group_id, consumer_name)?;
        let consumer = std::sync::Arc::new(consumer);
        match self.kafka.partition_assignment {
            PartitionAssignment::Group => {
                let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer
                    .subscribe(&topics)
                    .map_err(|e| anyhow::anyhow!("Failed to subscribe to {topics:?}: {e}"))?;
            }
            PartitionAssignment::All => {
                // Metadata requests and waits: on a blocking thread.
                let (consumer, topics) = (consumer.clone(), topics.to_vec());
                tokio::task::spawn_blocking(move || kafka_clients::assign_all(&consumer, &topics))
                    .await??;
            }
        }
        self.kafka_consumers.push(consumer.clone());
        let progress = messaging::consumer::Progress::default();
        self.watched.push(crate::status::Watched {
            name: consumer_name,
            group: group_id.clone(),
            consumer: std::sync::Arc::downgrade(&consumer),
            progress: progress.clone(),
        });
        let consumer_loop = ConsumerLoop {
            name: consumer_name,
            consumer,
            group_id,
            producer: self.producer.clone(),
            max_message_bytes: kafka_clients::max_message_bytes(&self.kafka.broker),
            retry: self.kafka.retry_policy(),
            handler,
            metrics: self.metrics.clone(),
            db: self.db.clone(),
            max_batch: self.kafka.consume_batch as usize,
            stalls: self.stalls.clone(),
            linger,
            progress,
        };
        self.consumers
            .spawn(consumer_loop.run(self.shutdown.clone()));
        Ok(())
    }

    /// Prunes `rules` in the background ([`store::retention`]), every `--prune-every`.
    pub fn spawn_pruner(&mut self, rules: Vec<store::retention::Prune>) {
        let (db, metrics) = (self.db.clone(), self.metrics.clone());
        let every = self.retention.prune_every;
        self.spawn_worker(move |stop| {
            store::retention::prune_until(db, rules, every, metrics, stop)
        });
    }

    /// Starts a background task of the service (e.g. a dispatcher). It is given a token
    /// that is cancelled once the consumers have stopped, and the relay makes its last
    /// pass only after it returned, so events it enqueues on the way out still go out.
    pub fn spawn_worker<F, Fut>(&mut self, worker: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.workers.spawn(worker(self.workers_stop.clone()));
    }

    pub fn health(&self) -> Health {
        Health {
            db: self.db.clone(),
            producer: self.producer.clone(),
            stalls: self.stalls.clone(),
        }
    }

    /// Serves `api` (at most `http.max_in_flight_requests` requests at once, see
    /// [`web::http::limited`]) plus the health, metrics and status endpoints until
    /// `shutdown`, then stops in order within `stop`'s budget.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        api: web::auth::Routes,
        core: &ServiceArgs,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let ServiceArgs { http, stop, .. } = core;
        for flow in contracts::topics::MAP {
            anyhow::ensure!(
                !flow.readers.contains(&self.service)
                    || self.routed.iter().any(|t| t == flow.topic),
                "the topic map says {} consumes {}, but none of its consumers routes it",
                self.name,
                flow.topic
            );
        }
        let address = listener.local_addr()?;
        // Set by `start`, taken once: `serve` consumes the runtime.
        let auth = self.auth.take().expect("serve runs once");
        tracing::info!(service = self.name, %address, "listening");
        // Lag, backlog and readiness as gauges, computed off the request path.
        let sampler = crate::gauges::Gauges {
            db: self.db.clone(),
            health: self.health(),
            watched: self.watched.clone(),
            metrics: self.metrics.clone(),
            lags: Default::default(),
        };
        self.spawn_worker(move |stop| sampler.run(stop));
        let metrics = self.metrics.clone();
        let (name, db, watched) = (self.name, self.db.clone(), self.watched.clone());
        let stalls = self.stalls.clone();
        let consumer_names: Vec<&'static str> = watched.iter().map(|w| w.name).collect();
        let gauges = (
            self.stalls.clone(),
            consumer_names,
            self.db.storage().clone(),
        );
        let status = move || async move {
            crate::status::snapshot(name, &db, &watched, &stalls)
                .await
                .map(axum::Json)
                .map_err(web::http::Problem::internal)
        };
        let api = auth.apply(
            api.operators(axum::Router::new().route("/admin/status", axum::routing::get(status))),
        );
        let api = web::http::limited(api, http.max_in_flight_requests, metrics.clone());
        let scrape = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || async move {
                gauges.0.export(&gauges.1, &metrics);
                gauges.2.export(&metrics);
                telemetry::export_counts(&metrics);
                metrics.render()
            }),
        );
        let router = api
            .merge(health_router(self.health()))
            .merge(auth.for_metrics(scrape));
        let router = web::http::traced(web::http::timed(router, self.metrics.clone()), self.name);
        let budget = stop.services_budget();
        let served = web::http::serve(listener, router, http, shutdown.clone(), budget / 2).await;
        let deadline = tokio::time::Instant::now() + budget / 2;
        let name = self.name;
        finish(name, "consumers", &mut self.consumers, deadline).await;
        self.workers_stop.cancel();
        finish(name, "workers", &mut self.workers, deadline).await;
        self.relay_stop.cancel();
        if tokio::time::timeout_at(deadline, &mut self.relay)
            .await
            .is_err()
        {
            tracing::warn!(service = name, "the outbox relay's last pass did not finish in time; its rows are published after a restart");
            self.relay.abort();
            let _ = (&mut self.relay).await;
        }
        if tokio::time::timeout_at(deadline, self.db.pool.close())
            .await
            .is_err()
        {
            tracing::warn!(service = name, "database connections did not close in time");
        }
        let clients = (std::mem::take(&mut self.kafka_consumers), self.producer);
        let closing = tokio::task::spawn_blocking(move || drop(clients));
        let close_wait =
            deadline.max(tokio::time::Instant::now() + messaging::consumer::CLOSE_WAIT);
        if tokio::time::timeout_at(close_wait, closing).await.is_err() {
            tracing::warn!(
                service = name,
                "the Kafka clients did not close in time (broker gone?)"
            );
        }
        tracing::info!(service = name, "stopped");
        served
    }
}

/// Waits for `tasks` until `deadline`, then aborts what is still running.
async fn finish(
    service: &str,
    what: &str,
    tasks: &mut JoinSet<()>,
    deadline: tokio::time::Instant,
) {
    let all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout_at(deadline, all).await.is_err() {
        tracing::warn!(
            service,
            "{what} still running at the stop deadline; stopping them (what they held is redone after a restart)"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}
