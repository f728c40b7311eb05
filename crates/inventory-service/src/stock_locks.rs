//! The lock order of inventory's transactions on PostgreSQL: every batch first locks the
//! stock rows of every SKU it may touch, in SKU order (the SKUs its orders name, and those
//! reserved by the orders it cancels). Each order then finds its rows already locked, so
//! two instances' batches never wait on each other in a cycle. SQLite has one writer at a
//! time: nothing to do there.

use std::collections::BTreeSet;

use contracts::{OrderCancelled, OrderCreated};
use platform::consumer::HandleError;
use platform::db::{Backend, Tx};
use platform::router::{BeforeBatch, Decoded};

use crate::store;

pub struct StockLocks {
    pub backend: Backend,
}

impl BeforeBatch for StockLocks {
    async fn before(&self, tx: &mut Tx, batch: &Decoded<'_>) -> Result<(), HandleError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let skus: BTreeSet<String> = batch
            .events::<OrderCreated>()
            .flat_map(|order| order.items.iter().map(|item| item.sku.clone()))
            .collect();
        let cancelled: Vec<i64> = batch
            .events::<OrderCancelled>()
            .map(|cancel| cancel.order_id)
            .collect();
        store::lock_stock(tx, &skus, &cancelled).await?;
        Ok(())
    }
}
