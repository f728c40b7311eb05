//! notification-service's database: its schema and every query (as
//! `notification_service::store`).
//!
//! - `notifications`: one per event worth telling the customer about, unique by event id
//!   (the dedupe mark), with its rendered subject and text, and its HTML and webhook body
//!   when one of its channels sends them (e-mail, webhook; otherwise empty), so that a
//!   resend is the same message, byte for byte.
//! - `deliveries`: one per notification and channel, the dispatcher's work queue: status
//!   `PENDING` → `DELIVERED` | `FAILED`, attempts, last error, next attempt time. The log
//!   channel's are written as they are queued and stored `DELIVERED` at once. An SMS whose
//!   provider reports delivery later goes `PENDING` → `SENT` → `DELIVERED` | `FAILED`, with
//!   the provider's message id and latest status beside. A delivery held by quiet hours or
//!   a digest window is `PENDING` with its due time in `next_attempt_at` and why in `held`;
//!   one gathered into a digest is `GATHERED`, named by the digest's key (`digest`), and
//!   the digest goes as the delivery that opened its window
//!   ([`notification_service_rules::schedule`]). A fallback is a delivery of its own with
//!   `fallback_of` and `fallback_reason` (`notification_service::delivery::fallback`).
//! - `order_contacts`: the projection of `order.created` (who placed an order and how to
//!   reach them). Its row for an order is also the lock that serializes "an inventory event
//!   arrives" with "the order it is about arrives", whichever comes first.
//! - `user_contacts`: the defaults users register with `PUT /api/users/{userId}/contact`.
//! - `notification_preferences`: the channels users want per kind of notification, and
//!   when notices come (time zone, quiet hours, critical kinds, digest window)
//!   (`PUT /api/users/{userId}/notification-preferences`,
//!   [`notification_service_rules::preferences`]).
//! - `push_subscriptions`: the browsers' Web Push subscriptions users register
//!   (`POST /api/users/{userId}/push-subscriptions`), one per endpoint; `push_vapid_key`:
//!   the VAPID key pair push requests are signed with, made once ([`vapid_private_key`]).
//! - the outbox every service has (for `notification.failed`).
//!
//! Its queries, one module per thing they serve (every item re-exported here, as
//! `store::X`):
//! - [`notifications`]: recording notifications, routing those that waited, which orders
//!   have their decision told, and the listing `GET /api/notifications` shows.
//! - [`contacts`]: `order_contacts` (and its lock) and `user_contacts`.
//! - [`preferences`][]: `notification_preferences`.
//! - [`deliveries`]: queueing deliveries; [`digests`]: digest windows and what a digest
//!   carries.
//! - [`dispatch`]: the dispatcher's claims and the outcome of each attempt.
//! - [`receipts`]: SMS delivery receipts.
//! - [`push`]: push subscriptions and the VAPID key (with the push channel, in
//!   `notification-service-channels`).
//!
//! Here: the schema ([`SCHEMA`]), what is pruned ([`pruned`]), and the states of a
//! notification and of a delivery.

pub mod contacts;
pub mod deliveries;
pub mod digests;
pub mod dispatch;
pub mod notifications;
pub mod preferences;
pub mod receipts;

/// Push subscriptions and the VAPID key: push's own queries, with its channel.
pub use notification_service_channels::push::subscriptions as push;

use platform::db::Schema;
use platform::retention::{Prune, RetentionArgs, Walk};

pub use contacts::{
    lock_orders, put_user_contact, record_orders, user_contact, user_contacts, OrderContact,
    UserContact,
};
pub use deliveries::{queue_deliveries, NewDelivery};
pub use digests::{digest_items, open_digest, OpenDigest};
pub use dispatch::{claim_due, finish_attempt, Claimed, Finish};
pub use notifications::{
    awaiting_of, decided_among, insert_notifications, list, set_routed, Awaiting, NewNotification,
    Routed, DECIDED_KINDS,
};
pub use preferences::{
    notification_preferences, put_notification_preferences, user_preferences, UserPreferences,
};
pub use push::{
    push_subscription, push_subscription_ids, push_subscriptions_of, register_push_subscription,
    remove_push_subscription, vapid_private_key, PushSubscriptionView, Registered,
    StoredPushSubscription,
};
pub use receipts::{delivery_by_key, record_receipt, ReceiptUpdate, SmsDelivery};

// A notification and its deliveries as the API shows them: in `contracts::api`, where the
// console reads them too.
pub use contracts::api::{DeliveryView, Notification};

pub const SCHEMA: Schema = Schema(&[
    "CREATE TABLE IF NOT EXISTS notifications (
        id {id},
        event_id TEXT NOT NULL UNIQUE,
        order_id {int} NOT NULL,
        event_type TEXT NOT NULL,
        channel TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS notifications_by_order ON notifications (order_id, id)",
    platform::outbox::TABLE,
    platform::dedupe::DEAD_LETTERED_TABLE,
    "ALTER TABLE notifications ADD COLUMN kind TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE notifications ADD COLUMN subject TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE notifications ADD COLUMN html TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE notifications ADD COLUMN payload TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE notifications ADD COLUMN context TEXT NOT NULL DEFAULT ''",
    "CREATE TABLE user_contacts (
        user_id {int} PRIMARY KEY,
        email TEXT,
        webhook_url TEXT,
        updated_at TEXT NOT NULL
    )",
    "CREATE TABLE order_contacts (
        order_id {int} PRIMARY KEY,
        user_id {int},
        email TEXT,
        webhook_url TEXT,
        known {int} NOT NULL,
        updated_at TEXT NOT NULL
    )",
    "CREATE TABLE deliveries (
        id {id},
        notification_id {int} NOT NULL REFERENCES notifications (id),
        order_id {int} NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        attempts {int} NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt_at {int} NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        delivered_at TEXT
    )",
    "CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at)",
    "CREATE INDEX deliveries_by_notification ON deliveries (notification_id)",
    // A customer's notifications are found through who placed each order.
    "CREATE INDEX order_contacts_by_user ON order_contacts (user_id, order_id)",
    // The trace context of the record a notification comes from (webhooks continue it).
    "ALTER TABLE notifications ADD COLUMN trace TEXT NOT NULL DEFAULT ''",
    // What was dead-lettered under each event id (platform::dedupe).
    platform::dedupe::DEAD_LETTERED_BODY_HASH_COLUMN,
    // Phone numbers, for SMS.
    "ALTER TABLE user_contacts ADD COLUMN phone TEXT",
    "ALTER TABLE order_contacts ADD COLUMN phone TEXT",
    // What an SMS provider says of a delivery: its message id and the latest status it
    // reported (found by the delivery's idempotency key, which the callback URL carries).
    "ALTER TABLE deliveries ADD COLUMN provider_id TEXT",
    "ALTER TABLE deliveries ADD COLUMN provider_status TEXT",
    // The channels a user wants per kind of notification (JSON:
    // notification_service_rules::preferences).
    "CREATE TABLE notification_preferences (
        user_id {int} PRIMARY KEY,
        channels TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )",
    // When a user's notices come: time zone, quiet hours, critical kinds, digest window
    // (JSON: notification_service_rules::preferences::Timing).
    "ALTER TABLE notification_preferences ADD COLUMN timing TEXT NOT NULL DEFAULT '{}'",
    // Deliveries: whom they are for (digests are per user and channel); why one waits past
    // the time it was routed (`quietHours`, `digest`: notification_service_rules::schedule);
    // the digest it carries or was gathered into (the digest's idempotency key); when the
    // window of one that carries a digest opened (ms); and, for a fallback, the delivery it
    // replaces and why.
    "ALTER TABLE deliveries ADD COLUMN user_id {int}",
    "ALTER TABLE deliveries ADD COLUMN held TEXT",
    "ALTER TABLE deliveries ADD COLUMN digest TEXT",
    "ALTER TABLE deliveries ADD COLUMN digest_start {int}",
    "ALTER TABLE deliveries ADD COLUMN fallback_of {int}",
    "ALTER TABLE deliveries ADD COLUMN fallback_reason TEXT",
    // A user's open digest window per channel (only deliveries carrying a digest).
    "CREATE INDEX deliveries_digest_windows ON deliveries (user_id, channel, next_attempt_at)
        WHERE digest_start IS NOT NULL",
    // The deliveries of one digest (only those of a digest).
    "CREATE INDEX deliveries_by_digest ON deliveries (digest) WHERE digest IS NOT NULL",
    // Web Push (notification_service_channels::push): the browsers' subscriptions users
    // register, one row per endpoint, and the service's VAPID key pair, made once.
    push::SUBSCRIPTIONS_TABLE,
    push::SUBSCRIPTIONS_BY_USER,
    push::VAPID_KEY_TABLE,
]);

/// What this service prunes ([`platform::retention`]): dead-letter marks, notifications with
/// their deliveries, and the order contacts they were routed by, each past its window.
pub fn pruned(retention: &RetentionArgs) -> Vec<Prune> {
    vec![
        Prune::dead_lettered(retention),
        Prune {
            table: "notifications",
            key: "id",
            time: "created_at",
            walk: Walk::IntKey,
            keep: retention.retain_notifications,
            children: &[("deliveries", "notification_id")],
        },
        Prune {
            table: "order_contacts",
            key: "order_id",
            time: "updated_at",
            walk: Walk::IntKey,
            keep: retention.retain_notifications,
            children: &[],
        },
    ]
}

/// A notification waits for `order.created` (to know whom to tell) …
pub const AWAITING_CONTACT: &str = "AWAITING_CONTACT";
/// … or has its deliveries queued.
pub const ROUTED: &str = "ROUTED";

/// A delivery's states.
pub const PENDING: &str = "PENDING";
/// Accepted by a receiver that reports later whether it reached the person (an SMS with
/// a status callback): waits for that receipt, not for the dispatcher.
pub const SENT: &str = "SENT";
pub const DELIVERED: &str = "DELIVERED";
pub const FAILED: &str = "FAILED";
/// Gathered into a digest (named by `digest`): goes as part of that digest's message, never
/// on its own.
pub const GATHERED: &str = "GATHERED";
