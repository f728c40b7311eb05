//! notification-service's one consumer (group `notification-service`): every
//! `inventory.<event>` topic, `order.created` and `order.created.DLT`, each record handed to
//! the handler for its topic. One member per instance keeps the group simple for every
//! broker; the topics have no order among each other anyway (see [`crate::notices`] for how
//! an inventory event that overtakes its order is handled).

use std::time::Duration;

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

    /// Runs of records of one kind go together: `order.created` through
    /// [`crate::notices::Notifier::orders_seen`], inventory events through
    /// [`crate::notices::Notifier::record_all`]; dead letters, rare, one by one.
    async fn apply_batch(&self, tx: &mut Tx, batch: &[Record]) -> Result<(), HandleError> {
        let kind = |record: &Record| {
            if record.topic == self.orders.topics.order_created() {
                Kind::OrderCreated
            } else if self.orders.handles(&record.topic) {
                Kind::DeadLetter
            } else {
                Kind::Inventory
            }
        };
        for run in batch.chunk_by(|a, b| kind(a) == kind(b)) {
            match kind(&run[0]) {
                Kind::OrderCreated => self.orders.seen_all(tx, run).await?,
                Kind::Inventory => self.inventory.apply_all(tx, run).await?,
                Kind::DeadLetter => {
                    for record in run {
                        self.orders.apply(tx, record, 1).await?;
                    }
                }
            }
        }
        Ok(())
    }

    fn committed(&self) {
        // Both handlers share one notifier.
        self.orders.committed();
    }

    /// Notifications are not on an order's way to its final status, so a batch gathers
    /// for [`GATHER`]: at 1,000 orders/s that turns a commit per record or two into one
    /// per few dozen.
    fn linger(&self) -> Duration {
        GATHER
    }
}

/// How long a batch of this consumer, and the dispatcher after a wake-up, wait for more.
pub const GATHER: Duration = Duration::from_millis(20);

/// What a record is, for grouping a batch into runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    OrderCreated,
    DeadLetter,
    Inventory,
}
