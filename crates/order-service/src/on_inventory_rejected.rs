//! `inventory.rejected` → the order is REJECTED, with the reason and the shortages.

use contracts::lifecycle::Trigger;
use contracts::InventoryRejected;
use platform::consumer::HandleError;
use platform::db::Tx;
use platform::router::{Delivered, On};

use crate::outcome;
use crate::store::Outcome;
use crate::waits::Waits;

pub struct OnInventoryRejected {
    /// Told of each order it rejects.
    pub waits: Waits,
}

impl On<InventoryRejected> for OnInventoryRejected {
    async fn apply(
        &self,
        tx: &mut Tx,
        events: &[Delivered<'_, InventoryRejected>],
        _attempt: u32,
    ) -> Result<(), HandleError> {
        for Delivered { record, event, .. } in events {
            let rejected = Outcome {
                trigger: Trigger::Rejected,
                reason: Some(event.reason.as_str().to_string()),
                shortages: Some(event.shortages.clone()),
                error: None,
            };
            let mark = record.mark(event.event_id.to_string());
            outcome::apply_once(tx, &mark, event.order_id, &rejected, &self.waits).await?;
        }
        Ok(())
    }
}
