//! notification-service: tells customers what became of their orders, by log, e-mail and
//! webhook, once per event and channel, with retries and a record of every attempt.
//!
//! Consumes `order.created` (who placed an order, and the `contact` it carried),
//! `order.created.DLT` (orders that failed) and every `inventory.<event>` topic; keeps the
//! defaults users register; serves `GET /api/notifications?orderId=` and
//! `GET|PUT /api/users/{userId}/contact` (and health) on 8083; publishes
//! `notification.failed` when a delivery gives up.
//!
//! Layout, in the order an event travels:
//! - [`consumer`]: the one consumer, handing each record to [`inventory_events`] or
//!   [`order_events`].
//! - [`notices`]: event → notification → one queued delivery per channel (one transaction;
//!   the log's is written there and then).
//! - [`templates`]: subject, text and HTML per kind of notification.
//! - [`dispatcher`]: sends due deliveries, retries with backoff, marks FAILED.
//! - [`channels`]: log, e-mail (SMTP), webhook (signed HTTP POST).
//! - [`store`]: schema and queries; [`routes`]: the HTTP API.

pub mod channels;
pub mod consumer;
pub mod dispatcher;
pub mod inventory_events;
pub mod notices;
pub mod order_events;
pub mod routes;
pub mod store;
pub mod templates;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use platform::config::{DatabaseArgs, HttpArgs, KafkaArgs, PartitionAssignment};
use platform::service::Runtime;
use platform::CancellationToken;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub const GROUP: &str = "notification-service";
/// The consumer group whose dead letters on `order.created` make an order FAILED.
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
    pub notify: NotifyArgs,
}

/// Channels, templates and delivery retries.
#[derive(Args, Clone, Debug)]
pub struct NotifyArgs {
    #[command(flatten)]
    pub smtp: channels::email::SmtpArgs,

    #[command(flatten)]
    pub webhook: channels::webhook::WebhookArgs,

    #[command(flatten)]
    pub delivery: dispatcher::DeliveryArgs,

    /// Directory of template files replacing the built-in ones by name
    /// (`order.confirmed.subject.txt`, `order.confirmed.txt`, `order.confirmed.html`, …).
    #[arg(long, env = "OPENORDER_TEMPLATES_DIR")]
    pub templates_dir: Option<PathBuf>,
}

impl NotifyArgs {
    /// The defaults (log channel only), as with no flags (environment variables still apply).
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            notify: NotifyArgs,
        }
        <Only as clap::Parser>::try_parse_from(["notification-service"])
            .expect("every notification flag has a default")
            .notify
    }
}

/// Runs notification-service until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Configuration errors (a broken template, a bad secret) stop the start at once.
    let templates = Arc::new(templates::Templates::load(
        config.notify.templates_dir.as_deref(),
    )?);
    let channels = Arc::new(channels::Channels {
        log: channels::log::LogChannel,
        email: channels::email::EmailChannel::from_args(&config.notify.smtp)?,
        webhook: channels::webhook::WebhookChannel::from_args(&config.notify.webhook)?,
    });

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
    own_topics.extend([
        topics.order_created(),
        topics.order_created_dlt(),
        topics.notification_failed(),
    ]);
    let mut runtime = Runtime::start(
        "notification-service",
        &config.kafka,
        &config.database,
        &store::SCHEMA,
        &own_topics,
        &shutdown,
    )
    .await?;
    let wake = Arc::new(Notify::new());
    let notifier = notices::Notifier {
        templates,
        channels: channels.clone(),
        dispatcher: wake.clone(),
        queued: Default::default(),
        metrics: runtime.metrics.clone(),
    };
    // With group assignment, a pattern: every inventory.<event> topic, also future ones.
    // Reading every partition itself, the consumer needs the names.
    let mut subscription = match config.kafka.partition_assignment {
        PartitionAssignment::Group => vec![topics.inventory_pattern()],
        PartitionAssignment::All => topics.inventory_topics(),
    };
    subscription.extend([topics.order_created(), topics.order_created_dlt()]);
    runtime
        .spawn_consumer(
            "notification-events",
            GROUP,
            &subscription,
            consumer::NotificationConsumer {
                inventory: inventory_events::InventoryEventHandler {
                    notifier: notifier.clone(),
                    topics: topics.clone(),
                },
                orders: order_events::OrderEventsHandler {
                    notifier,
                    topics: topics.clone(),
                    inventory_group: topics.group(INVENTORY_GROUP),
                },
            },
            &shutdown,
        )
        .await?;
    let dispatcher = dispatcher::Dispatcher {
        db: runtime.db.clone(),
        channels,
        args: config.notify.delivery.clone(),
        topics,
        wake,
        relay: runtime.waker.clone(),
        metrics: runtime.metrics.clone(),
    };
    runtime.spawn_worker(|stop| dispatcher.run(stop));
    let api = routes::router(runtime.db.clone());
    runtime
        .serve(listener, api, &config.http, &config.stop, shutdown)
        .await
}
