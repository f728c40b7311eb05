//! `inventory.released` → the cancelled order shows when its stock was given back
//! (`releasedAt`).

use contracts::InventoryReleased;
use platform::consumer::HandleError;
use platform::db::Tx;
use platform::router::{Delivered, On};

use crate::store;

pub struct OnInventoryReleased;

impl On<InventoryReleased> for OnInventoryReleased {
    async fn apply(
        &self,
        tx: &mut Tx,
        events: &[Delivered<'_, InventoryReleased>],
        _attempt: u32,
    ) -> Result<(), HandleError> {
        let fresh = platform::dedupe::keep_unprocessed(tx, events.iter().collect(), |d| {
            d.record.mark(d.event.event_id.to_string())
        })
        .await?;
        for d in fresh {
            store::mark_released(tx, d.event.order_id).await?;
        }
        Ok(())
    }
}
