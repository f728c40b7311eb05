//! The start-up and shutdown sequence every service shares, so a service's `run` reads as
//! "my schema, my topics, my consumers, my routes".
//!
//! Start: connect the database (applying the schema), create the producer, create missing
//! topics, start the outbox relay. Stop (on the token): HTTP stops accepting and finishes
//! in-flight requests, consumers finish the record in hand and commit, workers (such as
//! notification-service's dispatcher) finish what they hold, and only then does the relay
//! make its last pass and flush, so events caused by those last records go out.

use rdkafka::producer::FutureProducer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseArgs, KafkaArgs, PartitionAssignment};
use crate::consumer::{ConsumerLoop, Handler};
use crate::db::{Database, Schema};
use crate::http::{health_router, Health};
use crate::outbox::{Relay, Waker};

/// A started service's shared parts.
pub struct Runtime {
    pub name: &'static str,
    pub db: Database,
    pub producer: FutureProducer,
    pub waker: Waker,
    pub kafka: KafkaArgs,
    pub metrics: crate::metrics::Metrics,
    consumers: JoinSet<()>,
    workers: JoinSet<()>,
    workers_stop: CancellationToken,
    watched: Vec<crate::status::Watched>,
    relay_stop: CancellationToken,
    relay: tokio::task::JoinHandle<()>,
}

impl Runtime {
    pub async fn start(
        name: &'static str,
        kafka: &KafkaArgs,
        database: &DatabaseArgs,
        schema: &Schema,
        topics: &[String],
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let db = Database::connect(
            &database.database_url,
            database.database_max_connections,
            schema,
        )
        .await?;
        let producer = crate::kafka::producer(kafka, name)?;
        crate::kafka::ensure_topics(kafka, topics, shutdown).await?;
        let waker = Waker::default();
        let relay_stop = CancellationToken::new();
        let relay = Relay::new(
            db.clone(),
            producer.clone(),
            waker.clone(),
            500,
            std::time::Duration::from_millis(500),
        );
        let relay = tokio::spawn(relay.run(relay_stop.clone()));
        Ok(Self {
            name,
            db,
            producer,
            waker,
            kafka: kafka.clone(),
            metrics: crate::metrics::Metrics::default(),
            consumers: JoinSet::new(),
            workers: JoinSet::new(),
            workers_stop: CancellationToken::new(),
            watched: Vec::new(),
            relay_stop,
            relay,
        })
    }

    /// Starts a consumer of `group` (prefixed) on `topics` (names, or a `^regex` with
    /// group assignment only).
    pub fn spawn_consumer<H: Handler>(
        &mut self,
        consumer_name: &'static str,
        group: &str,
        topics: &[String],
        handler: H,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        use rdkafka::consumer::Consumer;
        let group_id = self.kafka.topics().group(group);
        let consumer = crate::kafka::consumer(&self.kafka, &group_id, consumer_name)?;
        match self.kafka.partition_assignment {
            PartitionAssignment::Group => {
                let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer
                    .subscribe(&topics)
                    .map_err(|e| anyhow::anyhow!("Failed to subscribe to {topics:?}: {e}"))?;
            }
            PartitionAssignment::All => crate::kafka::assign_all(&consumer, topics)?,
        }
        let consumer = std::sync::Arc::new(consumer);
        self.watched.push(crate::status::Watched {
            name: consumer_name,
            group: group_id.clone(),
            consumer: consumer.clone(),
        });
        let consumer_loop = ConsumerLoop {
            name: consumer_name,
            consumer,
            group_id,
            producer: self.producer.clone(),
            retry: self.kafka.retry_policy(),
            handler,
            metrics: self.metrics.clone(),
            db: self.db.clone(),
            max_batch: self.kafka.consume_batch as usize,
        };
        self.consumers.spawn(consumer_loop.run(shutdown.clone()));
        Ok(())
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
        }
    }

    /// Serves `api` (at most `http.max_in_flight_requests` requests at once, see
    /// [`crate::http::limited`]) plus the health, metrics and status endpoints until
    /// `shutdown`, then stops in order.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        api: axum::Router,
        http: &crate::config::HttpArgs,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let address = listener.local_addr()?;
        tracing::info!(service = self.name, %address, "listening");
        let metrics = self.metrics.clone();
        let (name, db, watched) = (self.name, self.db.clone(), self.watched.clone());
        let status = move || async move {
            crate::status::snapshot(name, &db, &watched)
                .await
                .map(axum::Json)
                .map_err(crate::http::Problem::internal)
        };
        let api = crate::http::limited(api, http.max_in_flight_requests, metrics.clone());
        let router = api
            .merge(health_router(self.health()))
            .route(
                "/metrics",
                axum::routing::get(move || async move { metrics.render() }),
            )
            .route("/admin/status", axum::routing::get(status));
        let router = crate::http::timed(router, self.metrics.clone());
        let served = crate::http::serve(listener, router, http, shutdown.clone()).await;
        while self.consumers.join_next().await.is_some() {}
        self.workers_stop.cancel();
        while self.workers.join_next().await.is_some() {}
        self.relay_stop.cancel();
        let _ = self.relay.await;
        self.db.pool.close().await;
        tracing::info!(service = self.name, "stopped");
        served
    }
}
