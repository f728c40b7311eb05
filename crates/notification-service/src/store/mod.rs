//! notification-service's database.
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
//!   the digest goes as the delivery that opened its window ([`crate::schedule`]). A
//!   fallback is a delivery of its own with `fallback_of` and `fallback_reason`
//!   ([`crate::delivery::fallback`]).
//! - `order_contacts`: the projection of `order.created` (who placed an order and how to
//!   reach them). Its row for an order is also the lock that serializes "an inventory event
//!   arrives" with "the order it is about arrives", whichever comes first.
//! - `user_contacts`: the defaults users register with `PUT /api/users/{userId}/contact`.
//! - `notification_preferences`: the channels users want per kind of notification, and
//!   when notices come (time zone, quiet hours, critical kinds, digest window)
//!   (`PUT /api/users/{userId}/notification-preferences`, [`crate::preferences`]).
//! - `push_subscriptions`: the browsers' Web Push subscriptions users register
//!   (`POST /api/users/{userId}/push-subscriptions`), one per endpoint; `push_vapid_key`:
//!   the VAPID key pair push requests are signed with, made once ([`vapid_private_key`]).
//! - the outbox every service has (for `notification.failed`).

use contracts::Contact;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::Context;
use chrono::Utc;
use platform::db::{placeholders, value_rows, Backend, Database, Schema, Tx};
use platform::retention::{Prune, RetentionArgs, Walk};

use crate::delivery::channels::Outgoing;
use crate::preferences::{ChannelsByKind, Preferences, QuietHours, Timing};
use serde::Serialize;
use sqlx::Row;

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
    // The channels a user wants per kind of notification (JSON: crate::preferences).
    "CREATE TABLE notification_preferences (
        user_id {int} PRIMARY KEY,
        channels TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )",
    // When a user's notices come: time zone, quiet hours, critical kinds, digest window
    // (JSON: crate::preferences::Timing).
    "ALTER TABLE notification_preferences ADD COLUMN timing TEXT NOT NULL DEFAULT '{}'",
    // Deliveries: whom they are for (digests are per user and channel); why one waits past
    // the time it was routed (`quietHours`, `digest`: crate::schedule); the digest it
    // carries or was gathered into (the digest's idempotency key); when the window of one
    // that carries a digest opened (ms); and, for a fallback, the delivery it replaces and
    // why.
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
    // Web Push (crate::delivery::channels::push): the browsers' subscriptions users
    // register, one row per endpoint (keys base64url, unpadded) …
    "CREATE TABLE push_subscriptions (
        id {id},
        user_id {int} NOT NULL,
        endpoint TEXT NOT NULL UNIQUE,
        p256dh TEXT NOT NULL,
        auth TEXT NOT NULL,
        created_at TEXT NOT NULL
    )",
    "CREATE INDEX push_subscriptions_by_user ON push_subscriptions (user_id, id)",
    // … and the service's VAPID key pair, made once and shared by every instance on the
    // database: one row (id 1), the private key as base64url of its 32 bytes.
    "CREATE TABLE push_vapid_key (
        id {int} PRIMARY KEY,
        private_key TEXT NOT NULL,
        created_at TEXT NOT NULL
    )",
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

/// What to record for one event, before it is routed.
pub struct NewNotification<'a> {
    pub event_id: &'a str,
    pub order_id: i64,
    pub event_type: &'a str,
    pub kind: &'a str,
    /// JSON: what the templates will be given once the user is known.
    pub context: &'a str,
    /// The trace context the webhook request continues ([`platform::telemetry::trace_text`]).
    pub trace: &'a str,
}

/// Records each notification unless one exists for its event, in one statement: the ids
/// of those that were new, by event id. A notification with a `Routed` is recorded routed
/// (its deliveries follow in the same transaction); without, it waits for its order's
/// contact. An event id given twice is recorded once (the first).
pub async fn insert_notifications(
    tx: &mut Tx,
    notifications: &[(NewNotification<'_>, Option<Routed<'_>>)],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let mut seen = HashSet::new();
    let unique: Vec<_> = notifications
        .iter()
        .filter(|(n, _)| seen.insert(n.event_id))
        .collect();
    let now = platform::now_text();
    let mut ids = HashMap::with_capacity(unique.len());
    for chunk in platform::db::statement_chunks(&unique, 13) {
        let sql = format!(
            "INSERT INTO notifications (event_id, order_id, event_type, kind, channel, status, message, subject, html, payload, context, trace, created_at)
             VALUES {} ON CONFLICT (event_id) DO NOTHING RETURNING id, event_id",
            value_rows(chunk.len(), 13)
        );
        let mut query = sqlx::query(&sql);
        for (n, routed) in chunk {
            query = query
                .bind(n.event_id)
                .bind(n.order_id)
                .bind(n.event_type)
                .bind(n.kind)
                .bind(routed.as_ref().map_or("", |r| r.channels))
                .bind(if routed.is_some() {
                    ROUTED
                } else {
                    AWAITING_CONTACT
                })
                .bind(routed.as_ref().map_or("", |r| r.rendered.text.as_str()))
                .bind(routed.as_ref().map_or("", |r| r.rendered.subject.as_str()))
                .bind(routed.as_ref().map_or("", |r| r.rendered.html.as_str()))
                .bind(routed.as_ref().map_or("", |r| r.payload))
                .bind(n.context)
                .bind(n.trace)
                .bind(&now);
        }
        for row in query.fetch_all(&mut **tx).await? {
            ids.insert(row.try_get("event_id")?, row.try_get("id")?);
        }
    }
    Ok(ids)
}

/// A notification's message as routed: rendered, and the channels it goes to.
pub struct Routed<'a> {
    pub rendered: &'a crate::templates::Rendered,
    /// The webhook body (JSON).
    pub payload: &'a str,
    /// The channels, comma-separated.
    pub channels: &'a str,
}

/// Marks a waiting notification routed, with its rendered message.
pub async fn set_routed(tx: &mut Tx, id: i64, routed: &Routed<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET subject = $1, message = $2, html = $3, payload = $4, channel = $5, status = $6
         WHERE id = $7",
    )
    .bind(&routed.rendered.subject)
    .bind(&routed.rendered.text)
    .bind(&routed.rendered.html)
    .bind(routed.payload)
    .bind(routed.channels)
    .bind(ROUTED)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Who placed an order and the contact it carried, once `order.created` has been seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderContact {
    pub user_id: i64,
    pub contact: Contact,
}

/// Locks the orders' projection rows (creating placeholders), in order id order, and
/// returns what is known of each (None: its `order.created` was not seen yet). Every
/// transaction that routes an order's notifications takes this lock first.
pub async fn lock_orders(
    tx: &mut Tx,
    order_ids: &BTreeSet<i64>,
) -> Result<HashMap<i64, Option<OrderContact>>, sqlx::Error> {
    let now = platform::now_text();
    let ids: Vec<i64> = order_ids.iter().copied().collect();
    let mut known = HashMap::with_capacity(ids.len());
    for chunk in platform::db::statement_chunks(&ids, 3) {
        let sql = format!(
            "INSERT INTO order_contacts (order_id, known, updated_at) VALUES {}
             ON CONFLICT (order_id) DO UPDATE SET order_id = excluded.order_id
             RETURNING order_id, user_id, email, webhook_url, phone, known",
            value_rows(chunk.len(), 3)
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id).bind(0_i64).bind(&now);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let order = match row.try_get::<i64, _>("known")? {
                0 => None,
                _ => Some(OrderContact {
                    user_id: row.try_get("user_id")?,
                    contact: Contact {
                        email: row.try_get("email")?,
                        webhook_url: row.try_get("webhook_url")?,
                        phone: row.try_get("phone")?,
                    },
                }),
            };
            known.insert(row.try_get("order_id")?, order);
        }
    }
    Ok(known)
}

/// Records (or re-records, identically) who placed each order and its contact, locking
/// the rows in order id order; one statement.
pub async fn record_orders(
    tx: &mut Tx,
    orders: &BTreeMap<i64, OrderContact>,
) -> Result<(), sqlx::Error> {
    let now = platform::now_text();
    let orders: Vec<_> = orders.iter().collect();
    for chunk in platform::db::statement_chunks(&orders, 7) {
        let sql = format!(
            "INSERT INTO order_contacts (order_id, user_id, email, webhook_url, phone, known, updated_at)
             VALUES {}
             ON CONFLICT (order_id) DO UPDATE SET user_id = excluded.user_id, email = excluded.email,
                 webhook_url = excluded.webhook_url, phone = excluded.phone, known = 1,
                 updated_at = excluded.updated_at",
            value_rows(chunk.len(), 7)
        );
        let mut query = sqlx::query(&sql);
        for (order_id, order) in chunk {
            query = query
                .bind(**order_id)
                .bind(order.user_id)
                .bind(order.contact.email.as_deref())
                .bind(order.contact.webhook_url.as_deref())
                .bind(order.contact.phone.as_deref())
                .bind(1_i64)
                .bind(&now);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A recorded notification not yet routed.
pub struct Awaiting {
    pub id: i64,
    pub order_id: i64,
    pub event_id: String,
    pub kind: String,
    /// JSON: what the templates will be given.
    pub context: String,
}

/// The notifications of `order_ids` still waiting for their order's contact, oldest first.
pub async fn awaiting_of(tx: &mut Tx, order_ids: &[i64]) -> Result<Vec<Awaiting>, sqlx::Error> {
    let mut waiting = Vec::new();
    for chunk in platform::db::statement_chunks(order_ids, 1) {
        let sql = format!(
            "SELECT id, order_id, event_id, kind, context FROM notifications
             WHERE status = $1 AND order_id IN ({}) ORDER BY id",
            placeholders(2, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(AWAITING_CONTACT);
        for id in chunk {
            query = query.bind(*id);
        }
        for r in query.fetch_all(&mut **tx).await? {
            waiting.push(Awaiting {
                id: r.try_get("id")?,
                order_id: r.try_get("order_id")?,
                event_id: r.try_get("event_id")?,
                kind: r.try_get("kind")?,
                context: r.try_get("context")?,
            });
        }
    }
    waiting.sort_by_key(|w| w.id);
    Ok(waiting)
}

/// The template kinds of the notifications that tell an order's decision.
pub const DECIDED_KINDS: [&str; 3] = ["order.confirmed", "order.rejected", "order.cancelled"];

/// The events of those notifications, for notifications recorded before kinds were kept
/// (`kind` empty).
const DECIDED_EVENT_TYPES: [&str; 3] = [
    contracts::topics::INVENTORY_RESERVED,
    contracts::topics::INVENTORY_REJECTED,
    contracts::topics::INVENTORY_RELEASED,
];

/// Which of `order_ids` have a notification of their decision (confirmed, rejected or
/// cancelled) already; one statement per [`platform::db::statement_chunks`] piece.
pub async fn decided_among(tx: &mut Tx, order_ids: &[i64]) -> Result<HashSet<i64>, sqlx::Error> {
    let mut decided = HashSet::new();
    for chunk in platform::db::statement_chunks(order_ids, 1) {
        let sql = format!(
            "SELECT DISTINCT order_id FROM notifications
             WHERE order_id IN ({})
               AND (kind IN ($1, $2, $3) OR (kind = '' AND event_type IN ($4, $5, $6)))",
            placeholders(7, chunk.len())
        );
        let mut query = sqlx::query_scalar(&sql);
        for kind in DECIDED_KINDS {
            query = query.bind(kind);
        }
        for event_type in DECIDED_EVENT_TYPES {
            query = query.bind(event_type);
        }
        for id in chunk {
            query = query.bind(*id);
        }
        let ids: Vec<i64> = query.fetch_all(&mut **tx).await?;
        decided.extend(ids);
    }
    Ok(decided)
}

/// One channel's delivery of a notification, to be queued.
pub struct NewDelivery {
    pub notification_id: i64,
    pub order_id: i64,
    /// Whom it is for.
    pub user_id: Option<i64>,
    pub channel: &'static str,
    pub recipient: String,
    pub idempotency_key: String,
    /// Sent by the caller as it is queued (the log channel): stored `DELIVERED` after one
    /// attempt instead of `PENDING`, and the dispatcher never sees it.
    pub sent: bool,
    /// Gathered into the digest `digest` names: stored `GATHERED`, never sent on its own.
    pub gathered: bool,
    /// When it is due (ms since the epoch): when it was routed, or later when held.
    pub due_ms: i64,
    /// Why it waits past the time it was routed ([`crate::schedule::HELD_QUIET`],
    /// [`crate::schedule::HELD_DIGEST`]).
    pub held: Option<&'static str>,
    /// The digest it carries or was gathered into: the digest's idempotency key.
    pub digest: Option<String>,
    /// For the delivery that carries a digest: when its window opened (ms).
    pub digest_start: Option<i64>,
    /// For a fallback: the delivery it replaces, and why.
    pub fallback_of: Option<i64>,
    pub fallback_reason: Option<String>,
}

impl NewDelivery {
    /// A delivery due at `due_ms`, held by nothing, of no digest, no fallback.
    pub fn plain(
        notification_id: i64,
        order_id: i64,
        user_id: i64,
        channel: &'static str,
        recipient: String,
        idempotency_key: String,
        due_ms: i64,
    ) -> Self {
        Self {
            notification_id,
            order_id,
            user_id: Some(user_id),
            channel,
            recipient,
            idempotency_key,
            sent: false,
            gathered: false,
            due_ms,
            held: None,
            digest: None,
            digest_start: None,
            fallback_of: None,
            fallback_reason: None,
        }
    }

    fn status(&self) -> &'static str {
        if self.sent {
            DELIVERED
        } else if self.gathered {
            GATHERED
        } else {
            PENDING
        }
    }
}

/// Queues deliveries (each once: a repeated idempotency key is skipped), one statement;
/// returns the idempotency keys of those it added.
pub async fn queue_deliveries(
    tx: &mut Tx,
    deliveries: &[NewDelivery],
) -> Result<HashSet<String>, sqlx::Error> {
    let now = platform::now_text();
    let mut added = HashSet::with_capacity(deliveries.len());
    for chunk in platform::db::statement_chunks(deliveries, 17) {
        let sql = format!(
            "INSERT INTO deliveries (notification_id, order_id, user_id, channel, recipient, idempotency_key,
                 status, attempts, next_attempt_at, created_at, updated_at, delivered_at, held, digest,
                 digest_start, fallback_of, fallback_reason)
             VALUES {} ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
            value_rows(chunk.len(), 17)
        );
        let mut query = sqlx::query_scalar(&sql);
        for d in chunk {
            query = query
                .bind(d.notification_id)
                .bind(d.order_id)
                .bind(d.user_id)
                .bind(d.channel)
                .bind(&d.recipient)
                .bind(&d.idempotency_key)
                .bind(d.status())
                .bind(i64::from(d.sent))
                .bind(d.due_ms)
                .bind(&now)
                .bind(&now)
                .bind(d.sent.then_some(&now))
                .bind(d.held)
                .bind(d.digest.as_deref())
                .bind(d.digest_start)
                .bind(d.fallback_of)
                .bind(d.fallback_reason.as_deref());
        }
        added.extend(query.fetch_all(&mut **tx).await?);
    }
    Ok(added)
}

/// A digest window still open: the delivery that carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenDigest {
    pub id: i64,
    /// The digest's idempotency key, which its gathered deliveries name.
    pub key: String,
    /// When it goes (ms).
    pub due_ms: i64,
}

/// The open digest window of `user_id` on `channel` (to `recipient` only, for a channel
/// whose windows are per recipient: push's, per subscription) at `now_ms`, locked for this
/// transaction, if there is one: the newest delivery carrying a digest that is still to
/// come ([`crate::schedule::joins`]) and not yet claimed (a claimed one's message is fixed:
/// a resend must be the same bytes). One statement; on PostgreSQL the row lock makes a
/// claim that comes meanwhile skip it, and a claim that came first makes this find none.
pub async fn open_digest(
    tx: &mut Tx,
    user_id: i64,
    channel: &str,
    recipient: Option<&str>,
    now_ms: i64,
) -> Result<Option<OpenDigest>, sqlx::Error> {
    let same_recipient = match recipient {
        Some(_) => "AND recipient = $6",
        None => "",
    };
    let sql = format!(
        "UPDATE deliveries SET updated_at = $1
         WHERE id = (SELECT id FROM deliveries
                     WHERE user_id = $2 AND channel = $3 AND digest_start IS NOT NULL
                       AND next_attempt_at > $4 AND status = $5 AND attempts = 0
                       {same_recipient}
                     ORDER BY next_attempt_at DESC, id DESC LIMIT 1)
           AND status = $5 AND attempts = 0
         RETURNING id, idempotency_key, next_attempt_at"
    );
    let mut query = sqlx::query(&sql)
        .bind(platform::now_text())
        .bind(user_id)
        .bind(channel)
        .bind(now_ms)
        .bind(PENDING);
    if let Some(recipient) = recipient {
        query = query.bind(recipient);
    }
    let row = query.fetch_optional(&mut **tx).await?;
    row.map(|row| {
        Ok(OpenDigest {
            id: row.try_get("id")?,
            key: row.try_get("idempotency_key")?,
            due_ms: row.try_get("next_attempt_at")?,
        })
    })
    .transpose()
}

/// The registered contacts of `user_ids`, by user.
pub async fn user_contacts(
    tx: &mut Tx,
    user_ids: &BTreeSet<i64>,
) -> Result<HashMap<i64, Contact>, sqlx::Error> {
    let user_ids: Vec<i64> = user_ids.iter().copied().collect();
    let mut contacts = HashMap::new();
    for chunk in platform::db::statement_chunks(&user_ids, 1) {
        let sql = format!(
            "SELECT user_id, email, webhook_url, phone FROM user_contacts WHERE user_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let contact = Contact {
                email: row.try_get("email")?,
                webhook_url: row.try_get("webhook_url")?,
                phone: row.try_get("phone")?,
            };
            contacts.insert(row.try_get("user_id")?, contact);
        }
    }
    Ok(contacts)
}

/// The contact a user registered, if any.
pub async fn user_contact(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    user_id: i64,
) -> Result<Option<UserContact>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT user_id, email, webhook_url, phone, updated_at FROM user_contacts WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(executor)
    .await?;
    row.map(|row| {
        Ok(UserContact {
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            webhook_url: row.try_get("webhook_url")?,
            phone: row.try_get("phone")?,
            updated_at: row.try_get("updated_at")?,
        })
    })
    .transpose()
}

/// A user's registered defaults, as `GET/PUT /api/users/{userId}/contact` show them.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserContact {
    pub user_id: i64,
    pub email: Option<String>,
    pub webhook_url: Option<String>,
    pub phone: Option<String>,
    pub updated_at: String,
}

/// Sets (replaces) a user's defaults.
pub async fn put_user_contact(
    db: &Database,
    user_id: i64,
    contact: &Contact,
) -> Result<UserContact, sqlx::Error> {
    let now = platform::now_text();
    // Every write goes through a transaction, so it queues at the write gate.
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO user_contacts (user_id, email, webhook_url, phone, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, webhook_url = excluded.webhook_url,
             phone = excluded.phone, updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(contact.email.as_deref())
    .bind(contact.webhook_url.as_deref())
    .bind(contact.phone.as_deref())
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(UserContact {
        user_id,
        email: contact.email.clone(),
        webhook_url: contact.webhook_url.clone(),
        phone: contact.phone.clone(),
        updated_at: now,
    })
}

/// The preferences of `user_ids` that have any, by user.
pub async fn user_preferences(
    tx: &mut Tx,
    user_ids: &BTreeSet<i64>,
) -> Result<HashMap<i64, Preferences>, sqlx::Error> {
    let user_ids: Vec<i64> = user_ids.iter().copied().collect();
    let mut preferences = HashMap::new();
    for chunk in platform::db::statement_chunks(&user_ids, 1) {
        let sql = format!(
            "SELECT user_id, channels, timing FROM notification_preferences WHERE user_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let channels: String = row.try_get("channels")?;
            let timing: String = row.try_get("timing")?;
            preferences.insert(
                row.try_get("user_id")?,
                Preferences {
                    channels: from_json(&channels)?,
                    timing: from_json(&timing)?,
                },
            );
        }
    }
    Ok(preferences)
}

/// Stored preferences (JSON) read back.
fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A user's preferences, as `GET/PUT /api/users/{userId}/notification-preferences` show
/// them.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPreferences {
    pub user_id: i64,
    /// Per kind, the channels chosen; a kind not named gets every channel.
    pub channels: ChannelsByKind,
    /// The IANA time zone the quiet hours are in (`Europe/Berlin`), if set.
    pub time_zone: Option<String>,
    /// Quiet hours (local times `HH:MM`), if set: a notice due inside them waits until
    /// they end, unless its kind is critical.
    pub quiet_hours: Option<QuietHours>,
    /// Kinds that go at once, inside quiet hours and digest windows too.
    pub critical: Vec<String>,
    /// The digest window in minutes (0: none): notices inside one window go as one message
    /// per channel when it closes.
    pub digest_minutes: i64,
    pub updated_at: String,
}

impl UserPreferences {
    fn of(user_id: i64, preferences: Preferences, updated_at: String) -> Self {
        let Preferences { channels, timing } = preferences;
        Self {
            user_id,
            channels,
            time_zone: timing.time_zone,
            quiet_hours: timing.quiet_hours,
            critical: timing.critical,
            digest_minutes: timing.digest_minutes,
            updated_at,
        }
    }
}

/// The preferences a user set, if any.
pub async fn notification_preferences(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    user_id: i64,
) -> Result<Option<UserPreferences>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT user_id, channels, timing, updated_at FROM notification_preferences WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(executor)
    .await?;
    row.map(|row| {
        let channels: String = row.try_get("channels")?;
        let timing: String = row.try_get("timing")?;
        let preferences = Preferences {
            channels: from_json(&channels)?,
            timing: from_json::<Timing>(&timing)?,
        };
        Ok(UserPreferences::of(
            row.try_get("user_id")?,
            preferences,
            row.try_get("updated_at")?,
        ))
    })
    .transpose()
}

/// Sets (replaces) a user's preferences.
pub async fn put_notification_preferences(
    db: &Database,
    user_id: i64,
    preferences: &Preferences,
) -> Result<UserPreferences, sqlx::Error> {
    let now = platform::now_text();
    let channels = serde_json::to_string(&preferences.channels).expect("preferences serialize");
    let timing = serde_json::to_string(&preferences.timing).expect("preferences serialize");
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, channels, timing, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE SET channels = excluded.channels,
             timing = excluded.timing, updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(&channels)
    .bind(&timing)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(UserPreferences::of(user_id, preferences.clone(), now))
}

// A notification and its deliveries as the API shows them: in `contracts::api`, where the
// console reads them too.
pub use contracts::api::{DeliveryView, Notification};

/// Notifications of one order (oldest first), or the latest `limit` of all orders (newest
/// first), each with its deliveries: one query (the notifications, joined with their
/// deliveries; a notification without any yet comes as one row of NULLs).
/// Notifications of one order (oldest first) or the latest (newest first), up to `limit`;
/// with `user`, only of orders that user placed (as `order.created` said).
pub async fn list(
    db: &Database,
    order_id: Option<i64>,
    user: Option<i64>,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    let mut filters = Vec::new();
    if order_id.is_some() {
        filters.push(format!("order_id = ${}", filters.len() + 1));
    }
    if user.is_some() {
        filters.push(format!(
            "order_id IN (SELECT order_id FROM order_contacts WHERE user_id = ${})",
            filters.len() + 1
        ));
    }
    let filter = match filters.is_empty() {
        true => String::new(),
        false => format!("WHERE {}", filters.join(" AND ")),
    };
    let limit_at = filters.len() + 1;
    let (selected, order) = match order_id {
        Some(_) => (
            format!("SELECT * FROM notifications {filter} ORDER BY id LIMIT ${limit_at}"),
            "n.id",
        ),
        None => (
            format!("SELECT * FROM notifications {filter} ORDER BY id DESC LIMIT ${limit_at}"),
            "n.id DESC",
        ),
    };
    let sql = format!(
        "SELECT n.id, n.event_id, n.order_id, n.event_type, n.kind, n.status, n.subject, n.message,
                n.created_at, d.channel, d.recipient, d.status AS d_status, d.attempts, d.last_error,
                d.idempotency_key, d.created_at AS d_created_at, d.updated_at AS d_updated_at,
                d.delivered_at, d.next_attempt_at, d.held, d.digest, d.fallback_reason,
                f.channel AS fallback_channel
         FROM ({selected}) n LEFT JOIN deliveries d ON d.notification_id = n.id
             LEFT JOIN deliveries f ON f.id = d.fallback_of
         ORDER BY {order}, d.id"
    );
    let mut query = sqlx::query(&sql);
    for value in [order_id, user].into_iter().flatten() {
        query = query.bind(value);
    }
    let query = query.bind(limit);
    let rows = query.fetch_all(&db.pool).await?;
    let mut notifications: Vec<Notification> = Vec::new();
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        if notifications.last().is_none_or(|n| n.id != id) {
            notifications.push(Notification {
                id,
                event_id: row.try_get("event_id")?,
                order_id: row.try_get("order_id")?,
                event_type: row.try_get("event_type")?,
                kind: row.try_get("kind")?,
                status: row.try_get("status")?,
                subject: row.try_get("subject")?,
                message: row.try_get("message")?,
                created_at: row.try_get("created_at")?,
                deliveries: Vec::new(),
            });
        }
        let Some(channel) = row.try_get::<Option<String>, _>("channel")? else {
            continue;
        };
        let status: String = row.try_get("d_status")?;
        let next: i64 = row.try_get("next_attempt_at")?;
        let attempts: i64 = row.try_get("attempts")?;
        let held: Option<String> = row.try_get("held")?;
        let delivery = DeliveryView {
            channel,
            recipient: row.try_get("recipient")?,
            next_attempt_at: (status == PENDING || status == GATHERED)
                .then(|| chrono::DateTime::from_timestamp_millis(next))
                .flatten()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            held: held.filter(|_| status == PENDING && attempts == 0),
            digest: row.try_get("digest")?,
            fallback_of: row.try_get("fallback_channel")?,
            fallback_reason: row.try_get("fallback_reason")?,
            status,
            attempts,
            last_error: row.try_get("last_error")?,
            idempotency_key: row.try_get("idempotency_key")?,
            created_at: row.try_get("d_created_at")?,
            updated_at: row.try_get("d_updated_at")?,
            delivered_at: row.try_get("delivered_at")?,
        };
        notifications
            .last_mut()
            .expect("pushed above")
            .deliveries
            .push(delivery);
    }
    Ok(notifications)
}

/// A claimed delivery: the message and which attempt this is.
pub struct Claimed {
    pub attempts: i64,
    pub event_id: String,
    pub outgoing: Outgoing,
}

/// Claims up to `limit` deliveries `PENDING` and due at `now_ms` (ms since the epoch):
/// each gets `attempts + 1` and is leased (its next attempt moves to `lease_until`) in one
/// statement; on PostgreSQL `FOR UPDATE SKIP LOCKED` lets several instances share the queue.
pub async fn claim_due(
    tx: &mut Tx,
    backend: Backend,
    now_ms: i64,
    lease_until: i64,
    limit: i64,
) -> anyhow::Result<Vec<Claimed>> {
    let lock = match backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let ids = sqlx::query(&format!(
        "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, updated_at = $2
             WHERE id IN (SELECT id FROM deliveries WHERE status = $3 AND next_attempt_at <= $4
                          ORDER BY next_attempt_at, id LIMIT $5 {lock})
             RETURNING id"
    ))
    .bind(lease_until)
    .bind(platform::now_text())
    .bind(PENDING)
    .bind(now_ms)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = ids
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let placeholders = (1..=ids.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT d.id, d.order_id, d.user_id, d.channel, d.recipient, d.idempotency_key, d.attempts,
                    d.digest, n.event_id, n.kind, n.subject, n.message, n.html, n.payload, n.trace,
                    n.created_at
             FROM deliveries d JOIN notifications n ON n.id = d.notification_id
             WHERE d.id IN ({placeholders}) ORDER BY d.id"
    );
    let mut query = sqlx::query(&sql);
    for id in &ids {
        query = query.bind(*id);
    }
    let rows = query.fetch_all(&mut **tx).await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let created_at: String = row.try_get("created_at")?;
        let digest: Option<String> = row.try_get("digest")?;
        let user_id: Option<i64> = row.try_get("user_id")?;
        let mut outgoing = Outgoing {
            delivery_id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            channel: row.try_get("channel")?,
            recipient: row.try_get("recipient")?,
            idempotency_key: row.try_get("idempotency_key")?,
            kind: row.try_get("kind")?,
            subject: row.try_get("subject")?,
            text: row.try_get("message")?,
            html: row.try_get("html")?,
            payload: row.try_get("payload")?,
            trace: row.try_get("trace")?,
            created_at: chrono::DateTime::parse_from_rfc3339(&created_at)
                .with_context(|| format!("notification time {created_at:?}"))?
                .with_timezone(&Utc),
        };
        if let Some(key) = &digest {
            let items = digest_items(tx, key).await?;
            // A window that gathered nothing else goes as its notice's own message, if
            // that has what the channel sends (a fallback's may not).
            let own_will_do = items.len() <= 1
                && !(outgoing.channel == "email" && outgoing.html.is_empty())
                && !(outgoing.channel == "webhook" && outgoing.payload.is_empty());
            if !items.is_empty() && !own_will_do {
                let composed = crate::delivery::digest::compose(
                    user_id.unwrap_or_default(),
                    &outgoing.channel,
                    key,
                    outgoing.created_at,
                    &items,
                );
                outgoing.kind = crate::delivery::digest::KIND.to_string();
                outgoing.subject = composed.subject;
                outgoing.text = composed.text;
                outgoing.html = composed.html;
                outgoing.payload = composed.payload;
            }
        }
        claimed.push(Claimed {
            attempts: row.try_get("attempts")?,
            event_id: row.try_get("event_id")?,
            outgoing,
        });
    }
    Ok(claimed)
}

/// The notices of digest `key` (the notifications of every delivery naming it), in the
/// order they were recorded.
pub async fn digest_items(
    tx: &mut Tx,
    key: &str,
) -> Result<Vec<crate::delivery::digest::Item>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, event_id, order_id, kind, subject, message FROM notifications
         WHERE id IN (SELECT notification_id FROM deliveries WHERE digest = $1)
         ORDER BY id",
    )
    .bind(key)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(crate::delivery::digest::Item {
                event_id: row.try_get("event_id")?,
                order_id: row.try_get("order_id")?,
                kind: row.try_get("kind")?,
                subject: row.try_get("subject")?,
                text: row.try_get("message")?,
            })
        })
        .collect()
}

/// How an attempt ends its delivery.
pub struct Finish<'a> {
    pub status: &'a str,
    /// When it is due again (ms since the epoch), for a retry.
    pub due: Option<i64>,
    pub error: Option<&'a str>,
    pub delivered_at: Option<&'a str>,
    /// The receiver's id of the message, if it gave one (kept if not).
    pub provider_id: Option<&'a str>,
    pub now: &'a str,
}

/// Records how attempt `attempts` of delivery `id` ended; false if a newer attempt has
/// taken the delivery over (its lease ran out) or it is no longer `PENDING`, so that a
/// slow sender cannot overwrite what the newer attempt recorded.
pub async fn finish_attempt(
    tx: &mut Tx,
    id: i64,
    attempts: i64,
    finish: &Finish<'_>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE deliveries SET status = $1, next_attempt_at = COALESCE($2, next_attempt_at),
             last_error = $3, delivered_at = $4, updated_at = $5,
             provider_id = COALESCE($6, provider_id)
         WHERE id = $7 AND status = $8 AND attempts = $9",
    )
    .bind(finish.status)
    .bind(finish.due)
    .bind(finish.error)
    .bind(finish.delivered_at)
    .bind(finish.now)
    .bind(finish.provider_id)
    .bind(id)
    .bind(PENDING)
    .bind(attempts)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// An SMS delivery a receipt is about, as found by its idempotency key.
pub struct SmsDelivery {
    pub id: i64,
    pub order_id: i64,
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    /// The notification's event id and kind (for `notification.failed`).
    pub event_id: String,
    pub kind: String,
}

/// The delivery on `channel` whose idempotency key is `key`.
pub async fn delivery_by_key(
    tx: &mut Tx,
    channel: &str,
    key: &str,
) -> Result<Option<SmsDelivery>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT d.id, d.order_id, d.recipient, d.status, d.attempts, n.event_id, n.kind
         FROM deliveries d JOIN notifications n ON n.id = d.notification_id
         WHERE d.idempotency_key = $1 AND d.channel = $2",
    )
    .bind(key)
    .bind(channel)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        Ok(SmsDelivery {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            recipient: row.try_get("recipient")?,
            status: row.try_get("status")?,
            attempts: row.try_get("attempts")?,
            event_id: row.try_get("event_id")?,
            kind: row.try_get("kind")?,
        })
    })
    .transpose()
}

/// What a delivery receipt does to its delivery.
pub struct ReceiptUpdate<'a> {
    /// The provider's message id and the status it reported.
    pub provider_id: &'a str,
    pub provider_status: &'a str,
    /// `DELIVERED` or `FAILED`; None leaves the status as it is.
    pub status: Option<&'a str>,
    pub error: Option<&'a str>,
    pub now: &'a str,
}

/// Records a receipt for delivery `id` if it is still `PENDING` or `SENT`, in one
/// statement (a receipt after `DELIVERED` or `FAILED`, one that overtook another, changes
/// nothing); false if it was not.
pub async fn record_receipt(
    tx: &mut Tx,
    id: i64,
    receipt: &ReceiptUpdate<'_>,
) -> Result<bool, sqlx::Error> {
    let delivered_at = (receipt.status == Some(DELIVERED)).then_some(receipt.now);
    let updated = sqlx::query(
        "UPDATE deliveries SET provider_id = $1, provider_status = $2,
             status = COALESCE($3, status), last_error = COALESCE($4, last_error),
             delivered_at = COALESCE($5, delivered_at), updated_at = $6
         WHERE id = $7 AND status IN ($8, $9)",
    )
    .bind(receipt.provider_id)
    .bind(receipt.provider_status)
    .bind(receipt.status)
    .bind(receipt.error)
    .bind(delivered_at)
    .bind(receipt.now)
    .bind(id)
    .bind(PENDING)
    .bind(SENT)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// A push subscription as the API shows it (its keys are not shown: the authentication
/// secret is the subscriber's and ours).
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSubscriptionView {
    pub id: i64,
    pub user_id: i64,
    /// The push service's URL for the subscribing browser.
    pub endpoint: String,
    pub created_at: String,
}

/// A push subscription as stored: where to post and the keys to encrypt for (base64url).
/// (No `Debug`: it holds the subscriber's authentication secret.)
#[derive(Clone)]
pub struct StoredPushSubscription {
    pub id: i64,
    pub user_id: i64,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// What registering a push subscription did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registered {
    /// A new subscription.
    Created(PushSubscriptionView),
    /// The endpoint was registered already, for this user (the keys updated if they
    /// changed) or for another with the same keys (moved to this user: only the browser
    /// that holds the subscription knows its authentication secret).
    Existing(PushSubscriptionView),
    /// The endpoint is another user's, with other keys: nothing changed.
    Taken,
    /// The user has `max` subscriptions already.
    TooMany { max: i64 },
}

/// Registers `subscription` for `user_id`, idempotent on its endpoint (see [`Registered`]);
/// at most `max` per user. One transaction.
pub async fn register_push_subscription(
    db: &Database,
    user_id: i64,
    subscription: &contracts::values::PushSubscription,
    max: i64,
) -> Result<Registered, sqlx::Error> {
    let endpoint = subscription.endpoint().as_str();
    let p256dh = subscription.p256dh_base64url();
    let auth = subscription.auth_base64url();
    let mut tx = db.begin().await?;
    let mut found = push_subscription_by_endpoint(&mut tx, endpoint).await?;
    if found.is_none() {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM push_subscriptions WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
        if count >= max {
            return Ok(Registered::TooMany { max });
        }
        let now = platform::now_text();
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (endpoint) DO NOTHING RETURNING id",
        )
        .bind(user_id)
        .bind(endpoint)
        .bind(&p256dh)
        .bind(&auth)
        .bind(&now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = inserted {
            tx.commit().await?;
            return Ok(Registered::Created(PushSubscriptionView {
                id,
                user_id,
                endpoint: endpoint.to_string(),
                created_at: now,
            }));
        }
        // Registered meanwhile by another request: as if it had been there.
        found = push_subscription_by_endpoint(&mut tx, endpoint).await?;
    }
    let Some((stored, created_at)) = found else {
        // Registered and removed again meanwhile: the caller may try again.
        return Ok(Registered::Taken);
    };
    let same_keys = stored.p256dh == p256dh && stored.auth == auth;
    if stored.user_id != user_id && !same_keys {
        return Ok(Registered::Taken);
    }
    if stored.user_id != user_id || !same_keys {
        sqlx::query(
            "UPDATE push_subscriptions SET user_id = $1, p256dh = $2, auth = $3 WHERE id = $4",
        )
        .bind(user_id)
        .bind(&p256dh)
        .bind(&auth)
        .bind(stored.id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Registered::Existing(PushSubscriptionView {
        id: stored.id,
        user_id,
        endpoint: stored.endpoint,
        created_at,
    }))
}

/// The subscription registered with `endpoint`, with when it was.
async fn push_subscription_by_endpoint(
    tx: &mut Tx,
    endpoint: &str,
) -> Result<Option<(StoredPushSubscription, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, user_id, endpoint, p256dh, auth, created_at FROM push_subscriptions
         WHERE endpoint = $1",
    )
    .bind(endpoint)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| Ok((stored_push_subscription(&row)?, row.try_get("created_at")?)))
        .transpose()
}

fn stored_push_subscription(
    row: &sqlx::any::AnyRow,
) -> Result<StoredPushSubscription, sqlx::Error> {
    Ok(StoredPushSubscription {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        endpoint: row.try_get("endpoint")?,
        p256dh: row.try_get("p256dh")?,
        auth: row.try_get("auth")?,
    })
}

/// The push subscriptions of `user_id`, oldest first.
pub async fn push_subscriptions_of(
    db: &Database,
    user_id: i64,
) -> Result<Vec<PushSubscriptionView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, user_id, endpoint, created_at FROM push_subscriptions WHERE user_id = $1
         ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PushSubscriptionView {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                endpoint: row.try_get("endpoint")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// Removes push subscription `id`, if it is `user_id`'s (any user's with None); whether
/// there was one. Deliveries still queued for it then fail as they come due
/// ("the push subscription was removed").
pub async fn remove_push_subscription(
    db: &Database,
    user_id: Option<i64>,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let removed = match user_id {
        Some(user_id) => {
            sqlx::query("DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
        }
    };
    tx.commit().await?;
    Ok(removed.rows_affected() > 0)
}

/// Push subscription `id`, to send to.
pub async fn push_subscription(
    db: &Database,
    id: i64,
) -> Result<Option<StoredPushSubscription>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, user_id, endpoint, p256dh, auth FROM push_subscriptions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|row| stored_push_subscription(&row)).transpose()
}

/// The push subscriptions of `user_ids` (their ids, newest first), by user: where their
/// notices go on the push channel.
pub async fn push_subscription_ids(
    tx: &mut Tx,
    user_ids: &BTreeSet<i64>,
) -> Result<HashMap<i64, Vec<i64>>, sqlx::Error> {
    let user_ids: Vec<i64> = user_ids.iter().copied().collect();
    let mut subscriptions: HashMap<i64, Vec<i64>> = HashMap::new();
    for chunk in platform::db::statement_chunks(&user_ids, 1) {
        let sql = format!(
            "SELECT user_id, id FROM push_subscriptions WHERE user_id IN ({}) ORDER BY id DESC",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            subscriptions
                .entry(row.try_get("user_id")?)
                .or_default()
                .push(row.try_get("id")?);
        }
    }
    Ok(subscriptions)
}

/// The VAPID private key every instance on this database signs push requests with: the
/// one stored, or `candidate` (base64url), stored now if none was. Whoever stores first
/// wins; every instance reads that one back.
pub async fn vapid_private_key(db: &Database, candidate: &str) -> Result<String, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO push_vapid_key (id, private_key, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(1_i64)
    .bind(candidate)
    .bind(platform::now_text())
    .execute(&mut *tx)
    .await?;
    let key: String = sqlx::query_scalar("SELECT private_key FROM push_vapid_key WHERE id = $1")
        .bind(1_i64)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(key)
}
