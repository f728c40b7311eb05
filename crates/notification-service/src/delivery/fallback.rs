//! Falling back to another channel: a deployment names an order of channels
//! (`--notify-fallback sms,email,log`); a delivery on one of them that fails for good (a
//! permanent refusal, its last attempt, or an SMS receipt saying it was not delivered) is
//! queued once more on the next channel of that order after its own that the user can be
//! reached on (the order's contact or the user's registered one; the log always) and that
//! this notification has no delivery on yet. The new delivery names the one it replaces
//! (`fallback_of`) and why that failed (`fallback_reason`); it is due at once, or when the
//! user's quiet hours end (unless its kind is critical to them).
//!
//! Once per notice: the fallback's idempotency key is made of the notice's event id (a
//! digest's key, for a digest) and `fallback`, so a second failure of the same notice —
//! another channel's, or the fallback's own — finds the key taken and queues nothing; and
//! a fallback never falls back again. It is queued in the transaction that records the
//! failure, so a crash loses neither or both.
//!
//! A channel the user's preferences leave out for the kind may still be the fallback: the
//! preferences say where a notice goes, the fallback where it goes when that failed. A
//! channel whose message was not rendered when the notice was routed (the user gave an
//! e-mail address or a webhook only later) is passed over. A fallback to push goes to the
//! user's newest subscription (one fallback per notice); a push that failed because its
//! subscription is gone falls back like any other failure.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use contracts::Contact;
use platform::db::Tx;
use sqlx::Row;

use crate::delivery::channels::Channels;
use crate::notices::idempotency_key;
use crate::schedule::HELD_QUIET;
use crate::store::{self, NewDelivery};

/// The channel to fall back to from `failed`: the first after it in `order` that the user
/// can be reached on (`reachable`: channel and address), that has no delivery of the notice
/// yet (`used`) and whose message is there (`rendered`); with its address.
pub fn next_channel(
    order: &[String],
    failed: &str,
    reachable: &[(&'static str, String)],
    used: &[String],
    rendered: impl Fn(&str) -> bool,
) -> Option<(&'static str, String)> {
    let position = order.iter().position(|c| c == failed)?;
    order[position + 1..].iter().find_map(|candidate| {
        let (channel, address) = reachable.iter().find(|(c, _)| *c == candidate.as_str())?;
        (!used.iter().any(|u| u == channel) && rendered(channel))
            .then(|| (*channel, address.clone()))
    })
}

/// Queues the fallback of delivery `failed_id`, which failed for good because of `reason`,
/// in `tx` (see the module's documentation); the channel it went to, or None if it has none
/// (no order configured, no channel left, the notice fell back already, or it is itself a
/// fallback).
pub async fn fall_back(
    tx: &mut Tx,
    order: &[String],
    channels: &Channels,
    now: DateTime<Utc>,
    failed_id: i64,
    reason: &str,
) -> anyhow::Result<Option<&'static str>> {
    if order.is_empty() {
        return Ok(None);
    }
    let Some(failed) = failed_delivery(tx, failed_id).await? else {
        return Ok(None);
    };
    let user_id = failed.user_id;
    let users = BTreeSet::from([user_id]);
    let defaults = store::user_contacts(tx, &users).await?;
    let push = match channels.push {
        Some(_) => store::push_subscription_ids(tx, &users)
            .await?
            .remove(&user_id)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let reachable = channels.recipients(user_id, &failed.own, defaults.get(&user_id), &push);
    let used: Vec<String> =
        sqlx::query_scalar("SELECT channel FROM deliveries WHERE notification_id = $1")
            .bind(failed.notification_id)
            .fetch_all(&mut **tx)
            .await?;
    let rendered = |channel: &str| {
        failed.digest.is_some()
            || match channel {
                "email" => !failed.html.is_empty(),
                "webhook" => !failed.payload.is_empty(),
                _ => true,
            }
    };
    let Some((channel, recipient)) =
        next_channel(order, &failed.channel, &reachable, &used, rendered)
    else {
        return Ok(None);
    };
    let schedule = store::user_preferences(tx, &users)
        .await?
        .remove(&user_id)
        .map(|p| p.timing.schedule())
        .unwrap_or_default();
    let due = match schedule.is_critical(&failed.kind) {
        true => now,
        false => schedule.not_before(now),
    };
    let base = failed.digest.clone().unwrap_or(failed.event_id);
    let mut fallback = NewDelivery::plain(
        failed.notification_id,
        failed.order_id,
        user_id,
        channel,
        recipient,
        idempotency_key(&base, "fallback"),
        due.timestamp_millis(),
    );
    fallback.held = (due > now).then_some(HELD_QUIET);
    fallback.digest = failed.digest;
    fallback.fallback_of = Some(failed_id);
    fallback.fallback_reason = Some(format!(
        "{} failed: {}",
        failed.channel,
        reason.chars().take(500).collect::<String>()
    ));
    let key = fallback.idempotency_key.clone();
    let added = store::queue_deliveries(tx, std::slice::from_ref(&fallback)).await?;
    Ok(added.contains(&key).then_some(channel))
}

/// A delivery that failed for good, as its fallback needs it: its notice, and the order's
/// own contact.
struct Failed {
    notification_id: i64,
    order_id: i64,
    user_id: i64,
    channel: String,
    /// The digest it carried, if it did.
    digest: Option<String>,
    event_id: String,
    kind: String,
    /// The e-mail HTML and the webhook body rendered when the notice was routed (empty if
    /// none of its channels sent them).
    html: String,
    payload: String,
    own: Contact,
}

/// Delivery `failed_id` as its fallback needs it; None if no fallback is made of it (there
/// is no such delivery, it is itself a fallback, or whom it was for is not known).
async fn failed_delivery(tx: &mut Tx, failed_id: i64) -> anyhow::Result<Option<Failed>> {
    let Some(row) = sqlx::query(
        "SELECT d.notification_id, d.order_id, d.channel, d.digest, d.fallback_of,
                d.user_id AS d_user_id, n.event_id, n.kind, n.html, n.payload,
                o.user_id AS o_user_id, o.email, o.webhook_url, o.phone
         FROM deliveries d JOIN notifications n ON n.id = d.notification_id
             LEFT JOIN order_contacts o ON o.order_id = d.order_id
         WHERE d.id = $1",
    )
    .bind(failed_id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    if row.try_get::<Option<i64>, _>("fallback_of")?.is_some() {
        return Ok(None);
    }
    let user_id = match row.try_get::<Option<i64>, _>("d_user_id")? {
        Some(user) => Some(user),
        None => row.try_get::<Option<i64>, _>("o_user_id")?,
    };
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    Ok(Some(Failed {
        notification_id: row.try_get("notification_id")?,
        order_id: row.try_get("order_id")?,
        user_id,
        channel: row.try_get("channel")?,
        digest: row.try_get("digest")?,
        event_id: row.try_get("event_id")?,
        kind: row.try_get("kind")?,
        html: row.try_get("html")?,
        payload: row.try_get("payload")?,
        own: Contact {
            email: row.try_get("email")?,
            webhook_url: row.try_get("webhook_url")?,
            phone: row.try_get("phone")?,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(channels: &[&str]) -> Vec<String> {
        channels.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn the_next_channel_is_the_first_after_the_failed_one_the_user_can_be_reached_on() {
        let fallback = order(&["sms", "email", "log"]);
        let reachable = vec![
            ("log", "user:42".to_string()),
            ("email", "ada@example.com".to_string()),
            ("sms", "+14155550100".to_string()),
        ];
        let all = |_: &str| true;
        assert_eq!(
            next_channel(&fallback, "sms", &reachable, &order(&["log", "sms"]), all),
            Some(("email", "ada@example.com".to_string()))
        );
        // E-mail is used already (or not rendered): the log.
        assert_eq!(
            next_channel(&fallback, "sms", &reachable, &order(&["sms", "email"]), all),
            Some(("log", "user:42".to_string()))
        );
        assert_eq!(
            next_channel(&fallback, "sms", &reachable, &order(&["sms"]), |c| c
                != "email"),
            Some(("log", "user:42".to_string()))
        );
        // Nothing after the last, nothing for a channel not in the order, nothing unreachable.
        assert_eq!(next_channel(&fallback, "log", &reachable, &[], all), None);
        assert_eq!(
            next_channel(&fallback, "webhook", &reachable, &[], all),
            None
        );
        let only_log = vec![("log", "user:42".to_string())];
        assert_eq!(
            next_channel(&order(&["sms", "email"]), "sms", &only_log, &[], all),
            None
        );
    }
}
