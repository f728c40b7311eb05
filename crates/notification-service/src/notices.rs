//! From event to queued deliveries, in the consumer's database transaction each way:
//!
//! - an event worth telling the customer about ([`Notifier::record`]) is recorded as a
//!   notification, deduplicated by its event id; if the order's `order.created` has been
//!   seen, its deliveries (one per channel) are queued in the same transaction;
//! - otherwise it waits, and the transaction that records the order ([`Notifier::order_seen`])
//!   queues the deliveries of every notification waiting for it.
//!
//! Both take the order's `order_contacts` row first, so whichever comes second sees what
//! the first committed: no notification is left waiting and none is routed twice.
//! Messages are rendered when routed (when the user is known) and stored, so every attempt
//! of a delivery sends the same message. Routing is where the user's channel preferences
//! ([`crate::preferences`]) leave channels out, and where their timing ([`crate::schedule`])
//! sets when each delivery goes: at once, when their quiet hours end (`held`), or as part of
//! a digest (the delivery that opens the window carries it; those routed while it is open
//! are `GATHERED` into it). The log's delivery is written at once in every case: it is the
//! service's record, and wakes nobody.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use contracts::Contact;
use platform::consumer::HandleError;
use platform::db::Tx;
use platform::metrics::Metrics;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::delivery::channels::log::LogChannel;
use crate::delivery::channels::{lane, per_recipient, Channels};
use crate::preferences::{ChannelsByKind, Preferences};
use crate::schedule::{Clock, Decision, Schedule, HELD_DIGEST};
use crate::store::{self, NewDelivery, NewNotification, OrderContact, Routed};
use crate::templates::Templates;

/// One thing to tell a customer.
pub struct Notice {
    /// The event it is about; one notification per event id.
    pub event_id: Uuid,
    pub order_id: i64,
    /// The topic name without prefix (`inventory.reserved`, `order.created.DLT`).
    pub event_type: String,
    /// The template kind (`order.confirmed`, …).
    pub kind: &'static str,
    /// What the templates may use besides `order_id`, `user_id`, `kind` and `event_type`.
    pub fields: Value,
    /// The event as it arrived, passed on to webhooks.
    pub event: Value,
    /// The trace context of the record's processing (W3C headers as a JSON object, empty
    /// when traces are off): the webhook request continues it.
    pub trace: String,
}

/// The shared parts of the handlers that record notices.
#[derive(Clone)]
pub struct Notifier {
    pub templates: Arc<Templates>,
    pub channels: Arc<Channels>,
    /// Woken by the commit of a transaction that queued deliveries.
    pub dispatcher: Arc<Notify>,
    pub metrics: Metrics,
    /// The time routing decisions are taken at (quiet hours, digest windows).
    pub clock: Clock,
}

/// The stable idempotency key of one event's delivery on one channel (its own crate's, with
/// the digests' and fallbacks' keys).
pub use notification_service_rules::keys::idempotency_key;

/// A notification recorded and routed, its deliveries not yet queued.
struct Routing<'a> {
    /// The notification's id.
    id: i64,
    order_id: i64,
    user_id: i64,
    event_id: &'a str,
    kind: &'a str,
    plan: &'a Plan,
}

/// A notification ready to be routed: rendered, with where it goes.
struct Plan {
    rendered: crate::templates::Rendered,
    payload: String,
    channels: String,
    recipients: Vec<(&'static str, String)>,
}

impl Notifier {
    /// Records `notice` once; if the order is known, rendered and with its deliveries
    /// queued in the same transaction.
    pub async fn record(&self, tx: &mut Tx, notice: &Notice) -> Result<(), HandleError> {
        self.record_all(tx, std::slice::from_ref(notice)).await
    }

    /// Records each notice once (the first, if an event comes twice); the notices of known
    /// orders rendered and with their deliveries queued, in the same transaction. Set-based:
    /// one statement each locks the orders, reads the users' contacts and preferences,
    /// records the notifications and queues the deliveries, whatever the number of notices.
    pub async fn record_all(&self, tx: &mut Tx, notices: &[Notice]) -> Result<(), HandleError> {
        if notices.is_empty() {
            return Ok(());
        }
        let order_ids: BTreeSet<i64> = notices.iter().map(|n| n.order_id).collect();
        let orders = store::lock_orders(tx, &order_ids).await?;
        let known = |order_id: i64| orders.get(&order_id).and_then(Option::as_ref);
        let users: BTreeSet<i64> = notices
            .iter()
            .filter_map(|n| known(n.order_id).map(|o| o.user_id))
            .collect();
        let defaults = store::user_contacts(tx, &users).await?;
        let preferences = store::user_preferences(tx, &users).await?;
        let push = self.push_subscriptions(tx, &users).await?;
        let schedules = schedules_of(&preferences);

        let mut rows = Vec::with_capacity(notices.len());
        for notice in notices {
            let event_id = notice.event_id.to_string();
            let context = json!({
                "order_id": notice.order_id,
                "kind": notice.kind,
                "event_type": notice.event_type,
                "fields": notice.fields,
                "event": notice.event,
            });
            let plan = match known(notice.order_id) {
                Some(order) => Some(self.plan(
                    &event_id,
                    notice.order_id,
                    notice.kind,
                    &context,
                    order,
                    defaults.get(&order.user_id),
                    subscriptions_of(&push, order.user_id),
                    preferences.get(&order.user_id).map(|p| &p.channels),
                )?),
                None => None,
            };
            rows.push((event_id, notice, context.to_string(), plan));
        }
        let notifications: Vec<_> = rows
            .iter()
            .map(|(event_id, notice, context, plan)| {
                let new = NewNotification {
                    event_id,
                    order_id: notice.order_id,
                    event_type: &notice.event_type,
                    kind: notice.kind,
                    context,
                    trace: &notice.trace,
                };
                (new, plan.as_ref().map(Plan::routed))
            })
            .collect();
        let ids = store::insert_notifications(tx, &notifications).await?;
        let routed: Vec<_> = rows
            .iter()
            .filter_map(|(event_id, notice, _, plan)| {
                Some(Routing {
                    id: *ids.get(event_id)?,
                    order_id: notice.order_id,
                    user_id: known(notice.order_id)?.user_id,
                    event_id,
                    kind: notice.kind,
                    plan: plan.as_ref()?,
                })
            })
            .collect();
        self.queue(tx, &routed, &schedules).await
    }

    /// Records who placed order `order_id` and how to reach them, and routes the
    /// notifications that were waiting for it.
    pub async fn order_seen(
        &self,
        tx: &mut Tx,
        order_id: i64,
        user_id: i64,
        contact: Contact,
    ) -> Result<(), HandleError> {
        let order = OrderContact { user_id, contact };
        self.orders_seen(tx, BTreeMap::from([(order_id, order)]))
            .await
    }

    /// [`Notifier::order_seen`] for many orders: one statement records them all, one finds
    /// the notifications waiting for any of them (usually none: `order.created` tends to
    /// come first).
    pub async fn orders_seen(
        &self,
        tx: &mut Tx,
        orders: BTreeMap<i64, OrderContact>,
    ) -> Result<(), HandleError> {
        if orders.is_empty() {
            return Ok(());
        }
        store::record_orders(tx, &orders).await?;
        let order_ids: Vec<i64> = orders.keys().copied().collect();
        let waiting = store::awaiting_of(tx, &order_ids).await?;
        if waiting.is_empty() {
            return Ok(());
        }
        let users: BTreeSet<i64> = orders.values().map(|o| o.user_id).collect();
        let defaults = store::user_contacts(tx, &users).await?;
        let preferences = store::user_preferences(tx, &users).await?;
        let push = self.push_subscriptions(tx, &users).await?;
        let schedules = schedules_of(&preferences);
        let mut plans = Vec::with_capacity(waiting.len());
        for w in &waiting {
            let order = &orders[&w.order_id];
            let context: Value = serde_json::from_str(&w.context)
                .map_err(|e| HandleError::transient("openorder.CorruptNotification", e))?;
            let plan = self.plan(
                &w.event_id,
                w.order_id,
                &w.kind,
                &context,
                order,
                defaults.get(&order.user_id),
                subscriptions_of(&push, order.user_id),
                preferences.get(&order.user_id).map(|p| &p.channels),
            )?;
            store::set_routed(tx, w.id, &plan.routed()).await?;
            plans.push(plan);
        }
        let routed: Vec<_> = waiting
            .iter()
            .zip(&plans)
            .map(|(w, plan)| Routing {
                id: w.id,
                order_id: w.order_id,
                user_id: orders[&w.order_id].user_id,
                event_id: &w.event_id,
                kind: &w.kind,
                plan,
            })
            .collect();
        self.queue(tx, &routed, &schedules).await
    }

    /// The push subscriptions of `users` (ids, newest first), if push is on here.
    async fn push_subscriptions(
        &self,
        tx: &mut Tx,
        users: &BTreeSet<i64>,
    ) -> Result<HashMap<i64, Vec<i64>>, HandleError> {
        if self.channels.push.is_none() || users.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(store::push_subscription_ids(tx, users).await?)
    }

    /// Renders a notification for its user and works out its channels (`defaults`: the
    /// user's registered contact, if any; `push`: the user's push subscriptions;
    /// `preferences`: the channels the user wants per kind, if they said).
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        event_id: &str,
        order_id: i64,
        kind: &str,
        context: &Value,
        order: &OrderContact,
        defaults: Option<&Contact>,
        push: &[i64],
        preferences: Option<&ChannelsByKind>,
    ) -> Result<Plan, HandleError> {
        let mut template_context = context["fields"].clone();
        if !template_context.is_object() {
            template_context = json!({});
        }
        for key in ["order_id", "kind", "event_type"] {
            template_context[key] = context[key].clone();
        }
        template_context["user_id"] = json!(order.user_id);
        let reachable = self
            .channels
            .recipients(order.user_id, &order.contact, defaults, push);
        let mut recipients = reachable.clone();
        if let Some(preferences) = preferences {
            recipients.retain(|(channel, _)| preferences.allows(kind, channel));
        }
        // Only what a channel the user can be reached on sends is rendered and stored: the
        // HTML body for e-mail, the JSON body for webhooks. A channel their preferences
        // leave out may still be where a failed delivery falls back to
        // ([`crate::delivery::fallback`]).
        let to = |channel: &str| reachable.iter().any(|(c, _)| *c == channel);
        let rendered = self
            .templates
            .render(kind, &template_context, to("email"))
            .map_err(|e| HandleError::permanent("openorder.TemplateError", format!("{e:#}")))?;
        let payload = if to("webhook") {
            let body = WebhookBody {
                kind,
                timestamp: &context["event"]["timestamp"]
                    .as_str()
                    .or(context["event"]["createdAt"].as_str())
                    .map(str::to_string)
                    .unwrap_or_else(platform::now_text),
                data: WebhookData {
                    event_id,
                    order_id,
                    user_id: order.user_id,
                    event_type: context["event_type"].as_str().unwrap_or_default(),
                    subject: &rendered.subject,
                    text: &rendered.text,
                    event: &context["event"],
                },
            };
            serde_json::to_string(&body).expect("a JSON body serializes")
        } else {
            String::new()
        };
        let channels = recipients
            .iter()
            .map(|(channel, _)| *channel)
            .collect::<Vec<_>>()
            .join(",");
        Ok(Plan {
            rendered,
            payload,
            channels,
            recipients,
        })
    }

    /// Queues the deliveries of the routed notifications, each once, each due when the
    /// user's timing says ([`crate::schedule`]: at once, after quiet hours, or gathered into
    /// a digest); writes the log's right away (see [`crate::delivery::channels::log`]) and
    /// remembers to wake the dispatcher after the commit for the others.
    async fn queue(
        &self,
        tx: &mut Tx,
        routed: &[Routing<'_>],
        schedules: &HashMap<i64, Schedule>,
    ) -> Result<(), HandleError> {
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let mut deliveries = Vec::new();
        let mut routing_of = Vec::new();
        // Deliveries to gather into a digest, by user and lane (the channel; for push, the
        // channel and the subscription), in the order routed.
        let mut digests: BTreeMap<(i64, String), Vec<usize>> = BTreeMap::new();
        for (i, r) in routed.iter().enumerate() {
            let schedule = schedules.get(&r.user_id);
            for (channel, recipient) in &r.plan.recipients {
                let channel: &'static str = channel;
                let mut d = NewDelivery::plain(
                    r.id,
                    r.order_id,
                    r.user_id,
                    channel,
                    recipient.clone(),
                    idempotency_key(r.event_id, &lane(channel, recipient)),
                    now_ms,
                );
                if channel == LogChannel::NAME {
                    d.sent = true;
                } else if let Some(schedule) = schedule {
                    match schedule.decide(r.kind, now) {
                        Decision::Due { at, held } => {
                            d.due_ms = at.timestamp_millis();
                            d.held = held;
                        }
                        Decision::Digest { window_due } => {
                            d.due_ms = window_due.timestamp_millis();
                            d.held = Some(HELD_DIGEST);
                            digests
                                .entry((r.user_id, lane(channel, recipient)))
                                .or_default()
                                .push(deliveries.len());
                        }
                    }
                }
                deliveries.push(d);
                routing_of.push(i);
            }
        }
        // Each group joins the user's open window on its lane, or its first delivery opens
        // one (and carries the digest, under the digest's key) and the rest join it.
        for ((user_id, lane_key), members) in &digests {
            let first = &deliveries[members[0]];
            let recipient = per_recipient(first.channel).then_some(first.recipient.as_str());
            let open = store::open_digest(tx, *user_id, first.channel, recipient, now_ms).await?;
            let (key, due_ms, joining) = match open {
                Some(open) => (open.key, open.due_ms, &members[..]),
                None => {
                    let key = crate::delivery::digest::key(*user_id, lane_key, now_ms);
                    let first = &mut deliveries[members[0]];
                    first.idempotency_key = key.clone();
                    first.digest = Some(key.clone());
                    first.digest_start = Some(now_ms);
                    (key, first.due_ms, &members[1..])
                }
            };
            for &m in joining {
                let d = &mut deliveries[m];
                d.gathered = true;
                d.digest = Some(key.clone());
                d.due_ms = due_ms;
            }
        }
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut added = store::queue_deliveries(tx, &deliveries).await?;
        // A window's key taken already (another transaction opened the same user's window
        // on the same channel in the same millisecond): its notice joins that window.
        let mut late = Vec::new();
        for (d, &i) in deliveries.iter().zip(&routing_of) {
            if d.digest_start.is_some() && !added.contains(&d.idempotency_key) {
                let mut joining = NewDelivery::plain(
                    d.notification_id,
                    d.order_id,
                    routed[i].user_id,
                    d.channel,
                    d.recipient.clone(),
                    idempotency_key(routed[i].event_id, &lane(d.channel, &d.recipient)),
                    d.due_ms,
                );
                joining.gathered = true;
                joining.held = Some(HELD_DIGEST);
                joining.digest = d.digest.clone();
                late.push(joining);
            }
        }
        if !late.is_empty() {
            added.extend(store::queue_deliveries(tx, &late).await?);
        }
        let mut logged = 0;
        for (d, &i) in deliveries.iter().zip(&routing_of) {
            if !added.contains(&d.idempotency_key) {
                continue;
            }
            if d.sent {
                let r = &routed[i];
                let text = &r.plan.rendered.text;
                self.channels
                    .log
                    .write(r.order_id, r.kind, &d.recipient, text);
                logged += 1;
            } else {
                // The dispatcher sends it once the consumer's transaction committed (or
                // when it comes due).
                tx.wake_on_commit(&self.dispatcher);
            }
        }
        if logged > 0 {
            self.metrics.add(
                &platform::telemetry::catalogue::NOTIFICATION_ATTEMPTS,
                &[("channel", LogChannel::NAME), ("outcome", "delivered")],
                logged,
            );
        }
        Ok(())
    }
}

/// `user_id`'s push subscriptions among `push` (none if it has none).
fn subscriptions_of(push: &HashMap<i64, Vec<i64>>, user_id: i64) -> &[i64] {
    const NONE: &[i64] = &[];
    push.get(&user_id).map_or(NONE, Vec::as_slice)
}

/// Each user's timing, as [`crate::schedule`] applies it (users whose timing changes
/// nothing left out).
fn schedules_of(preferences: &HashMap<i64, Preferences>) -> HashMap<i64, Schedule> {
    preferences
        .iter()
        .map(|(user, p)| (*user, p.timing.schedule()))
        .filter(|(_, schedule)| !schedule.is_plain())
        .collect()
}

impl Plan {
    fn routed(&self) -> Routed<'_> {
        Routed {
            rendered: &self.rendered,
            payload: &self.payload,
            channels: &self.channels,
        }
    }
}

/// The JSON a webhook receives: `{type, timestamp, data}` as Standard Webhooks suggests.
#[derive(Serialize)]
struct WebhookBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: &'a str,
    data: WebhookData<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookData<'a> {
    event_id: &'a str,
    order_id: i64,
    user_id: i64,
    event_type: &'a str,
    subject: &'a str,
    text: &'a str,
    /// The event itself, as it travelled.
    event: &'a Value,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::{DELIVERED, PENDING};
    use platform::db::Database;
    use sqlx::Row;

    /// A notifier on a fresh SQLite database, with the log and webhook channels; nothing
    /// dispatches.
    pub(crate) async fn notifier() -> (Notifier, Database) {
        let dir = std::env::temp_dir().join(format!("oo-notices-{}", Uuid::new_v4()));
        let url = format!("sqlite://{}/n.db", dir.display());
        let db = Database::connect(&url, 2, &store::SCHEMA).await.unwrap();
        let webhook = crate::delivery::channels::webhook::WebhookArgs {
            webhook_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            webhook_timeout_ms: 1_000,
            destinations: Default::default(),
        };
        let channels = Channels {
            log: LogChannel,
            email: None,
            webhook: crate::delivery::channels::webhook::WebhookChannel::from_args(&webhook)
                .unwrap(),
            sms: None,
            push: None,
        };
        let notifier = Notifier {
            templates: Arc::new(Templates::load(None).unwrap()),
            channels: Arc::new(channels),
            dispatcher: Arc::new(Notify::new()),
            metrics: Metrics::default(),
            clock: Clock::system(),
        };
        (notifier, db)
    }

    /// `(channel, status, attempts, delivered_at is set)` of every delivery, by channel.
    async fn deliveries(db: &Database) -> Vec<(String, String, i64, bool)> {
        let rows = sqlx::query(
            "SELECT channel, status, attempts, delivered_at IS NOT NULL AS delivered
             FROM deliveries ORDER BY channel",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<i64, _>(3) == 1))
            .collect()
    }

    #[tokio::test]
    async fn the_log_is_delivered_in_the_transaction_that_queues_it_and_the_rest_wait_for_the_dispatcher(
    ) {
        let (notifier, db) = notifier().await;
        let contact = Contact {
            email: None,
            webhook_url: Some("http://127.0.0.1:9/hook".into()),
            phone: None,
        };
        let mut tx = db.begin().await.unwrap();
        notifier.order_seen(&mut tx, 7, 42, contact).await.unwrap();
        tx.commit().await.unwrap();
        let notice = Notice {
            event_id: contracts::new_event_id(),
            order_id: 7,
            event_type: "inventory.audited".into(),
            kind: "order.updated",
            fields: json!({}),
            event: json!({}),
            trace: String::new(),
        };
        let logged = |n: &Notifier| {
            n.metrics.get(
                &platform::telemetry::catalogue::NOTIFICATION_ATTEMPTS,
                &[("channel", "log"), ("outcome", "delivered")],
            )
        };
        for _ in 0..2 {
            let mut tx = db.begin().await.unwrap();
            notifier.record(&mut tx, &notice).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(
                deliveries(&db).await,
                [
                    ("log".into(), DELIVERED.into(), 1, true),
                    ("webhook".into(), PENDING.into(), 0, false),
                ]
            );
            // The event again (a redelivery) neither queues nor writes anything again.
            assert_eq!(logged(&notifier), 1);
        }
        let woken = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            notifier.dispatcher.notified(),
        );
        assert!(
            woken.await.is_ok(),
            "the commit woke the dispatcher for the webhook"
        );
    }

    #[tokio::test]
    async fn a_channel_a_user_turned_off_for_one_kind_is_left_out_of_that_kind_only() {
        let (notifier, db) = notifier().await;
        let preferences = ChannelsByKind {
            confirmed: Some(vec!["log".into()]),
            ..ChannelsByKind::default()
        };
        let preferences = Preferences {
            channels: preferences,
            ..Preferences::default()
        };
        store::put_notification_preferences(&db, 42, &preferences)
            .await
            .unwrap();
        let contact = Contact {
            email: None,
            webhook_url: Some("http://127.0.0.1:9/hook".into()),
            phone: None,
        };
        let mut tx = db.begin().await.unwrap();
        notifier.order_seen(&mut tx, 7, 42, contact).await.unwrap();
        for (kind, fields) in [
            ("order.confirmed", json!({"items": []})),
            (
                "order.rejected",
                json!({"reason": "OUT_OF_STOCK", "shortages": []}),
            ),
        ] {
            let notice = Notice {
                event_id: contracts::new_event_id(),
                order_id: 7,
                event_type: "inventory.reserved".into(),
                kind,
                fields,
                event: json!({}),
                trace: String::new(),
            };
            notifier.record(&mut tx, &notice).await.unwrap();
        }
        tx.commit().await.unwrap();
        let rows = sqlx::query(
            "SELECT n.kind, d.channel FROM deliveries d JOIN notifications n ON n.id = d.notification_id
             ORDER BY n.kind, d.channel",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        let routed: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let expected = [
            ("order.confirmed", "log"),
            ("order.rejected", "log"),
            ("order.rejected", "webhook"),
        ];
        assert_eq!(
            routed,
            expected.map(|(k, c)| (k.to_string(), c.to_string()))
        );
    }

    /// The notifier of [`notifier`] with Web Push on (the log and push channels only) and
    /// two subscriptions of user 42 registered; their recipients, newest first.
    async fn with_two_push_subscriptions(notifier: &mut Notifier, db: &Database) -> [String; 2] {
        use crate::delivery::channels::push::{self, PushArgs, PushChannel};
        use contracts::destinations::Destinations;
        let args = PushArgs {
            push_subject: Some("mailto:ops@example.com".into()),
            push_vapid_key_file: None,
            push_ttl_seconds: 60,
            push_timeout_ms: 1_000,
        };
        let settings = args.settings().unwrap().expect("push is on");
        let channel = PushChannel::start(&settings, db.clone(), Destinations::public_only())
            .await
            .unwrap();
        notifier.channels = Arc::new(Channels {
            log: LogChannel,
            email: None,
            webhook: None,
            sms: None,
            push: Some(channel),
        });
        let mut ids = Vec::new();
        for browser in ["phone", "laptop"] {
            // RFC 8291's example keys: any valid subscription will do here.
            let endpoint = format!("https://push.example.net/wpush/{browser}");
            let subscription = contracts::values::PushSubscription::checked(
                Some(endpoint.as_str()),
                Some("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
                Some("BTBZMqHH6r4Tts7J_aSIgg"),
                &Destinations::public_only(),
            )
            .unwrap();
            match store::register_push_subscription(db, 42, &subscription, 20)
                .await
                .unwrap()
            {
                store::Registered::Created(view) => ids.push(view.id),
                other => panic!("{other:?}"),
            }
        }
        [push::recipient(ids[1]), push::recipient(ids[0])]
    }

    fn confirmed(order_id: i64) -> Notice {
        Notice {
            event_id: contracts::new_event_id(),
            order_id,
            event_type: "inventory.reserved".into(),
            kind: "order.confirmed",
            fields: json!({"items": []}),
            event: json!({}),
            trace: String::new(),
        }
    }

    /// `(recipient, idempotency key, status, digest)` of every push delivery, in order.
    async fn push_deliveries(db: &Database) -> Vec<(String, String, String, Option<String>)> {
        let rows = sqlx::query(
            "SELECT recipient, idempotency_key, status, digest FROM deliveries
             WHERE channel = 'push' ORDER BY id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }

    #[tokio::test]
    async fn each_push_subscription_of_a_user_gets_a_delivery_of_its_own() {
        let (mut notifier, db) = notifier().await;
        let recipients = with_two_push_subscriptions(&mut notifier, &db).await;
        let mut tx = db.begin().await.unwrap();
        notifier
            .order_seen(&mut tx, 7, 42, Contact::default())
            .await
            .unwrap();
        notifier.record(&mut tx, &confirmed(7)).await.unwrap();
        tx.commit().await.unwrap();
        let pushes = push_deliveries(&db).await;
        let to: Vec<&str> = pushes.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(to, recipients, "newest subscription first");
        assert_ne!(pushes[0].1, pushes[1].1, "a key of its own each");
        assert!(pushes.iter().all(|p| p.2 == PENDING && p.3.is_none()));
    }

    #[tokio::test]
    async fn each_push_subscription_of_a_digest_user_has_a_window_of_its_own() {
        let (mut notifier, db) = notifier().await;
        let recipients = with_two_push_subscriptions(&mut notifier, &db).await;
        let preferences = Preferences {
            timing: crate::preferences::Timing {
                digest_minutes: 10,
                ..Default::default()
            },
            ..Preferences::default()
        };
        store::put_notification_preferences(&db, 42, &preferences)
            .await
            .unwrap();
        let mut tx = db.begin().await.unwrap();
        notifier
            .order_seen(&mut tx, 7, 42, Contact::default())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // Two notices, each in a transaction of its own: the second joins the windows the
        // first opened.
        for _ in 0..2 {
            let mut tx = db.begin().await.unwrap();
            notifier.record(&mut tx, &confirmed(7)).await.unwrap();
            tx.commit().await.unwrap();
        }
        let pushes = push_deliveries(&db).await;
        assert_eq!(pushes.len(), 4, "{pushes:?}");
        let mut digests = Vec::new();
        for recipient in &recipients {
            let mine: Vec<_> = pushes.iter().filter(|p| &p.0 == recipient).collect();
            let statuses: Vec<&str> = mine.iter().map(|p| p.2.as_str()).collect();
            assert_eq!(
                statuses,
                [PENDING, store::GATHERED],
                "{recipient}: {pushes:?}"
            );
            let digest = mine[0].3.clone().expect("the first carries the digest");
            assert_eq!(mine[0].1, digest, "it goes under the digest's key");
            assert_eq!(mine[1].3.as_ref(), Some(&digest), "the second joins it");
            digests.push(digest);
        }
        assert_ne!(digests[0], digests[1], "a window per subscription");
    }
}
