//! notification-service: subscribes to every `inventory.<event>` topic and records one
//! notification per event (idempotent), delivered to a log channel; serves
//! `GET /api/notifications?orderId=` (and health) on 8083.
//!
//! Layout:
//! - [`inventory_events`]: the consumer handler.
//! - [`store`]: schema and queries.
//! - [`routes`]: the HTTP API.

pub mod inventory_events;
pub mod routes;
pub mod store;

use clap::Args;
use platform::config::{DatabaseArgs, KafkaArgs, PartitionAssignment};
use platform::service::Runtime;
use platform::CancellationToken;
use tokio::net::TcpListener;

pub const GROUP: &str = "notification-service";

#[derive(Args, Clone, Debug)]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Runs notification-service until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let topics = config.kafka.topics();
    // The pattern subscription only sees topics that exist: create the known ones (and
    // their dead-letter topics) rather than wait for inventory-service to.
    let mut own_topics = topics.inventory_topics();
    own_topics.extend(
        topics
            .inventory_topics()
            .iter()
            .map(|t| contracts::Topics::dlt_of(t)),
    );
    let mut runtime = Runtime::start(
        "notification-service",
        &config.kafka,
        &config.database,
        &store::SCHEMA,
        &own_topics,
        &shutdown,
    )
    .await?;
    let handler = inventory_events::InventoryEventHandler {
        db: runtime.db.clone(),
        topics: topics.clone(),
    };
    // With group assignment, a pattern: every inventory.<event> topic, also future ones.
    // Reading every partition itself, the consumer needs the names.
    let subscription = match config.kafka.partition_assignment {
        PartitionAssignment::Group => vec![topics.inventory_pattern()],
        PartitionAssignment::All => topics.inventory_topics(),
    };
    runtime.spawn_consumer(
        "notification-inventory-events",
        GROUP,
        &subscription,
        handler,
        &shutdown,
    )?;
    let api = routes::router(runtime.db.clone());
    runtime.serve(listener, api, shutdown).await
}
