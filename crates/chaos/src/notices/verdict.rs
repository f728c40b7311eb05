//! After the kill and restart of `kill-notification-held`: what arrived at the receiver and
//! what the API shows of each notice, judged against what waited before the kill.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use super::{notifications, webhooks, Received, Receiver, Waited, Waiting, DIGEST_USER};
use crate::check::Verdict;

/// After the kill and restart: waits (up to `timeout`) until every message due has arrived,
/// then checks that each held notice and each digest arrived exactly once, after it was
/// due, each digest listing exactly its notices, nothing else arrived, and each notice has
/// one delivery per channel and recipient. `early` is how many webhooks had arrived before
/// the kill (none should have: everything was waiting).
pub async fn check(
    http: &reqwest::Client,
    notification_url: &str,
    waiting: &Waiting,
    receiver: &Receiver,
    early: usize,
    timeout: Duration,
) -> Verdict {
    let mut v = Verdict::default();
    if early > 0 {
        v.violations.push(format!(
            "{early} webhook(s) arrived before the kill, while every notice was waiting"
        ));
    }
    let expected = expected(waiting);
    if !expected.values().any(|carried| carried.len() > 1) {
        v.violations.push(format!(
            "no digest gathered two notices of user {DIGEST_USER}: the digest path was not exercised"
        ));
    }
    wait_until_arrived(receiver, &expected, timeout).await;
    // A few dispatcher rounds more, so that a second send would be seen; and the
    // deliveries' outcomes recorded.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let notes = notes_now(http, notification_url, waiting).await;
    let received = receiver.received();
    let mut by_id: BTreeMap<&str, Vec<&Received>> = BTreeMap::new();
    for r in &received {
        by_id.entry(r.id.as_str()).or_default().push(r);
    }
    each_message_once(&expected, &by_id, &mut v);
    nothing_else(&expected, &by_id, &mut v);
    for w in &waiting.notices {
        as_the_api_shows_it(w, &notes, &mut v);
    }
    v
}

/// The messages that should go: each held notice under its own key, each digest under the
/// digest's key (a window of one goes as its notice's own message, under that key), with
/// the notices each carries.
fn expected(waiting: &Waiting) -> BTreeMap<String, Vec<&Waited>> {
    let mut expected: BTreeMap<String, Vec<&Waited>> = BTreeMap::new();
    for w in &waiting.notices {
        let key = w.digest.clone().unwrap_or_else(|| w.key.clone());
        expected.entry(key).or_default().push(w);
    }
    expected
}

/// Until a message arrived under every `expected` key, or `timeout` passed.
async fn wait_until_arrived(
    receiver: &Receiver,
    expected: &BTreeMap<String, Vec<&Waited>>,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let received = receiver.received();
        let arrived = expected
            .keys()
            .all(|key| received.iter().any(|r| &r.id == key));
        if arrived || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every notification of the orders whose notices waited, by order id, as the API shows
/// them now.
async fn notes_now(
    http: &reqwest::Client,
    notification_url: &str,
    waiting: &Waiting,
) -> BTreeMap<i64, Vec<Value>> {
    let orders: BTreeSet<i64> = waiting.notices.iter().map(|w| w.order_id).collect();
    let mut notes: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for &order_id in &orders {
        notes.insert(
            order_id,
            notifications(http, notification_url, order_id).await,
        );
    }
    notes
}

/// Each message arrived once, with what it should carry.
fn each_message_once(
    expected: &BTreeMap<String, Vec<&Waited>>,
    by_id: &BTreeMap<&str, Vec<&Received>>,
    v: &mut Verdict,
) {
    for (key, carried) in expected {
        let user = carried[0].user_id;
        let arrived = by_id.get(key.as_str()).cloned().unwrap_or_default();
        match arrived.len() {
            0 => {
                v.lost += 1;
                v.violations.push(format!(
                    "user {user}: message {key} ({} notice(s), due {}) never arrived",
                    carried.len(),
                    carried[0].due
                ));
                continue;
            }
            1 => {}
            n => {
                v.duplicated += 1;
                v.violations
                    .push(format!("user {user}: message {key} arrived {n} times"));
            }
        }
        let body: Value = serde_json::from_str(&arrived[0].body).unwrap_or(Value::Null);
        if carried.len() > 1 {
            let listed: BTreeSet<&str> = body["data"]["notifications"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["eventId"].as_str())
                .collect();
            let wanted: BTreeSet<&str> = carried.iter().map(|w| w.event_id.as_str()).collect();
            if body["type"] != "notification.digest" || listed != wanted {
                v.violations.push(format!(
                    "user {user}: digest {key} is a {} listing {listed:?}, not the {} notices gathered {wanted:?}",
                    body["type"],
                    wanted.len()
                ));
            }
        } else if body["type"] != carried[0].kind.as_str() {
            v.violations.push(format!(
                "user {user}: message {key} is a {}, not its notice's {}",
                body["type"], carried[0].kind
            ));
        }
    }
}

/// Nothing else arrived: no notice sent alone beside its digest, none under another key.
fn nothing_else(
    expected: &BTreeMap<String, Vec<&Waited>>,
    by_id: &BTreeMap<&str, Vec<&Received>>,
    v: &mut Verdict,
) {
    for (id, arrived) in by_id {
        if !expected.contains_key(*id) {
            v.duplicated += 1;
            v.violations.push(format!(
                "unexpected webhook {id:?} ({} time(s)): a notice sent outside its digest or twice",
                arrived.len()
            ));
        }
    }
}

/// The notice `w` as the API shows it now (in `notes`): one delivery per channel and
/// recipient; a held notice or a digest DELIVERED not before it was due; a gathered one
/// still GATHERED into the same digest.
fn as_the_api_shows_it(w: &Waited, notes: &BTreeMap<i64, Vec<Value>>, v: &mut Verdict) {
    let found = notes
        .get(&w.order_id)
        .into_iter()
        .flatten()
        .find(|n| n["eventId"] == w.event_id.as_str());
    let Some(n) = found else {
        v.lost += 1;
        v.violations.push(format!(
            "order {}: notification of event {} is gone after the restart",
            w.order_id, w.event_id
        ));
        return;
    };
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for d in n["deliveries"].as_array().into_iter().flatten() {
        let channel = d["channel"].as_str().unwrap_or("").to_string();
        let recipient = d["recipient"].as_str().unwrap_or("").to_string();
        *per.entry((channel, recipient)).or_default() += 1;
    }
    for ((channel, recipient), count) in per {
        if count > 1 {
            v.duplicated += 1;
            v.violations.push(format!(
                "order {}: event {} has {count} {channel} deliveries to {recipient}",
                w.order_id, w.event_id
            ));
        }
    }
    let hooks = webhooks(n);
    let Some(d) = hooks.first() else {
        v.violations.push(format!(
            "order {}: event {} lost its webhook delivery",
            w.order_id, w.event_id
        ));
        return;
    };
    let status = d["status"].as_str().unwrap_or("");
    if w.gathered {
        if status != "GATHERED" || d["digest"].as_str() != w.digest.as_deref() {
            v.violations.push(format!(
                "order {}: event {} was gathered into {:?}, now {status} in {}",
                w.order_id, w.event_id, w.digest, d["digest"]
            ));
        }
        return;
    }
    if status != "DELIVERED" {
        v.violations.push(format!(
            "order {}: event {}'s webhook (due {}) is {status}",
            w.order_id, w.event_id, w.due
        ));
        return;
    }
    // Both are RFC 3339 in ms, UTC, of one format: they compare as text.
    match d["deliveredAt"].as_str() {
        Some(at) if at >= w.due.as_str() => {}
        at => v.violations.push(format!(
            "order {}: event {}'s webhook delivered at {at:?}, before it was due ({})",
            w.order_id, w.event_id, w.due
        )),
    }
}
