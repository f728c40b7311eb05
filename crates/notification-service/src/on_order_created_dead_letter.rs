//! `order.created.DLT` → an order the inventory group dead-lettered is FAILED: the
//! customer hears so once per `order.created` event (a replayed order that fails again is
//! not announced twice). Dead letters of other groups say nothing about the order.
//!
//! Nor does a dead letter of an order whose decision the customer was already told
//! (confirmed, rejected or cancelled): the order was processed, and what failed is another
//! record about it (a foreign producer's copy under a reused event id, say, which
//! order-service rightly ignores too). Nothing is sent, and the dead letter's contact is not
//! recorded. The other way round, a dead letter first and then the decision (the order
//! replayed), the decision is told as usual.

use std::collections::HashSet;

use contracts::OrderCreated;
use platform::consumer::HandleError;
use platform::db::Tx;
use platform::router::{DeadLetter, Delivered, On};
use serde_json::json;

use crate::notices::{Notice, Notifier};
use crate::on_order_created::checked_contact;
use crate::store;

pub struct OnOrderCreatedDeadLetter {
    pub notifier: Notifier,
    /// The inventory consumer group's full name (behind the prefix).
    pub inventory_group: String,
    /// Where a contact's webhook may point.
    pub webhooks: contracts::destinations::Destinations,
}

impl On<DeadLetter<OrderCreated>> for OnOrderCreatedDeadLetter {
    async fn apply(
        &self,
        tx: &mut Tx,
        letters: &[Delivered<'_, DeadLetter<OrderCreated>>],
        _attempt: u32,
    ) -> Result<(), HandleError> {
        let failed: Vec<_> = letters
            .iter()
            .filter(|d| d.record.dead_lettered_by(&self.inventory_group))
            .filter_map(|d| match &d.event.original {
                Some(order) => Some((d, order)),
                None => {
                    tracing::warn!(
                        offset = d.record.offset,
                        "dead-lettered order.created does not decode; nobody to notify"
                    );
                    None
                }
            })
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        // One statement for the batch. A decision notice recorded earlier in this batch
        // (an inventory event before this dead letter) is seen too: same transaction.
        let order_ids: Vec<i64> = failed
            .iter()
            .map(|(_, order)| order.order_id)
            .collect::<HashSet<i64>>()
            .into_iter()
            .collect();
        let decided = store::decided_among(tx, &order_ids).await?;
        for (Delivered { record, span, .. }, order) in failed {
            if decided.contains(&order.order_id) {
                tracing::info!(
                    order_id = order.order_id,
                    offset = record.offset,
                    error = %record.dead_letter_error(),
                    "dead letter of an order already told its decision; no failure notice"
                );
                continue;
            }
            // The dead letter carries the order itself: record it, in case order.created
            // was never seen here (the failure notice then goes out at once).
            let contact = checked_contact(order, &self.webhooks).unwrap_or_default();
            self.notifier
                .order_seen(tx, order.order_id, order.user_id, contact)
                .await?;
            let notice = Notice {
                event_id: order.event_id,
                order_id: order.order_id,
                event_type: contracts::topics::ORDER_CREATED_DLT.to_string(),
                kind: "order.failed",
                fields: json!({ "items": order.items, "error": record.dead_letter_error() }),
                event: serde_json::to_value(order).expect("an event serializes"),
                trace: platform::telemetry::trace_text(span),
            };
            self.notifier.record(tx, &notice).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::Contact;
    use platform::consumer::Record;
    use platform::db::Database;
    use serde_json::Value;
    use sqlx::Row;

    const INVENTORY: &str = "inventory-service";

    fn order(order_id: i64) -> OrderCreated {
        OrderCreated {
            event_id: contracts::new_event_id(),
            order_id,
            user_id: 42,
            items: vec![contracts::LineItem {
                sku: "ABC-001".into(),
                qty: 1,
            }],
            created_at: chrono::Utc::now(),
            contact: None,
        }
    }

    /// The inventory group's dead letter of `order`, at `offset` of `order.created.DLT`.
    fn dead_letter(order: &OrderCreated, offset: i64) -> Record {
        Record {
            topic: "order.created.DLT".into(),
            partition: 0,
            offset,
            timestamp: None,
            key: Some(order.order_id.to_string().into_bytes()),
            payload: Some(serde_json::to_vec(order).unwrap()),
            headers: vec![
                (
                    contracts::headers::DLT_ORIGINAL_CONSUMER_GROUP.into(),
                    Some(INVENTORY.as_bytes().to_vec()),
                ),
                (
                    contracts::headers::DLT_EXCEPTION_FQCN.into(),
                    Some(b"openorder.EventIdReused".to_vec()),
                ),
            ],
        }
    }

    /// Applies the dead letter of `order` as the consumer does, in a transaction of its own.
    async fn dead_lettered(
        handler: &OnOrderCreatedDeadLetter,
        db: &Database,
        order: &OrderCreated,
        offset: i64,
    ) {
        let record = dead_letter(order, offset);
        let letters = [Delivered {
            record: &record,
            event: DeadLetter {
                original: Some(order.clone()),
            },
            span: tracing::Span::none(),
        }];
        let mut tx = db.begin().await.unwrap();
        handler.apply(&mut tx, &letters, 1).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// Tells the customer of `order_id` what `kind` says (as the inventory events do).
    async fn told(notifier: &Notifier, db: &Database, order_id: i64, kind: &'static str) {
        let (event_type, fields) = match kind {
            "order.confirmed" => ("inventory.reserved", json!({"items": []})),
            "order.cancelled" => ("inventory.released", json!({"items": []})),
            _ => (
                "inventory.rejected",
                json!({"reason": "OUT_OF_STOCK", "shortages": []}),
            ),
        };
        let notice = Notice {
            event_id: contracts::new_event_id(),
            order_id,
            event_type: event_type.into(),
            kind,
            fields,
            event: Value::Null,
            trace: String::new(),
        };
        let mut tx = db.begin().await.unwrap();
        notifier.record(&mut tx, &notice).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// The kinds of the order's notifications, oldest first.
    async fn kinds(db: &Database, order_id: i64) -> Vec<String> {
        sqlx::query("SELECT kind FROM notifications WHERE order_id = $1 ORDER BY id")
            .bind(order_id)
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("kind"))
            .collect()
    }

    #[tokio::test]
    async fn a_dead_letter_of_an_order_already_told_its_decision_tells_nothing_and_the_reverse_tells_both(
    ) {
        let (notifier, db) = crate::notices::tests::notifier().await;
        let handler = OnOrderCreatedDeadLetter {
            notifier: notifier.clone(),
            inventory_group: INVENTORY.into(),
            webhooks: contracts::destinations::Destinations::public_only(),
        };
        for (order_id, decision) in [
            (1, "order.confirmed"),
            (2, "order.rejected"),
            (3, "order.cancelled"),
        ] {
            let mut tx = db.begin().await.unwrap();
            notifier
                .order_seen(&mut tx, order_id, 42, Contact::default())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            told(&notifier, &db, order_id, decision).await;
            dead_lettered(&handler, &db, &order(order_id), order_id).await;
            assert_eq!(kinds(&db, order_id).await, [decision], "order {order_id}");
        }
        // No decision told yet: the failure is told; then, the order replayed, its decision.
        dead_lettered(&handler, &db, &order(4), 4).await;
        assert_eq!(kinds(&db, 4).await, ["order.failed"]);
        told(&notifier, &db, 4, "order.confirmed").await;
        assert_eq!(kinds(&db, 4).await, ["order.failed", "order.confirmed"]);
    }
}
