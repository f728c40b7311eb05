//! SMS delivery receipts: the delivery a receipt is about, and what it records.

use platform::db::Tx;
use sqlx::Row;

use super::{DELIVERED, PENDING, SENT};

/// An SMS delivery a receipt is about, as found by its idempotency key.
pub struct SmsDelivery {
    pub id: i64,
    pub order_id: i64,
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    /// The notification's event id and kind (for `notification.failed`).
    pub event_id: String,
    pub kind: String,
}

/// The delivery on `channel` whose idempotency key is `key`.
pub async fn delivery_by_key(
    tx: &mut Tx,
    channel: &str,
    key: &str,
) -> Result<Option<SmsDelivery>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT d.id, d.order_id, d.recipient, d.status, d.attempts, n.event_id, n.kind
         FROM deliveries d JOIN notifications n ON n.id = d.notification_id
         WHERE d.idempotency_key = $1 AND d.channel = $2",
    )
    .bind(key)
    .bind(channel)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        Ok(SmsDelivery {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            recipient: row.try_get("recipient")?,
            status: row.try_get("status")?,
            attempts: row.try_get("attempts")?,
            event_id: row.try_get("event_id")?,
            kind: row.try_get("kind")?,
        })
    })
    .transpose()
}

/// What a delivery receipt does to its delivery.
pub struct ReceiptUpdate<'a> {
    /// The provider's message id and the status it reported.
    pub provider_id: &'a str,
    pub provider_status: &'a str,
    /// `DELIVERED` or `FAILED`; None leaves the status as it is.
    pub status: Option<&'a str>,
    pub error: Option<&'a str>,
    pub now: &'a str,
}

/// Records a receipt for delivery `id` if it is still `PENDING` or `SENT`, in one
/// statement (a receipt after `DELIVERED` or `FAILED`, one that overtook another, changes
/// nothing); false if it was not.
pub async fn record_receipt(
    tx: &mut Tx,
    id: i64,
    receipt: &ReceiptUpdate<'_>,
) -> Result<bool, sqlx::Error> {
    let delivered_at = (receipt.status == Some(DELIVERED)).then_some(receipt.now);
    let updated = sqlx::query(
        "UPDATE deliveries SET provider_id = $1, provider_status = $2,
             status = COALESCE($3, status), last_error = COALESCE($4, last_error),
             delivered_at = COALESCE($5, delivered_at), updated_at = $6
         WHERE id = $7 AND status IN ($8, $9)",
    )
    .bind(receipt.provider_id)
    .bind(receipt.provider_status)
    .bind(receipt.status)
    .bind(receipt.error)
    .bind(delivered_at)
    .bind(receipt.now)
    .bind(id)
    .bind(PENDING)
    .bind(SENT)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}
