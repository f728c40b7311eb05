//! Queueing deliveries: one per notification and channel (and push subscription), each
//! once by its idempotency key.

use std::collections::HashSet;

use platform::db::{value_rows, Tx};

use super::{DELIVERED, GATHERED, PENDING};

/// One channel's delivery of a notification, to be queued.
pub struct NewDelivery {
    pub notification_id: i64,
    pub order_id: i64,
    /// Whom it is for.
    pub user_id: Option<i64>,
    pub channel: &'static str,
    pub recipient: String,
    pub idempotency_key: String,
    /// Sent by the caller as it is queued (the log channel): stored `DELIVERED` after one
    /// attempt instead of `PENDING`, and the dispatcher never sees it.
    pub sent: bool,
    /// Gathered into the digest `digest` names: stored `GATHERED`, never sent on its own.
    pub gathered: bool,
    /// When it is due (ms since the epoch): when it was routed, or later when held.
    pub due_ms: i64,
    /// Why it waits past the time it was routed
    /// ([`notification_service_rules::schedule::HELD_QUIET`],
    /// [`notification_service_rules::schedule::HELD_DIGEST`]).
    pub held: Option<&'static str>,
    /// The digest it carries or was gathered into: the digest's idempotency key.
    pub digest: Option<String>,
    /// For the delivery that carries a digest: when its window opened (ms).
    pub digest_start: Option<i64>,
    /// For a fallback: the delivery it replaces, and why.
    pub fallback_of: Option<i64>,
    pub fallback_reason: Option<String>,
}

impl NewDelivery {
    /// A delivery due at `due_ms`, held by nothing, of no digest, no fallback.
    pub fn plain(
        notification_id: i64,
        order_id: i64,
        user_id: i64,
        channel: &'static str,
        recipient: String,
        idempotency_key: String,
        due_ms: i64,
    ) -> Self {
        Self {
            notification_id,
            order_id,
            user_id: Some(user_id),
            channel,
            recipient,
            idempotency_key,
            sent: false,
            gathered: false,
            due_ms,
            held: None,
            digest: None,
            digest_start: None,
            fallback_of: None,
            fallback_reason: None,
        }
    }

    fn status(&self) -> &'static str {
        if self.sent {
            DELIVERED
        } else if self.gathered {
            GATHERED
        } else {
            PENDING
        }
    }
}

/// Queues deliveries (each once: a repeated idempotency key is skipped), one statement;
/// returns the idempotency keys of those it added.
pub async fn queue_deliveries(
    tx: &mut Tx,
    deliveries: &[NewDelivery],
) -> Result<HashSet<String>, sqlx::Error> {
    let now = platform::now_text();
    let mut added = HashSet::with_capacity(deliveries.len());
    for chunk in platform::db::statement_chunks(deliveries, 17) {
        let sql = format!(
            "INSERT INTO deliveries (notification_id, order_id, user_id, channel, recipient, idempotency_key,
                 status, attempts, next_attempt_at, created_at, updated_at, delivered_at, held, digest,
                 digest_start, fallback_of, fallback_reason)
             VALUES {} ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
            value_rows(chunk.len(), 17)
        );
        let mut query = sqlx::query_scalar(&sql);
        for d in chunk {
            query = query
                .bind(d.notification_id)
                .bind(d.order_id)
                .bind(d.user_id)
                .bind(d.channel)
                .bind(&d.recipient)
                .bind(&d.idempotency_key)
                .bind(d.status())
                .bind(i64::from(d.sent))
                .bind(d.due_ms)
                .bind(&now)
                .bind(&now)
                .bind(d.sent.then_some(&now))
                .bind(d.held)
                .bind(d.digest.as_deref())
                .bind(d.digest_start)
                .bind(d.fallback_of)
                .bind(d.fallback_reason.as_deref());
        }
        added.extend(query.fetch_all(&mut **tx).await?);
    }
    Ok(added)
}
