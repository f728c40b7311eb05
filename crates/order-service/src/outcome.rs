//! The step every handler of an inventory answer shares: move the order to what the
//! answer says, never backwards ([`store::apply_outcome`]), and log what happened.

use platform::consumer::HandleError;
use platform::db::Tx;

use crate::domain::OrderStatus;
use crate::store::{self, Outcome};
use crate::waits::Waits;

/// Moves `order_id` to `outcome` unless the event `mark` was applied before (with another
/// body: [`platform::dedupe::EVENT_ID_REUSED`]); whoever waits for the order hears of it.
pub async fn apply_once(
    tx: &mut Tx,
    mark: &platform::dedupe::Mark,
    order_id: i64,
    outcome: &Outcome,
    waits: &Waits,
) -> Result<(), HandleError> {
    if !platform::dedupe::mark_processed(tx, mark).await? {
        return Ok(());
    }
    let now = store::apply_outcome(tx, order_id, outcome, waits).await?;
    log(order_id, outcome, now);
    Ok(())
}

/// Logs what an outcome did: `now` is the order's status after it (None: unknown order).
pub fn log(order_id: i64, outcome: &Outcome, now: Option<OrderStatus>) {
    match now {
        None => tracing::warn!(
            order_id,
            "event for an order this service does not know; ignored"
        ),
        Some(now) if now == outcome.status() => {
            tracing::info!(order_id, status = now.as_str(), "order status changed")
        }
        Some(now) => tracing::info!(
            order_id,
            status = now.as_str(),
            ignored = outcome.status().as_str(),
            "late or repeated outcome ignored"
        ),
    }
}
