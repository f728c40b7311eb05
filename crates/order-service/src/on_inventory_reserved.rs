//! `inventory.reserved` → the order is CONFIRMED. A batch's events are marked processed
//! with one statement and its orders confirmed with one UPDATE.

use contracts::lifecycle::Trigger;
use contracts::InventoryReserved;
use platform::consumer::HandleError;
use platform::db::Tx;
use platform::router::{Delivered, On};

use crate::outcome;
use crate::store::{self, Outcome};
use crate::waits::Waits;

pub struct OnInventoryReserved {
    /// Told of each order it confirms.
    pub waits: Waits,
}

impl On<InventoryReserved> for OnInventoryReserved {
    async fn apply(
        &self,
        tx: &mut Tx,
        events: &[Delivered<'_, InventoryReserved>],
        _attempt: u32,
    ) -> Result<(), HandleError> {
        let fresh = platform::dedupe::keep_unprocessed(tx, events.iter().collect(), |d| {
            d.record.mark(d.event.event_id.to_string())
        })
        .await?;
        let confirmed: Vec<i64> = fresh.iter().map(|d| d.event.order_id).collect();
        let confirm = Outcome::of(Trigger::Reserved);
        let moved = store::apply_outcome_to(tx, &confirmed, &confirm, &self.waits).await?;
        for order_id in confirmed {
            let now = match moved.contains(&order_id) {
                true => Some(confirm.status()),
                false => store::status_of(tx, order_id).await?,
            };
            outcome::log(order_id, &confirm, now);
        }
        Ok(())
    }
}
