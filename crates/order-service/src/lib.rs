//! order-service: accepts orders over HTTP (8080), stores each as PENDING together with its
//! `order.created` event in one transaction (the outbox), and moves it to CONFIRMED,
//! REJECTED or FAILED as inventory events and dead letters arrive. Cancelling an order makes
//! it CANCELLED at once and publishes `order.cancelled`.
//!
//! Layout:
//! - [`domain`]: request parsing into domain types; the statuses and the moves between
//!   them are `contracts::lifecycle`'s table, which [`store`] applies.
//! - [`routes`]: the HTTP API.
//! - [`intake`]: group commit of new orders (many requests, one transaction).
//! - one module per consumed event: [`on_inventory_reserved`] (CONFIRMED),
//!   [`on_inventory_rejected`] (REJECTED), [`on_inventory_released`] (`releasedAt`),
//!   [`on_order_created_dead_letter`] (FAILED); [`outcome`]: the step they share.
//! - [`store`]: schema and queries.

pub mod domain;
pub mod intake;
pub mod on_inventory_rejected;
pub mod on_inventory_released;
pub mod on_inventory_reserved;
pub mod on_order_created_dead_letter;
pub mod outcome;
pub mod routes;
pub mod store;

use std::time::Duration;

use clap::Args;
use contracts::{InventoryRejected, InventoryReleased, InventoryReserved, OrderCreated, Service};
use platform::db::DatabaseArgs;
use platform::http::HttpArgs;
use platform::kafka::KafkaArgs;
use platform::retention::{Prune, Walk};
use platform::router::Router;
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

    #[command(flatten)]
    pub webhooks: platform::config::WebhookDestinationArgs,
}

/// Runs order-service until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let topics = config.kafka.topics();
    let Some(mut runtime) = Runtime::start(
        Service::Order,
        &config.kafka,
        &config.database,
        &store::SCHEMA,
        &listener,
        &config.http,
        &shutdown,
    )
    .await?
    else {
        return Ok(()); // stopped while it waited for its database or brokers
    };
    let outcomes = Router::new(Service::Order, &topics)
        .on::<InventoryReserved, _>(on_inventory_reserved::OnInventoryReserved)
        .on::<InventoryRejected, _>(on_inventory_rejected::OnInventoryRejected)
        .on::<InventoryReleased, _>(on_inventory_released::OnInventoryReleased);
    runtime
        .spawn_consumer(
            "order-inventory-outcomes",
            GROUP,
            outcomes,
            Duration::ZERO,
            &shutdown,
        )
        .await?;
    let dead_letters = Router::new(Service::Order, &topics).on_dead_letters::<OrderCreated, _>(
        on_order_created_dead_letter::OnOrderCreatedDeadLetter {
            inventory_group: topics.group(INVENTORY_GROUP),
        },
    );
    runtime
        .spawn_consumer(
            "order-dead-letters",
            DLT_GROUP,
            dead_letters,
            Duration::ZERO,
            &shutdown,
        )
        .await?;
    let retention = &runtime.retention;
    let mut rules = vec![
        Prune::processed_events(retention),
        Prune::dead_lettered(retention),
        Prune {
            table: "idempotency_keys",
            key: "key",
            time: "created_at",
            walk: Walk::Time,
            keep: retention.retain_idempotency_keys,
            children: &[],
        },
    ];
    if let Some(keep) = retention.retain_orders {
        rules.push(Prune {
            table: "orders",
            key: "id",
            time: "created_at",
            walk: Walk::IntKey,
            keep,
            children: &[("order_items", "order_id")],
        });
    }
    runtime.spawn_pruner(rules);
    let api = routes::routes(routes::AppState {
        db: runtime.db.clone(),
        intake: intake::Intake::start(
            runtime.db.clone(),
            topics.clone(),
            intake::QUEUE,
            runtime.metrics.clone(),
        ),
        topics,
        webhooks: config.webhooks.destinations(),
    });
    runtime
        .serve(listener, api, &config.http, &config.stop, shutdown)
        .await
}
