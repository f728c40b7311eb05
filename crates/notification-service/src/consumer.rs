//! notification-service's one consumer (group `notification-service`): every
//! `inventory.<event>` topic, `order.created` and `order.created.DLT`, each record handed to
//! the handler for its topic. One member per instance keeps the group simple for every
//! broker; the topics have no order among each other anyway (see [`crate::notices`] for how
//! an inventory event that overtakes its order is handled).

use platform::consumer::{HandleError, Handler, Record};
use platform::db::Tx;

use crate::inventory_events::InventoryEventHandler;
use crate::order_events::OrderEventsHandler;

pub struct NotificationConsumer {
    pub inventory: InventoryEventHandler,
    pub orders: OrderEventsHandler,
}

impl Handler for NotificationConsumer {
    async fn apply(&self, tx: &mut Tx, record: &Record, attempt: u32) -> Result<(), HandleError> {
        if self.orders.handles(&record.topic) {
            self.orders.apply(tx, record, attempt).await
        } else {
            self.inventory.apply(tx, record, attempt).await
        }
    }

    fn committed(&self) {
        // Both handlers share one notifier.
        self.orders.committed();
    }
}
