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
//! of a delivery sends the same message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use contracts::Contact;
use platform::consumer::HandleError;
use platform::db::Tx;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::channels::Channels;
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
}

/// The shared parts of the handlers that record notices.
#[derive(Clone)]
pub struct Notifier {
    pub templates: Arc<Templates>,
    pub channels: Arc<Channels>,
    /// Woken when deliveries were queued.
    pub dispatcher: Arc<Notify>,
    /// Deliveries were queued in a transaction not yet committed.
    pub queued: Arc<AtomicBool>,
}

/// Namespace of delivery idempotency keys: UUIDv5(event id + "/" + channel).
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x6f70656e_6f72_6465_7200_6e6f74696679);

/// The stable idempotency key of one event's delivery on one channel.
pub fn idempotency_key(event_id: &str, channel: &str) -> String {
    Uuid::new_v5(&KEY_NAMESPACE, format!("{event_id}/{channel}").as_bytes()).to_string()
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
        let event_id = notice.event_id.to_string();
        let context = json!({
            "order_id": notice.order_id,
            "kind": notice.kind,
            "event_type": notice.event_type,
            "fields": notice.fields,
            "event": notice.event,
        });
        let order = store::lock_order(tx, notice.order_id).await?;
        let plan = match &order {
            Some(order) => Some(
                self.plan(tx, &event_id, notice.order_id, notice.kind, &context, order)
                    .await?,
            ),
            None => None,
        };
        let routed = plan.as_ref().map(|p| Routed {
            rendered: &p.rendered,
            payload: &p.payload,
            channels: &p.channels,
        });
        let id = store::insert_notification(
            tx,
            &NewNotification {
                event_id: &event_id,
                order_id: notice.order_id,
                event_type: &notice.event_type,
                kind: notice.kind,
                context: &context.to_string(),
            },
            routed.as_ref(),
        )
        .await?;
        if let (Some(id), Some(plan)) = (id, &plan) {
            self.queue(tx, id, notice.order_id, &event_id, plan).await?;
        }
        Ok(())
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
        store::record_order(tx, order_id, &order).await?;
        let waiting = store::awaiting(tx, order_id).await?;
        for w in &waiting {
            let context: Value = serde_json::from_str(&w.context)
                .map_err(|e| HandleError::transient("openorder.CorruptNotification", e))?;
            let plan = self
                .plan(tx, &w.event_id, order_id, &w.kind, &context, &order)
                .await?;
            let routed = Routed {
                rendered: &plan.rendered,
                payload: &plan.payload,
                channels: &plan.channels,
            };
            store::set_routed(tx, w.id, &routed).await?;
            self.queue(tx, w.id, order_id, &w.event_id, &plan).await?;
        }
        Ok(())
    }

    /// After the consumer's commit: wakes the dispatcher if deliveries were queued.
    pub fn committed(&self) {
        if self.queued.swap(false, Ordering::AcqRel) {
            self.dispatcher.notify_one();
        }
    }

    /// Renders a notification for its user and works out its channels.
    async fn plan(
        &self,
        tx: &mut Tx,
        event_id: &str,
        order_id: i64,
        kind: &str,
        context: &Value,
        order: &OrderContact,
    ) -> Result<Plan, HandleError> {
        let mut template_context = context["fields"].clone();
        if !template_context.is_object() {
            template_context = json!({});
        }
        for key in ["order_id", "kind", "event_type"] {
            template_context[key] = context[key].clone();
        }
        template_context["user_id"] = json!(order.user_id);
        let rendered = self
            .templates
            .render(kind, &template_context)
            .map_err(|e| HandleError::permanent("openorder.TemplateError", format!("{e:#}")))?;
        let payload = WebhookBody {
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
        let payload = serde_json::to_string(&payload).expect("a JSON body serializes");
        let defaults = store::user_contact(&mut **tx, order.user_id)
            .await?
            .map(|u| Contact {
                email: u.email,
                webhook_url: u.webhook_url,
            });
        let recipients = self
            .channels
            .recipients(order.user_id, &order.contact, defaults.as_ref());
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

    /// Queues one delivery per channel of a routed notification.
    async fn queue(
        &self,
        tx: &mut Tx,
        id: i64,
        order_id: i64,
        event_id: &str,
        plan: &Plan,
    ) -> Result<(), HandleError> {
        let keys: Vec<String> = plan
            .recipients
            .iter()
            .map(|(channel, _)| idempotency_key(event_id, channel))
            .collect();
        let deliveries: Vec<NewDelivery> = plan
            .recipients
            .iter()
            .zip(&keys)
            .map(|((channel, recipient), key)| NewDelivery {
                channel,
                recipient,
                idempotency_key: key,
            })
            .collect();
        store::queue_deliveries(tx, id, order_id, &deliveries).await?;
        self.queued.store(true, Ordering::Release);
        Ok(())
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
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_stable_and_differ_per_channel() {
        let id = "0b5e7c1e-1d2a-4c55-9a57-3c0f2d1f9e01";
        assert_eq!(idempotency_key(id, "email"), idempotency_key(id, "email"));
        assert_ne!(idempotency_key(id, "email"), idempotency_key(id, "webhook"));
    }
}
