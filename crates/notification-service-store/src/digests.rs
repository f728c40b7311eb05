//! Digests: the open digest window a delivery joins, and the notices a digest carries.

use platform::db::Tx;
use sqlx::Row;

use super::PENDING;

/// A digest window still open: the delivery that carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenDigest {
    pub id: i64,
    /// The digest's idempotency key, which its gathered deliveries name.
    pub key: String,
    /// When it goes (ms).
    pub due_ms: i64,
}

/// The open digest window of `user_id` on `channel` (to `recipient` only, for a channel
/// whose windows are per recipient: push's, per subscription) at `now_ms`, locked for this
/// transaction, if there is one: the newest delivery carrying a digest that is still to
/// come ([`notification_service_rules::schedule::joins`]) and not yet claimed (a claimed one's message is fixed:
/// a resend must be the same bytes). One statement; on PostgreSQL the row lock makes a
/// claim that comes meanwhile skip it, and a claim that came first makes this find none.
pub async fn open_digest(
    tx: &mut Tx,
    user_id: i64,
    channel: &str,
    recipient: Option<&str>,
    now_ms: i64,
) -> Result<Option<OpenDigest>, sqlx::Error> {
    let same_recipient = match recipient {
        Some(_) => "AND recipient = $6",
        None => "",
    };
    let sql = format!(
        "UPDATE deliveries SET updated_at = $1
         WHERE id = (SELECT id FROM deliveries
                     WHERE user_id = $2 AND channel = $3 AND digest_start IS NOT NULL
                       AND next_attempt_at > $4 AND status = $5 AND attempts = 0
                       {same_recipient}
                     ORDER BY next_attempt_at DESC, id DESC LIMIT 1)
           AND status = $5 AND attempts = 0
         RETURNING id, idempotency_key, next_attempt_at"
    );
    let mut query = sqlx::query(&sql)
        .bind(platform::now_text())
        .bind(user_id)
        .bind(channel)
        .bind(now_ms)
        .bind(PENDING);
    if let Some(recipient) = recipient {
        query = query.bind(recipient);
    }
    let row = query.fetch_optional(&mut **tx).await?;
    row.map(|row| {
        Ok(OpenDigest {
            id: row.try_get("id")?,
            key: row.try_get("idempotency_key")?,
            due_ms: row.try_get("next_attempt_at")?,
        })
    })
    .transpose()
}

/// The notices of digest `key` (the notifications of every delivery naming it), in the
/// order they were recorded.
pub async fn digest_items(
    tx: &mut Tx,
    key: &str,
) -> Result<Vec<notification_service_rules::digest::Item>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, event_id, order_id, kind, subject, message FROM notifications
         WHERE id IN (SELECT notification_id FROM deliveries WHERE digest = $1)
         ORDER BY id",
    )
    .bind(key)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(notification_service_rules::digest::Item {
                event_id: row.try_get("event_id")?,
                order_id: row.try_get("order_id")?,
                kind: row.try_get("kind")?,
                subject: row.try_get("subject")?,
                text: row.try_get("message")?,
            })
        })
        .collect()
}
