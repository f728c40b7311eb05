//! What Web Push keeps in the database: the browsers' subscriptions users register
//! (`push_subscriptions`) and the service's VAPID key pair (`push_vapid_key`). The tables
//! are made by notification-service's schema, from the statements here
//! ([`SUBSCRIPTIONS_TABLE`], [`SUBSCRIPTIONS_BY_USER`], [`VAPID_KEY_TABLE`]).

use std::collections::{BTreeSet, HashMap};

use platform::db::{placeholders, Database, Tx};
use serde::Serialize;
use sqlx::Row;

/// The browsers' subscriptions users register, one row per endpoint (keys base64url,
/// unpadded).
pub const SUBSCRIPTIONS_TABLE: &str = "CREATE TABLE push_subscriptions (
        id {id},
        user_id {int} NOT NULL,
        endpoint TEXT NOT NULL UNIQUE,
        p256dh TEXT NOT NULL,
        auth TEXT NOT NULL,
        created_at TEXT NOT NULL
    )";

/// A user's subscriptions, found by user.
pub const SUBSCRIPTIONS_BY_USER: &str =
    "CREATE INDEX push_subscriptions_by_user ON push_subscriptions (user_id, id)";

/// The service's VAPID key pair, made once and shared by every instance on the database: one
/// row (id 1), the private key as base64url of its 32 bytes.
pub const VAPID_KEY_TABLE: &str = "CREATE TABLE push_vapid_key (
        id {int} PRIMARY KEY,
        private_key TEXT NOT NULL,
        created_at TEXT NOT NULL
    )";

/// A push subscription as the API shows it (its keys are not shown: the authentication
/// secret is the subscriber's and ours).
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSubscriptionView {
    pub id: i64,
    pub user_id: i64,
    /// The push service's URL for the subscribing browser.
    pub endpoint: String,
    pub created_at: String,
}

/// A push subscription as stored: where to post and the keys to encrypt for (base64url).
/// (No `Debug`: it holds the subscriber's authentication secret.)
#[derive(Clone)]
pub struct StoredPushSubscription {
    pub id: i64,
    pub user_id: i64,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// What registering a push subscription did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registered {
    /// A new subscription.
    Created(PushSubscriptionView),
    /// The endpoint was registered already, for this user (the keys updated if they
    /// changed) or for another with the same keys (moved to this user: only the browser
    /// that holds the subscription knows its authentication secret).
    Existing(PushSubscriptionView),
    /// The endpoint is another user's, with other keys: nothing changed.
    Taken,
    /// The user has `max` subscriptions already.
    TooMany { max: i64 },
}

/// Registers `subscription` for `user_id`, idempotent on its endpoint (see [`Registered`]);
/// at most `max` per user. One transaction.
pub async fn register_push_subscription(
    db: &Database,
    user_id: i64,
    subscription: &contracts::values::PushSubscription,
    max: i64,
) -> Result<Registered, sqlx::Error> {
    let endpoint = subscription.endpoint().as_str();
    let p256dh = subscription.p256dh_base64url();
    let auth = subscription.auth_base64url();
    let mut tx = db.begin().await?;
    let mut found = push_subscription_by_endpoint(&mut tx, endpoint).await?;
    if found.is_none() {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM push_subscriptions WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
        if count >= max {
            return Ok(Registered::TooMany { max });
        }
        let now = platform::now_text();
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (endpoint) DO NOTHING RETURNING id",
        )
        .bind(user_id)
        .bind(endpoint)
        .bind(&p256dh)
        .bind(&auth)
        .bind(&now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = inserted {
            tx.commit().await?;
            return Ok(Registered::Created(PushSubscriptionView {
                id,
                user_id,
                endpoint: endpoint.to_string(),
                created_at: now,
            }));
        }
        // Registered meanwhile by another request: as if it had been there.
        found = push_subscription_by_endpoint(&mut tx, endpoint).await?;
    }
    let Some((stored, created_at)) = found else {
        // Registered and removed again meanwhile: the caller may try again.
        return Ok(Registered::Taken);
    };
    let same_keys = stored.p256dh == p256dh && stored.auth == auth;
    if stored.user_id != user_id && !same_keys {
        return Ok(Registered::Taken);
    }
    if stored.user_id != user_id || !same_keys {
        sqlx::query(
            "UPDATE push_subscriptions SET user_id = $1, p256dh = $2, auth = $3 WHERE id = $4",
        )
        .bind(user_id)
        .bind(&p256dh)
        .bind(&auth)
        .bind(stored.id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Registered::Existing(PushSubscriptionView {
        id: stored.id,
        user_id,
        endpoint: stored.endpoint,
        created_at,
    }))
}

/// The subscription registered with `endpoint`, with when it was.
async fn push_subscription_by_endpoint(
    tx: &mut Tx,
    endpoint: &str,
) -> Result<Option<(StoredPushSubscription, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, user_id, endpoint, p256dh, auth, created_at FROM push_subscriptions
         WHERE endpoint = $1",
    )
    .bind(endpoint)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| Ok((stored_push_subscription(&row)?, row.try_get("created_at")?)))
        .transpose()
}

fn stored_push_subscription(
    row: &sqlx::any::AnyRow,
) -> Result<StoredPushSubscription, sqlx::Error> {
    Ok(StoredPushSubscription {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        endpoint: row.try_get("endpoint")?,
        p256dh: row.try_get("p256dh")?,
        auth: row.try_get("auth")?,
    })
}

/// The push subscriptions of `user_id`, oldest first.
pub async fn push_subscriptions_of(
    db: &Database,
    user_id: i64,
) -> Result<Vec<PushSubscriptionView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, user_id, endpoint, created_at FROM push_subscriptions WHERE user_id = $1
         ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PushSubscriptionView {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                endpoint: row.try_get("endpoint")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// Removes push subscription `id`, if it is `user_id`'s (any user's with None); whether
/// there was one. Deliveries still queued for it then fail as they come due
/// ("the push subscription was removed").
pub async fn remove_push_subscription(
    db: &Database,
    user_id: Option<i64>,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let removed = match user_id {
        Some(user_id) => {
            sqlx::query("DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
        }
    };
    tx.commit().await?;
    Ok(removed.rows_affected() > 0)
}

/// Push subscription `id`, to send to.
pub async fn push_subscription(
    db: &Database,
    id: i64,
) -> Result<Option<StoredPushSubscription>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, user_id, endpoint, p256dh, auth FROM push_subscriptions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|row| stored_push_subscription(&row)).transpose()
}

/// The push subscriptions of `user_ids` (their ids, newest first), by user: where their
/// notices go on the push channel.
pub async fn push_subscription_ids(
    tx: &mut Tx,
    user_ids: &BTreeSet<i64>,
) -> Result<HashMap<i64, Vec<i64>>, sqlx::Error> {
    let user_ids: Vec<i64> = user_ids.iter().copied().collect();
    let mut subscriptions: HashMap<i64, Vec<i64>> = HashMap::new();
    for chunk in platform::db::statement_chunks(&user_ids, 1) {
        let sql = format!(
            "SELECT user_id, id FROM push_subscriptions WHERE user_id IN ({}) ORDER BY id DESC",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            subscriptions
                .entry(row.try_get("user_id")?)
                .or_default()
                .push(row.try_get("id")?);
        }
    }
    Ok(subscriptions)
}

/// The VAPID private key every instance on this database signs push requests with: the
/// one stored, or `candidate` (base64url), stored now if none was. Whoever stores first
/// wins; every instance reads that one back.
pub async fn vapid_private_key(db: &Database, candidate: &str) -> Result<String, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO push_vapid_key (id, private_key, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(1_i64)
    .bind(candidate)
    .bind(platform::now_text())
    .execute(&mut *tx)
    .await?;
    let key: String = sqlx::query_scalar("SELECT private_key FROM push_vapid_key WHERE id = $1")
        .bind(1_i64)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(key)
}
