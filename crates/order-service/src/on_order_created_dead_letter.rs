//! `order.created.DLT` → the order is FAILED, with the consumer's error, but only for dead
//! letters of the inventory consumer group: another group's trouble with `order.created`
//! (notification-service's, say) says nothing about the order itself.

use contracts::lifecycle::Trigger;
use contracts::OrderCreated;
use platform::consumer::HandleError;
use platform::db::Tx;
use platform::router::{DeadLetter, Delivered, On};

use crate::outcome;
use crate::store::Outcome;
use crate::waits::Waits;

pub struct OnOrderCreatedDeadLetter {
    /// The inventory consumer group's full name (behind the prefix).
    pub inventory_group: String,
    /// Told of each order it fails.
    pub waits: Waits,
}

impl On<DeadLetter<OrderCreated>> for OnOrderCreatedDeadLetter {
    async fn apply(
        &self,
        tx: &mut Tx,
        letters: &[Delivered<'_, DeadLetter<OrderCreated>>],
        _attempt: u32,
    ) -> Result<(), HandleError> {
        for Delivered { record, .. } in letters {
            if !record.dead_lettered_by(&self.inventory_group) {
                continue;
            }
            // The key, or for a record produced without one, the orderId in its value.
            let Some(order_id) = record.order_id() else {
                tracing::warn!(
                    offset = record.offset,
                    "dead letter with no order id in its key or value; no order to fail"
                );
                continue;
            };
            let failed = Outcome {
                error: Some(record.dead_letter_error()),
                ..Outcome::of(Trigger::DeadLettered)
            };
            // A dead letter is identified by its own position: the same original event
            // may be dead-lettered again after a replay, and that is a new fact. (A
            // position holds one record for good: no body to compare.)
            let mark = platform::dedupe::Mark {
                id: format!(
                    "dlt:{}:{}:{}",
                    record.topic, record.partition, record.offset
                ),
                hash: None,
            };
            outcome::apply_once(tx, &mark, order_id, &failed, &self.waits).await?;
        }
        Ok(())
    }
}
