//! notification-service: tells customers what became of their orders, by log, e-mail,
//! webhook, SMS and Web Push, once per event and channel (and push subscription), with
//! retries and a record of every attempt.
//!
//! Consumes `order.created` (who placed an order, and the `contact` it carried),
//! `order.created.DLT` (orders that failed) and every `inventory.<event>` topic; keeps the
//! defaults and channel preferences users register; serves `GET /api/notifications?orderId=`,
//! `GET|PUT /api/users/{userId}/contact`, `GET|PUT /api/users/{userId}/notification-preferences`,
//! `GET /api/push/vapid-public-key`, `GET|POST /api/users/{userId}/push-subscriptions`,
//! `DELETE /api/users/{userId}/push-subscriptions/{id}` (Web Push),
//! `POST /callbacks/sms` (an SMS provider's signed delivery receipts) and health on 8083;
//! publishes `notification.failed` when a delivery gives up.
//!
//! Layout, in the order an event travels:
//! - [`consumer()`]: the one consumer, one module per consumed event: [`on_order_created`]
//!   (who placed the order), [`on_order_created_dead_letter`] (order failed),
//!   [`on_inventory_event`] (every `inventory.<event>`).
//! - [`notices`]: event → notification → one queued delivery per channel the user wants
//!   ([`preferences`]) (one transaction; the log's is written there and then), each due
//!   when the user's quiet hours and digest window say ([`schedule`]).
//! - [`templates`]: subject, text and HTML per kind of notification.
//! - [`delivery`]: the dispatcher (sends due deliveries, retries with backoff, marks
//!   FAILED and falls back to another channel), the channels: log, e-mail (SMTP), webhook
//!   (signed HTTP POST), SMS (a provider's HTTP API), Web Push (encrypted, VAPID-signed),
//!   the SMS delivery receipts, digests.
//! - [`store`]: schema and every query; [`routes`]: the HTTP API.
//!
//! What does not need the service lives in crates below it, each re-exported here under
//! the name the service gives it: `notification-service-channels` (the senders:
//! [`delivery::channels`]), `notification-service-rules` ([`templates`], [`preferences`],
//! [`schedule`], [`delivery::digest`] and the idempotency keys) and
//! `notification-service-store` ([`store`]).

pub mod delivery;
pub mod notices;
pub mod on_inventory_event;
pub mod on_order_created;
pub mod on_order_created_dead_letter;
pub mod routes;

pub use notification_service_rules::{preferences, schedule, templates};
pub use notification_service_store as store;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use contracts::{
    AnyEvent, InventoryRejected, InventoryReleased, InventoryReserved, OrderCreated, Service,
    Topics,
};
use delivery::{channels, dispatcher};
use platform::auth::Routes;
use platform::router::Router;
use platform::service::{Assemble, Runtime, ServiceArgs};
use platform::CancellationToken;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub const GROUP: &str = "notification-service";
/// The consumer group whose dead letters on `order.created` make an order FAILED.
pub use contracts::topics::INVENTORY_GROUP;

#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Brokers, database, HTTP and stopping, as every service takes them.
    #[command(flatten)]
    pub core: platform::service::ServiceArgs,

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
    pub sms: channels::sms::SmsArgs,

    #[command(flatten)]
    pub push: channels::push::PushArgs,

    #[command(flatten)]
    pub delivery: dispatcher::DeliveryArgs,

    /// Directory of template files replacing the built-in ones by name
    /// (`order.confirmed.subject.txt`, `order.confirmed.txt`, `order.confirmed.html`, …).
    #[arg(
        long,
        env = "OPENORDER_TEMPLATES_DIR",
        hide_short_help = true,
        help_heading = "Notifications"
    )]
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
    let prepared = Prepared::new(config)?;
    // The pattern subscription only sees topics that exist: the known ones (and their
    // dead-letter topics) are created at the start rather than waited for.
    Runtime::run(
        Service::Notification,
        &store::SCHEMA,
        prepared,
        listener,
        shutdown,
    )
    .await
}

/// notification-service's configuration with its templates loaded and its channels made,
/// before anything is contacted.
struct Prepared {
    config: Config,
    templates: Arc<templates::Templates>,
    email: Option<channels::email::EmailChannel>,
    webhook: Option<channels::webhook::WebhookChannel>,
    sms: Option<channels::sms::SmsChannel>,
    push: Option<channels::push::PushSettings>,
}

impl Prepared {
    fn new(config: Config) -> anyhow::Result<Self> {
        let notify = &config.notify;
        let templates = Arc::new(templates::Templates::load(notify.templates_dir.as_deref())?);
        let email = channels::email::EmailChannel::from_args(&notify.smtp)?;
        let webhook = channels::webhook::WebhookChannel::from_args(&notify.webhook)?;
        let sms = channels::sms::SmsChannel::from_args(&notify.sms)?;
        let push = notify.push.settings()?;
        Ok(Self {
            config,
            templates,
            email,
            webhook,
            sms,
            push,
        })
    }
}

/// notification-service's own parts: its channels (Web Push with its keys from the
/// database), its consumer, the dispatcher, pruning and its API.
impl Assemble for Prepared {
    fn core(&self) -> &ServiceArgs {
        &self.config.core
    }

    async fn assemble(self, runtime: &mut Runtime) -> anyhow::Result<Routes> {
        let sms_callbacks = self.sms.as_ref().and_then(|sms| sms.callbacks());
        let webhooks = self.config.notify.webhook.destinations.destinations();
        let topics = self.config.core.kafka.topics();
        // Push needs the database: its subscriptions, and its VAPID key unless a file keeps it.
        let push = match self.push {
            Some(settings) => Some(
                channels::push::PushChannel::start(&settings, runtime.db.clone(), webhooks.clone())
                    .await?,
            ),
            None => None,
        };
        let channels = Arc::new(channels::Channels {
            log: channels::log::LogChannel,
            email: self.email,
            webhook: self.webhook,
            sms: self.sms,
            push,
        });
        let wake = Arc::new(Notify::new());
        let clock = schedule::Clock::system();
        let notifier = notices::Notifier {
            templates: self.templates,
            channels: channels.clone(),
            dispatcher: wake.clone(),
            metrics: runtime.metrics.clone(),
            clock: clock.clone(),
        };
        runtime
            .spawn_consumer(
                "notification-events",
                GROUP,
                consumer(&topics, notifier, &webhooks),
                GATHER,
            )
            .await?;
        let dispatcher = dispatcher::Dispatcher {
            db: runtime.db.clone(),
            channels: channels.clone(),
            args: self.config.notify.delivery.clone(),
            topics: topics.clone(),
            wake,
            metrics: runtime.metrics.clone(),
            clock: clock.clone(),
        };
        runtime.spawn_worker(|stop| dispatcher.run(stop));
        runtime.spawn_pruner(store::pruned(&runtime.retention));
        Ok(routes::routes(routes::AppState {
            db: runtime.db.clone(),
            webhooks: webhooks.clone(),
            sms: sms_callbacks,
            topics,
            metrics: runtime.metrics.clone(),
            fallback: self.config.notify.delivery.notify_fallback.clone(),
            channels,
            clock,
        }))
    }
}

/// How long a batch of the consumer, and the dispatcher after a wake-up, wait for more.
/// Notifications are not on an order's way to its final status, so a batch gathers: at
/// 1,000 orders/s that turns a commit per record or two into one per few dozen.
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// notification-service's one consumer (group `notification-service`): `order.created`,
/// `order.created.DLT` and every `inventory.<event>` (by pattern with group assignment,
/// so a newer producer's event type is read as `order.updated`). One member per instance
/// keeps the group simple for every broker; the topics have no order among each other
/// anyway (see [`notices`] for how an inventory event that overtakes its order is handled).
pub fn consumer(
    topics: &Topics,
    notifier: notices::Notifier,
    webhooks: &contracts::destinations::Destinations,
) -> Router {
    let inventory = on_inventory_event::OnInventoryEvent {
        notifier: notifier.clone(),
        topics: topics.clone(),
    };
    Router::new(Service::Notification, topics)
        .on::<OrderCreated, _>(on_order_created::OnOrderCreated {
            notifier: notifier.clone(),
            webhooks: webhooks.clone(),
        })
        .on_dead_letters::<OrderCreated, _>(
            on_order_created_dead_letter::OnOrderCreatedDeadLetter {
                notifier,
                inventory_group: topics.group(INVENTORY_GROUP),
                webhooks: webhooks.clone(),
            },
        )
        .on::<InventoryReserved, _>(inventory.clone())
        .on::<InventoryRejected, _>(inventory.clone())
        .on::<InventoryReleased, _>(inventory.clone())
        .on_others_of::<AnyEvent, _>("inventory.", inventory)
}
