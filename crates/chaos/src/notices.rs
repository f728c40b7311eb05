//! The `kill-notification-held` scenario's own part: notices that wait (issue #34), and a
//! `kill -9` of notification-service while they do.
//!
//! Two users of their own, reached by webhook at a receiver in this process ([`Receiver`],
//! which counts what arrives under which `webhook-id`, the delivery's idempotency key):
//! - [`QUIET_USER`] has quiet hours in `UTC` from an hour ago to the next whole minute but
//!   one (they end 60 to 120 s after they are set): their notices are held until then;
//! - [`DIGEST_USER`] has a digest window of [`DIGEST_MINUTES`]: their notices are gathered
//!   into one message per window.
//!
//! At the fault, the harness places their orders ([`place`]), waits until every notice is
//! visibly waiting, with its due time, in `GET /api/notifications` ([`waiting`]), kills
//! notification-service, restarts it, and after the due times checks ([`check`]) that each
//! held notice and each digest arrived exactly once, not before it was due, a digest listing
//! exactly the notices gathered into it, and that nothing else arrived.

mod receiver;
mod verdict;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::check::get_json;
use super::load::{order_body, post_until_acknowledged, Sent, IN_STOCK, OUT_OF_STOCK};

pub use receiver::{Received, Receiver};
pub use verdict::check;

/// The user whose notices quiet hours hold.
pub const QUIET_USER: i64 = 9001;
/// The user whose notices a digest gathers.
pub const DIGEST_USER: i64 = 9002;
/// The digest window, in minutes (the scenario waits it out).
pub const DIGEST_MINUTES: i64 = 2;

/// Webhooks signed with this secret (any receiver may check it; this one does not).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Environment of the scenario's service processes: webhooks on, and allowed to reach the
/// receiver on loopback.
pub fn service_env() -> Vec<(String, String)> {
    vec![
        ("OPENORDER_WEBHOOK_SECRET".to_string(), SECRET.to_string()),
        (
            "OPENORDER_WEBHOOK_ALLOW_NETWORKS".to_string(),
            "127.0.0.0/8".to_string(),
        ),
    ]
}

/// The orders placed for the two users.
pub struct Placed {
    /// As the load's orders are, so that the general invariants cover them too.
    pub sent: Vec<Sent>,
    /// Order id → its user.
    users: BTreeMap<i64, i64>,
    /// The quiet hours set (`HH:MM` start and end, UTC).
    quiet: (String, String),
}

/// Quiet hours containing `now_ms` (ms since the epoch) in UTC: from an hour before its
/// minute to two minutes after it, so they end 60 to 120 s after `now_ms`.
fn quiet_hours(now_ms: i64) -> (String, String) {
    let minute = now_ms.div_euclid(60_000);
    let of_day = |m: i64| {
        let m = m.rem_euclid(24 * 60);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    (of_day(minute - 60), of_day(minute + 2))
}

async fn put(http: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<()> {
    let r = http.put(url).json(&body).send().await?;
    if !r.status().is_success() {
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        anyhow::bail!("PUT {url} answered {status}: {text}");
    }
    Ok(())
}

/// POSTs one order as the load does (its own `Idempotency-Key`, retried through 503s and
/// refused connections for up to 60 s); its id.
async fn post_order(
    http: &reqwest::Client,
    order_url: &str,
    user_id: i64,
    items: &[(String, i64)],
) -> anyhow::Result<i64> {
    let key = format!("chaos-held-{user_id}-{}", uuid::Uuid::new_v4());
    let body = order_body(user_id, items);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    match post_until_acknowledged(http, order_url, &key, &body, deadline).await {
        Ok(Some(order_id)) => Ok(order_id),
        Ok(None) => anyhow::bail!("no 202 for an order of user {user_id} within 60 s"),
        Err(why) => anyhow::bail!("an order of user {user_id}: {why}"),
    }
}

/// Sets both users' contact (the receiver) and timing, then places their orders: two for
/// [`QUIET_USER`], three for [`DIGEST_USER`] (in stock and out of stock: confirmations and
/// rejections, one notice each).
pub async fn place(
    http: &reqwest::Client,
    order_url: &str,
    notification_url: &str,
    webhook_url: &str,
) -> anyhow::Result<Placed> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let quiet = quiet_hours(now_ms);
    for user in [QUIET_USER, DIGEST_USER] {
        put(
            http,
            &format!("{notification_url}/api/users/{user}/contact"),
            json!({"webhookUrl": webhook_url}),
        )
        .await?;
    }
    put(
        http,
        &format!("{notification_url}/api/users/{QUIET_USER}/notification-preferences"),
        json!({"timeZone": "UTC", "quietHours": {"start": &quiet.0, "end": &quiet.1}}),
    )
    .await?;
    put(
        http,
        &format!("{notification_url}/api/users/{DIGEST_USER}/notification-preferences"),
        json!({"digestMinutes": DIGEST_MINUTES}),
    )
    .await?;
    let one = |sku: &str| vec![(sku.to_string(), 1_i64)];
    let orders = [
        (QUIET_USER, one(IN_STOCK[0])),
        (QUIET_USER, one(OUT_OF_STOCK)),
        (DIGEST_USER, one(IN_STOCK[1])),
        (DIGEST_USER, one(IN_STOCK[2])),
        (DIGEST_USER, one(OUT_OF_STOCK)),
    ];
    let mut sent = Vec::new();
    let mut users = BTreeMap::new();
    for (user, items) in orders {
        let order_id = post_order(http, order_url, user, &items).await?;
        users.insert(order_id, user);
        sent.push(Sent {
            order_id,
            items,
            fail: false,
            cancel_requested: false,
        });
    }
    Ok(Placed { sent, users, quiet })
}

/// One notice seen waiting before the kill: its webhook delivery.
#[derive(Clone, Debug)]
pub struct Waited {
    pub order_id: i64,
    pub user_id: i64,
    pub event_id: String,
    pub kind: String,
    /// The delivery's idempotency key.
    pub key: String,
    /// The digest it carries or was gathered into.
    pub digest: Option<String>,
    /// `GATHERED` into a digest another delivery carries.
    pub gathered: bool,
    /// When it was due (`nextAttemptAt`, RFC 3339 in ms, UTC).
    pub due: String,
}

/// Every notice of the placed orders, waiting.
#[derive(Clone, Debug)]
pub struct Waiting {
    pub notices: Vec<Waited>,
    quiet: (String, String),
}

impl Waiting {
    /// One line on what waited, for the report.
    pub fn describe(&self) -> String {
        let held = self.notices.iter().filter(|w| w.digest.is_none()).count();
        let gathered = self.notices.len() - held;
        let digests: BTreeSet<&str> = self
            .notices
            .iter()
            .filter_map(|w| w.digest.as_deref())
            .collect();
        let dues: BTreeSet<&str> = self.notices.iter().map(|w| w.due.as_str()).collect();
        format!(
            "waiting at the kill: {held} notices held by quiet hours {}–{} UTC, {gathered} in {} digest(s) of {DIGEST_MINUTES} min; due {}",
            self.quiet.0,
            self.quiet.1,
            digests.len(),
            dues.into_iter().collect::<Vec<_>>().join(", ")
        )
    }
}

/// The webhook deliveries of a notification (as `GET /api/notifications` shows it).
fn webhooks(n: &Value) -> Vec<&Value> {
    n["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["channel"] == "webhook")
        .collect()
}

/// `n`'s webhook delivery if it waits as `user_id`'s timing says, with its due time; else
/// what it is instead.
fn waited(n: &Value, order_id: i64, user_id: i64) -> Result<Waited, String> {
    let event_id = n["eventId"].as_str().unwrap_or("").to_string();
    let hooks = webhooks(n);
    let d: &Value = match hooks.as_slice() {
        [d] => d,
        _ => {
            return Err(format!(
                "event {event_id}: {} webhook deliveries",
                hooks.len()
            ))
        }
    };
    let status = d["status"].as_str().unwrap_or("");
    let held = d["held"].as_str();
    let due = d["nextAttemptAt"].as_str();
    let digest = d["digest"].as_str().map(str::to_string);
    let gathered = status == "GATHERED";
    let waits = if user_id == QUIET_USER {
        status == "PENDING" && held == Some("quietHours")
    } else {
        digest.is_some() && (gathered || (status == "PENDING" && held == Some("digest")))
    };
    match due {
        Some(due) if waits => Ok(Waited {
            order_id,
            user_id,
            event_id,
            kind: n["kind"].as_str().unwrap_or("").to_string(),
            key: d["idempotencyKey"].as_str().unwrap_or("").to_string(),
            digest,
            gathered,
            due: due.to_string(),
        }),
        _ => Err(format!(
            "event {event_id}: webhook delivery {status}, held {held:?}, due {due:?}, digest {digest:?}"
        )),
    }
}

/// Every notification of `order_id`.
async fn notifications(
    http: &reqwest::Client,
    notification_url: &str,
    order_id: i64,
) -> Vec<Value> {
    get_json(
        http,
        &format!("{notification_url}/api/notifications?orderId={order_id}"),
    )
    .await
    .and_then(|v| match v {
        Value::Array(notes) => Some(notes),
        _ => None,
    })
    .unwrap_or_default()
}

/// Waits until every placed order has its notice and each waits (held by quiet hours, or
/// in a digest) with a due time; or says what does not within `timeout`.
pub async fn waiting(
    http: &reqwest::Client,
    notification_url: &str,
    placed: &Placed,
    timeout: Duration,
) -> Result<Waiting, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut notices = Vec::new();
        let mut not_yet = Vec::new();
        for sent in &placed.sent {
            let order_id = sent.order_id;
            let user_id = placed.users[&order_id];
            let notes = notifications(http, notification_url, order_id).await;
            if notes.is_empty() {
                not_yet.push(format!("order {order_id}: no notification"));
            }
            for n in &notes {
                match waited(n, order_id, user_id) {
                    Ok(w) => notices.push(w),
                    Err(why) => not_yet.push(format!("order {order_id}: {why}")),
                }
            }
        }
        if not_yet.is_empty() {
            return Ok(Waiting {
                notices,
                quiet: placed.quiet.clone(),
            });
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "notices not seen waiting within {timeout:?}: {}",
                not_yet.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_contain_now_and_end_one_to_two_minutes_later() {
        // 2025-05-01T12:00:30Z.
        let now = 1_746_100_830_000;
        assert_eq!(quiet_hours(now), ("11:00".to_string(), "12:02".to_string()));
        // Around midnight, they wrap it.
        let late = 1_746_143_970_000; // 2025-05-01T23:59:30Z
        assert_eq!(
            quiet_hours(late),
            ("22:59".to_string(), "00:01".to_string())
        );
        let early = 1_746_144_000_000; // 2025-05-02T00:00:00Z
        assert_eq!(
            quiet_hours(early),
            ("23:00".to_string(), "00:02".to_string())
        );
    }
}
