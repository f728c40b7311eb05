//! The dispatcher's queries: claiming due deliveries (a digest's composed as it is claimed)
//! and recording how each attempt ended.

use anyhow::Context;
use chrono::Utc;
use notification_service_channels::Outgoing;
use platform::db::{Backend, Tx};
use sqlx::Row;

use super::{digest_items, PENDING};

/// A claimed delivery: the message and which attempt this is.
pub struct Claimed {
    pub attempts: i64,
    pub event_id: String,
    pub outgoing: Outgoing,
}

/// Claims up to `limit` deliveries `PENDING` and due at `now_ms` (ms since the epoch):
/// each gets `attempts + 1` and is leased (its next attempt moves to `lease_until`) in one
/// statement; on PostgreSQL `FOR UPDATE SKIP LOCKED` lets several instances share the queue.
pub async fn claim_due(
    tx: &mut Tx,
    backend: Backend,
    now_ms: i64,
    lease_until: i64,
    limit: i64,
) -> anyhow::Result<Vec<Claimed>> {
    let lock = match backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let ids = sqlx::query(&format!(
        "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, updated_at = $2
             WHERE id IN (SELECT id FROM deliveries WHERE status = $3 AND next_attempt_at <= $4
                          ORDER BY next_attempt_at, id LIMIT $5 {lock})
             RETURNING id"
    ))
    .bind(lease_until)
    .bind(platform::now_text())
    .bind(PENDING)
    .bind(now_ms)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = ids
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let placeholders = (1..=ids.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT d.id, d.order_id, d.user_id, d.channel, d.recipient, d.idempotency_key, d.attempts,
                    d.digest, n.event_id, n.kind, n.subject, n.message, n.html, n.payload, n.trace,
                    n.created_at
             FROM deliveries d JOIN notifications n ON n.id = d.notification_id
             WHERE d.id IN ({placeholders}) ORDER BY d.id"
    );
    let mut query = sqlx::query(&sql);
    for id in &ids {
        query = query.bind(*id);
    }
    let rows = query.fetch_all(&mut **tx).await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let created_at: String = row.try_get("created_at")?;
        let digest: Option<String> = row.try_get("digest")?;
        let user_id: Option<i64> = row.try_get("user_id")?;
        let mut outgoing = Outgoing {
            delivery_id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            channel: row.try_get("channel")?,
            recipient: row.try_get("recipient")?,
            idempotency_key: row.try_get("idempotency_key")?,
            kind: row.try_get("kind")?,
            subject: row.try_get("subject")?,
            text: row.try_get("message")?,
            html: row.try_get("html")?,
            payload: row.try_get("payload")?,
            trace: row.try_get("trace")?,
            created_at: chrono::DateTime::parse_from_rfc3339(&created_at)
                .with_context(|| format!("notification time {created_at:?}"))?
                .with_timezone(&Utc),
        };
        if let Some(key) = &digest {
            let items = digest_items(tx, key).await?;
            // A window that gathered nothing else goes as its notice's own message, if
            // that has what the channel sends (a fallback's may not).
            let own_will_do = items.len() <= 1
                && !(outgoing.channel == "email" && outgoing.html.is_empty())
                && !(outgoing.channel == "webhook" && outgoing.payload.is_empty());
            if !items.is_empty() && !own_will_do {
                let composed = notification_service_rules::digest::compose(
                    user_id.unwrap_or_default(),
                    &outgoing.channel,
                    key,
                    outgoing.created_at,
                    &items,
                );
                outgoing.kind = notification_service_rules::digest::KIND.to_string();
                outgoing.subject = composed.subject;
                outgoing.text = composed.text;
                outgoing.html = composed.html;
                outgoing.payload = composed.payload;
            }
        }
        claimed.push(Claimed {
            attempts: row.try_get("attempts")?,
            event_id: row.try_get("event_id")?,
            outgoing,
        });
    }
    Ok(claimed)
}

/// How an attempt ends its delivery.
pub struct Finish<'a> {
    pub status: &'a str,
    /// When it is due again (ms since the epoch), for a retry.
    pub due: Option<i64>,
    pub error: Option<&'a str>,
    pub delivered_at: Option<&'a str>,
    /// The receiver's id of the message, if it gave one (kept if not).
    pub provider_id: Option<&'a str>,
    pub now: &'a str,
}

/// Records how attempt `attempts` of delivery `id` ended; false if a newer attempt has
/// taken the delivery over (its lease ran out) or it is no longer `PENDING`, so that a
/// slow sender cannot overwrite what the newer attempt recorded.
pub async fn finish_attempt(
    tx: &mut Tx,
    id: i64,
    attempts: i64,
    finish: &Finish<'_>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE deliveries SET status = $1, next_attempt_at = COALESCE($2, next_attempt_at),
             last_error = $3, delivered_at = $4, updated_at = $5,
             provider_id = COALESCE($6, provider_id)
         WHERE id = $7 AND status = $8 AND attempts = $9",
    )
    .bind(finish.status)
    .bind(finish.due)
    .bind(finish.error)
    .bind(finish.delivered_at)
    .bind(finish.now)
    .bind(finish.provider_id)
    .bind(id)
    .bind(PENDING)
    .bind(attempts)
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}
