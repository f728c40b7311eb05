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
//!
//! Here, recording and routing; rendering a notice and where it goes in `notices/plan.rs`,
//! queueing its deliveries in `notices/queue.rs`.

mod plan;
mod queue;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use contracts::Contact;
use platform::consumer::HandleError;
use platform::db::Tx;
use platform::metrics::Metrics;
use serde_json::{json, Value};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::delivery::channels::Channels;
use crate::preferences::Preferences;
use crate::schedule::{Clock, Schedule};
use crate::store::{self, NewNotification, OrderContact, Routed};
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

#[cfg(test)]
pub(crate) mod tests;
