//! order-service: accepts orders over HTTP (8080), stores each as PENDING together with its
//! `order.created` event in one transaction (the outbox), and moves it to CONFIRMED,
//! REJECTED or FAILED as inventory events and dead letters arrive. Cancelling an order makes
//! it CANCELLED at once and publishes `order.cancelled`.
//!
//! Layout:
//! - [`domain`]: request parsing into domain types, and the status lifecycle.
//! - [`routes`]: the HTTP API.
//! - [`intake`]: group commit of new orders (many requests, one transaction).
//! - [`consumers`]: inventory outcomes and inventory's dead letters.
//! - [`store`]: schema and queries.

pub mod consumers;
pub mod domain;
pub mod intake;
pub mod routes;
pub mod store;

use clap::Args;
use platform::config::{DatabaseArgs, HttpArgs, KafkaArgs};
use platform::service::Runtime;
use platform::CancellationToken;
use tokio::net::TcpListener;

/// Consumer groups (behind the topic prefix).
pub const GROUP: &str = "order-service";
pub const DLT_GROUP: &str = "order-service-dlt";
/// The group whose dead letters fail an order (inventory-service's).
pub const INVENTORY_GROUP: &str = "inventory-service";

#[derive(Args, Clone, Debug)]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub stop: platform::shutdown::StopArgs,
}

/// Runs order-service until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let topics = config.kafka.topics();
    let outcomes = topics.inventory_topics();
    let mut own_topics = outcomes.clone();
    own_topics.extend([
        topics.order_created(),
        topics.order_created_dlt(),
        topics.order_cancelled(),
    ]);
    own_topics.extend(outcomes.iter().map(|t| contracts::Topics::dlt_of(t)));
    let mut runtime = Runtime::start(
        "order-service",
        &config.kafka,
        &config.database,
        &store::SCHEMA,
        &own_topics,
        &shutdown,
    )
    .await?;
    let outcome_handler = consumers::InventoryOutcomeHandler {
        topics: topics.clone(),
    };
    runtime
        .spawn_consumer(
            "order-inventory-outcomes",
            GROUP,
            &outcomes,
            outcome_handler,
            &shutdown,
        )
        .await?;
    let dlt_handler = consumers::DeadLetterHandler {
        inventory_group: topics.group(INVENTORY_GROUP),
    };
    runtime
        .spawn_consumer(
            "order-dead-letters",
            DLT_GROUP,
            &[topics.order_created_dlt()],
            dlt_handler,
            &shutdown,
        )
        .await?;
    let api = routes::router(routes::AppState {
        db: runtime.db.clone(),
        intake: intake::Intake::start(
            runtime.db.clone(),
            topics.clone(),
            runtime.waker.clone(),
            intake::QUEUE,
            runtime.metrics.clone(),
        ),
        topics,
        waker: runtime.waker.clone(),
    });
    runtime
        .serve(listener, api, &config.http, &config.stop, shutdown)
        .await
}
