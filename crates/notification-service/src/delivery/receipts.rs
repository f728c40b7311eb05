//! Delivery receipts: what an SMS provider reports of a message after it accepted it, by
//! status callback (`POST /callbacks/sms`, whose signature [`crate::routes`] checks).
//!
//! The callback URL carries the delivery's idempotency key, so a receipt finds its delivery
//! whether or not the dispatcher has recorded the attempt yet (a fast provider may call
//! back first). A receipt moves a delivery that is `PENDING` or `SENT`:
//! - `delivered` → `DELIVERED` (with `deliveredAt`);
//! - `undelivered`, `failed` (or `canceled`) → `FAILED`, with a `notification.failed` event in
//!   the same transaction, as when the dispatcher gives up;
//! - any other status (`queued`, `sent`, …) is noted and moves nothing.
//!
//! A delivery already `DELIVERED` or `FAILED` stays as it is (receipts can arrive out of
//! order): its first final status is the one that counts. The provider's message id and
//! its latest status are kept beside the delivery's own.
//!
//! In a dispatcher's round that races a receipt, the receipt wins: the dispatcher's
//! record of the attempt names the delivery `PENDING`, which it no longer is.
//!
//! A receipt that fails the delivery also falls back, as the dispatcher does when it
//! gives up ([`crate::delivery::fallback`]), in the same transaction.

use anyhow::Context;
use chrono::Utc;
use contracts::{NotificationFailed, Topics};
use platform::db::Database;
use platform::metrics::Metrics;

use crate::delivery::channels::sms::{self, Receipt};
use crate::delivery::channels::Channels;
use crate::store::{self, ReceiptUpdate, DELIVERED, FAILED};

/// What became of a receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// No SMS delivery has this key (an unknown one, or pruned).
    Unknown,
    /// Noted; the delivery moved to this status (`DELIVERED`, `FAILED`), or stayed.
    Noted(Option<&'static str>),
    /// The delivery was `DELIVERED` or `FAILED` already: nothing changed.
    AlreadyFinal,
}

/// One receipt, as the provider sent it.
pub struct SmsReceipt<'a> {
    /// The delivery's idempotency key (from the callback URL).
    pub key: &'a str,
    pub message_sid: &'a str,
    pub status: &'a str,
    /// The provider's error code for a message that failed (`ErrorCode`), if any.
    pub error_code: Option<&'a str>,
}

/// Where a delivery that failed for good falls back to: the order of channels
/// (`--notify-fallback`), the channels configured, and the time.
pub struct FallbackTo<'a> {
    pub order: &'a [String],
    pub channels: &'a Channels,
    pub now: chrono::DateTime<Utc>,
}

/// Records a receipt of an SMS delivery (one transaction); one that fails it falls back.
pub async fn record_sms(
    db: &Database,
    topics: &Topics,
    metrics: &Metrics,
    receipt: &SmsReceipt<'_>,
    fallback: &FallbackTo<'_>,
) -> anyhow::Result<Recorded> {
    let status = receipt.status;
    let moved_to = match Receipt::of(status) {
        Receipt::Delivered => Some(DELIVERED),
        Receipt::Failed => Some(FAILED),
        Receipt::OnItsWay => None,
    };
    let error = (moved_to == Some(FAILED)).then(|| match receipt.error_code {
        Some(code) if !code.is_empty() => {
            format!("the SMS provider reported the message {status} (error code {code})")
        }
        _ => format!("the SMS provider reported the message {status}"),
    });
    let now = platform::now_text();
    let mut tx = db.begin().await?;
    let Some(delivery) = store::delivery_by_key(&mut tx, sms::NAME, receipt.key).await? else {
        return Ok(Recorded::Unknown);
    };
    let update = ReceiptUpdate {
        provider_id: receipt.message_sid,
        provider_status: status,
        status: moved_to,
        error: error.as_deref(),
        now: &now,
    };
    if !store::record_receipt(&mut tx, delivery.id, &update).await? {
        return Ok(Recorded::AlreadyFinal);
    }
    if let Some(error) = &error {
        let to = crate::delivery::fallback::fall_back(
            &mut tx,
            fallback.order,
            fallback.channels,
            fallback.now,
            delivery.id,
            error,
        )
        .await?;
        if let Some(to) = to {
            tracing::info!(
                delivery = delivery.id,
                fallback = to,
                "SMS not delivered; falls back to another channel"
            );
        }
        let event = NotificationFailed {
            event_id: contracts::new_event_id(),
            order_id: delivery.order_id,
            source_event_id: delivery.event_id.parse().context("notification event id")?,
            kind: delivery.kind.clone(),
            channel: sms::NAME.to_string(),
            recipient: delivery.recipient.clone(),
            attempts: delivery.attempts,
            error: error.clone(),
            timestamp: Utc::now(),
        };
        platform::outbox::enqueue(&mut tx, &topics.notification_failed(), &event).await?;
    }
    tx.commit().await?;
    match moved_to {
        Some(to) => {
            let outcome = if to == DELIVERED {
                "delivered"
            } else {
                "failed"
            };
            metrics.inc(
                &platform::telemetry::catalogue::NOTIFICATION_ATTEMPTS,
                &[("channel", sms::NAME), ("outcome", outcome)],
            );
            tracing::info!(delivery = delivery.id, was = %delivery.status, now = to, provider_status = status, "SMS delivery receipt");
        }
        None => {
            tracing::debug!(
                delivery = delivery.id,
                provider_status = status,
                "SMS status noted"
            );
        }
    }
    Ok(Recorded::Noted(moved_to))
}
