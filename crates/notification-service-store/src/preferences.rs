//! The channels users want per kind of notification and when notices come
//! (`notification_preferences`, stored as JSON of
//! [`notification_service_rules::preferences`]).

use std::collections::{BTreeSet, HashMap};

use notification_service_rules::preferences::{ChannelsByKind, Preferences, QuietHours, Timing};
use platform::db::{placeholders, Database, Tx};
use serde::Serialize;
use sqlx::Row;

/// The preferences of `user_ids` that have any, by user.
pub async fn user_preferences(
    tx: &mut Tx,
    user_ids: &BTreeSet<i64>,
) -> Result<HashMap<i64, Preferences>, sqlx::Error> {
    let user_ids: Vec<i64> = user_ids.iter().copied().collect();
    let mut preferences = HashMap::new();
    for chunk in platform::db::statement_chunks(&user_ids, 1) {
        let sql = format!(
            "SELECT user_id, channels, timing FROM notification_preferences WHERE user_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let channels: String = row.try_get("channels")?;
            let timing: String = row.try_get("timing")?;
            preferences.insert(
                row.try_get("user_id")?,
                Preferences {
                    channels: from_json(&channels)?,
                    timing: from_json(&timing)?,
                },
            );
        }
    }
    Ok(preferences)
}

/// Stored preferences (JSON) read back.
fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A user's preferences, as `GET/PUT /api/users/{userId}/notification-preferences` show
/// them.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPreferences {
    pub user_id: i64,
    /// Per kind, the channels chosen; a kind not named gets every channel.
    pub channels: ChannelsByKind,
    /// The IANA time zone the quiet hours are in (`Europe/Berlin`), if set.
    pub time_zone: Option<String>,
    /// Quiet hours (local times `HH:MM`), if set: a notice due inside them waits until
    /// they end, unless its kind is critical.
    pub quiet_hours: Option<QuietHours>,
    /// Kinds that go at once, inside quiet hours and digest windows too.
    pub critical: Vec<String>,
    /// The digest window in minutes (0: none): notices inside one window go as one message
    /// per channel when it closes.
    pub digest_minutes: i64,
    pub updated_at: String,
}

impl UserPreferences {
    fn of(user_id: i64, preferences: Preferences, updated_at: String) -> Self {
        let Preferences { channels, timing } = preferences;
        Self {
            user_id,
            channels,
            time_zone: timing.time_zone,
            quiet_hours: timing.quiet_hours,
            critical: timing.critical,
            digest_minutes: timing.digest_minutes,
            updated_at,
        }
    }
}

/// The preferences a user set, if any.
pub async fn notification_preferences(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    user_id: i64,
) -> Result<Option<UserPreferences>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT user_id, channels, timing, updated_at FROM notification_preferences WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(executor)
    .await?;
    row.map(|row| {
        let channels: String = row.try_get("channels")?;
        let timing: String = row.try_get("timing")?;
        let preferences = Preferences {
            channels: from_json(&channels)?,
            timing: from_json::<Timing>(&timing)?,
        };
        Ok(UserPreferences::of(
            row.try_get("user_id")?,
            preferences,
            row.try_get("updated_at")?,
        ))
    })
    .transpose()
}

/// Sets (replaces) a user's preferences.
pub async fn put_notification_preferences(
    db: &Database,
    user_id: i64,
    preferences: &Preferences,
) -> Result<UserPreferences, sqlx::Error> {
    let now = platform::now_text();
    let channels = serde_json::to_string(&preferences.channels).expect("preferences serialize");
    let timing = serde_json::to_string(&preferences.timing).expect("preferences serialize");
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, channels, timing, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE SET channels = excluded.channels,
             timing = excluded.timing, updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(&channels)
    .bind(&timing)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(UserPreferences::of(user_id, preferences.clone(), now))
}
