//! After the load: wait for quiescence, then check the invariants from the outside, through
//! the services' APIs and the topics themselves:
//! - every accepted order exists and is final (CONFIRMED, REJECTED, FAILED, CANCELLED);
//! - per SKU: initial stock = available + reserved, reserved = the units of CONFIRMED orders,
//!   and available ≥ 0;
//! - each order has exactly one reservation decision (distinct event ids on
//!   `inventory.reserved` + `inventory.rejected`) matching its status, and at most one release
//!   (exactly one when CANCELLED);
//! - each inventory event produced exactly one notification;
//! - every `FAIL` order is FAILED and in the DLT exactly once (one original record).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use platform::kafka::{BrokerArgs, KafkaArgs};
use serde_json::Value;

use super::load::Sent;

/// What the checks found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Verdict {
    /// Accepted orders that are missing or never reached a final state.
    pub lost: usize,
    /// Effects that happened more than once (decisions, releases, notifications, dead letters).
    pub duplicated: usize,
    /// Everything else that broke an invariant, one line each.
    pub violations: Vec<String>,
}

impl Verdict {
    /// Adds what `other` found to what this one did.
    pub fn add(&mut self, other: Verdict) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.violations.extend(other.violations);
    }

    /// An accepted order missing or not final, saying which.
    fn lose(&mut self, line: String) {
        self.lost += 1;
        self.violations.push(line);
    }

    /// An effect that happened more than once, saying which.
    fn duplicate(&mut self, line: String) {
        self.duplicated += 1;
        self.violations.push(line);
    }
}

const FINAL: [&str; 4] = ["CONFIRMED", "REJECTED", "FAILED", "CANCELLED"];

pub(crate) async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let r = http.get(url).send().await.ok()?;
    if r.status().is_success() {
        r.json().await.ok()
    } else {
        None
    }
}

/// Waits until every accepted order is final and no service has a backlog or lag.
pub async fn quiesce(
    http: &reqwest::Client,
    order_url: &str,
    service_urls: &[String],
    accepted: &[Sent],
    timeout: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pending: BTreeSet<i64> = accepted.iter().map(|s| s.order_id).collect();
    loop {
        let mut still = BTreeSet::new();
        for &id in &pending {
            let order = get_json(http, &format!("{order_url}/api/orders/{id}")).await;
            let status = order
                .as_ref()
                .and_then(|o| o["status"].as_str())
                .unwrap_or("");
            if !FINAL.contains(&status) {
                still.insert(id);
            }
        }
        pending = still;
        let mut quiet = pending.is_empty();
        if quiet {
            for url in service_urls {
                let Some(status) = get_json(http, &format!("{url}/admin/status")).await else {
                    quiet = false;
                    break;
                };
                quiet &= status["outbox"]["pending"] == 0;
                for c in status["consumers"].as_array().into_iter().flatten() {
                    let partitions = c["partitions"].as_array().cloned().unwrap_or_default();
                    // A consumer restarted into a group has no partitions (so no lag) until
                    // the group hands them to it: that is not quiet yet.
                    quiet &= !partitions.is_empty() && partitions.iter().all(|p| p["lag"] == 0);
                }
            }
        }
        if quiet {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "not quiet after {timeout:?}: {} orders not final{}",
                pending.len(),
                if pending.is_empty() {
                    " (a backlog or lag remains)"
                } else {
                    ""
                }
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// order id → distinct event ids, from every record of `topic`.
fn events_by_order(
    kafka: &BrokerArgs,
    topic: &str,
) -> anyhow::Result<HashMap<i64, BTreeSet<String>>> {
    let mut out: HashMap<i64, BTreeSet<String>> = HashMap::new();
    for record in platform::dead_letters::read::read_all(kafka, topic)? {
        let value: Value = record
            .payload
            .as_deref()
            .and_then(|v| serde_json::from_slice(v).ok())
            .unwrap_or(Value::Null);
        if let (Some(order), Some(event)) = (value["orderId"].as_i64(), value["eventId"].as_str()) {
            out.entry(order).or_default().insert(event.to_string());
        }
    }
    Ok(out)
}

/// Checks every invariant; `initial` is each checked SKU's stock before the load.
pub async fn invariants(
    http: &reqwest::Client,
    kafka: &KafkaArgs,
    order_url: &str,
    inventory_url: &str,
    notification_url: &str,
    accepted: &[Sent],
    initial: &BTreeMap<String, i64>,
) -> anyhow::Result<Verdict> {
    let mut v = Verdict::default();
    let statuses = orders_exist_and_are_final(http, order_url, accepted, &mut v).await;
    stock_is_conserved(http, inventory_url, accepted, initial, &statuses, &mut v).await;
    let effects = Effects::read(kafka).await?;
    for sent in accepted {
        let id = sent.order_id;
        let status = statuses.get(&id).map(String::as_str).unwrap_or("");
        let dlt = effects.dead.get(&id).map_or(0, BTreeSet::len);
        one_decision_as_its_status_says(&effects, id, status, &mut v);
        dead_lettered_once_if_it_failed(sent, status, dlt, &mut v);
        one_notification_per_event(http, notification_url, &effects, id, dlt, &mut v).await;
    }
    Ok(v)
}

/// Orders: each accepted one exists and is final; their statuses.
async fn orders_exist_and_are_final(
    http: &reqwest::Client,
    order_url: &str,
    accepted: &[Sent],
    v: &mut Verdict,
) -> HashMap<i64, String> {
    let mut statuses: HashMap<i64, String> = HashMap::new();
    for sent in accepted {
        match get_json(http, &format!("{order_url}/api/orders/{}", sent.order_id)).await {
            Some(order) => {
                let status = order["status"].as_str().unwrap_or("").to_string();
                if !FINAL.contains(&status.as_str()) {
                    v.lose(format!("order {} is {status}, not final", sent.order_id));
                }
                statuses.insert(sent.order_id, status);
            }
            None => v.lose(format!("accepted order {} does not exist", sent.order_id)),
        }
    }
    statuses
}

/// Stock: conservation (available + reserved = initial, available ≥ 0), and reserved = the
/// units of CONFIRMED orders.
async fn stock_is_conserved(
    http: &reqwest::Client,
    inventory_url: &str,
    accepted: &[Sent],
    initial: &BTreeMap<String, i64>,
    statuses: &HashMap<i64, String>,
    v: &mut Verdict,
) {
    let mut expected_reserved: BTreeMap<&str, i64> =
        initial.keys().map(|k| (k.as_str(), 0)).collect();
    for sent in accepted {
        if statuses.get(&sent.order_id).map(String::as_str) == Some("CONFIRMED") {
            for (sku, qty) in &sent.items {
                if let Some(r) = expected_reserved.get_mut(sku.as_str()) {
                    *r += qty;
                }
            }
        }
    }
    for (sku, start) in initial {
        let stock = get_json(http, &format!("{inventory_url}/api/inventory/{sku}"))
            .await
            .unwrap_or(Value::Null);
        let (available, reserved) = (stock["available"].as_i64(), stock["reserved"].as_i64());
        let (Some(available), Some(reserved)) = (available, reserved) else {
            v.violations
                .push(format!("stock of {sku} unreadable: {stock}"));
            continue;
        };
        if available < 0 {
            v.violations
                .push(format!("{sku}: available is {available}"));
        }
        if available + reserved != *start {
            v.violations.push(format!(
                "{sku}: {available} available + {reserved} reserved ≠ {start} initial"
            ));
        }
        let expected = expected_reserved[sku.as_str()];
        if reserved != expected {
            v.violations.push(format!(
                "{sku}: {reserved} reserved ≠ {expected} in CONFIRMED orders"
            ));
        }
    }
}

/// What the topics hold, by order id: the distinct event ids of the decisions and
/// releases, and the original positions of the dead letters.
struct Effects {
    reserved: HashMap<i64, BTreeSet<String>>,
    rejected: HashMap<i64, BTreeSet<String>>,
    released: HashMap<i64, BTreeSet<String>>,
    dead: HashMap<i64, BTreeSet<(i64, i64)>>,
}

impl Effects {
    /// Decisions, releases and dead letters, read from the topics.
    async fn read(kafka: &KafkaArgs) -> anyhow::Result<Self> {
        let (reserved, rejected, released, dead) = {
            let topics = kafka.topics();
            let kafka = kafka.broker.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let dead =
                    platform::dead_letters::read::read_all(&kafka, &topics.order_created_dlt())?;
                Ok((
                    events_by_order(&kafka, &topics.inventory_reserved())?,
                    events_by_order(&kafka, &topics.inventory_rejected())?,
                    events_by_order(&kafka, &topics.inventory_released())?,
                    dead,
                ))
            })
            .await??
        };
        let mut dead_by_order: HashMap<i64, BTreeSet<(i64, i64)>> = HashMap::new();
        for d in &dead {
            let s = platform::dead_letters::read::summary(d);
            if let Some(order) = s.order_id {
                dead_by_order.entry(order).or_default().insert((
                    s.original_partition.unwrap_or(-1),
                    s.original_offset.unwrap_or(-1),
                ));
            }
        }
        Ok(Self {
            reserved,
            rejected,
            released,
            dead: dead_by_order,
        })
    }

    /// How many distinct events of order `id` `of` holds.
    fn count(of: &HashMap<i64, BTreeSet<String>>, id: i64) -> usize {
        of.get(&id).map_or(0, BTreeSet::len)
    }
}

/// Exactly one reservation decision, the one its status says, and at most one release
/// (exactly one when CANCELLED).
fn one_decision_as_its_status_says(effects: &Effects, id: i64, status: &str, v: &mut Verdict) {
    let (res, rej, rel) = (
        Effects::count(&effects.reserved, id),
        Effects::count(&effects.rejected, id),
        Effects::count(&effects.released, id),
    );
    let decisions = res + rej;
    if decisions > 1 {
        v.duplicate(format!("order {id}: {decisions} reservation decisions"));
    }
    match status {
        "CONFIRMED" if res != 1 || rej != 0 => v.violations.push(format!(
            "order {id} CONFIRMED with {res} reserved / {rej} rejected events"
        )),
        "REJECTED" if rej != 1 || res != 0 => v.violations.push(format!(
            "order {id} REJECTED with {res} reserved / {rej} rejected events"
        )),
        "FAILED" if decisions != 0 => v
            .violations
            .push(format!("order {id} FAILED but has {decisions} decisions")),
        _ => {}
    }
    if rel > 1 {
        v.duplicate(format!("order {id}: released {rel} times"));
    }
    if (status == "CANCELLED") != (rel == 1) {
        v.violations
            .push(format!("order {id} is {status} with {rel} releases"));
    }
}

/// Every `FAIL` order is FAILED (or CANCELLED first) and in the DLT exactly once (`dlt`:
/// its original records there); no other order is.
fn dead_lettered_once_if_it_failed(sent: &Sent, status: &str, dlt: usize, v: &mut Verdict) {
    let id = sent.order_id;
    if sent.fail {
        if status != "FAILED" && status != "CANCELLED" {
            v.violations.push(format!("FAIL order {id} is {status}"));
        }
        if dlt > 1 {
            v.duplicate(format!("FAIL order {id} dead-lettered {dlt} times"));
        }
        if status == "FAILED" && dlt == 0 {
            v.violations
                .push(format!("FAILED order {id} is not in the DLT"));
        }
    } else if dlt > 0 {
        v.violations
            .push(format!("order {id} (no FAIL item) is in the DLT"));
    }
}

/// Notifications: exactly one per inventory event of the order, none for another event,
/// and one failure notice when it was dead-lettered (`dlt`) unless its customer was told
/// its decision already.
async fn one_notification_per_event(
    http: &reqwest::Client,
    notification_url: &str,
    effects: &Effects,
    id: i64,
    dlt: usize,
    v: &mut Verdict,
) {
    let events: BTreeSet<&String> = [&effects.reserved, &effects.rejected, &effects.released]
        .iter()
        .filter_map(|m| m.get(&id))
        .flatten()
        .collect();
    let notes = get_json(
        http,
        &format!("{notification_url}/api/notifications?orderId={id}"),
    )
    .await
    .unwrap_or(Value::Null);
    let mut per_event: HashMap<String, usize> = HashMap::new();
    let mut failure_notices = 0;
    let mut decision_notices = 0;
    for n in notes.as_array().into_iter().flatten() {
        // The customer hears of a dead-lettered order once (checked below).
        if n["kind"] == "order.failed" {
            failure_notices += 1;
            continue;
        }
        if matches!(
            n["kind"].as_str(),
            Some("order.confirmed" | "order.rejected" | "order.cancelled")
        ) {
            decision_notices += 1;
        }
        *per_event
            .entry(n["eventId"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    for event in &events {
        match per_event.get(*event).copied().unwrap_or(0) {
            1 => {}
            0 => v
                .violations
                .push(format!("order {id}: event {event} was not notified")),
            n => v.duplicate(format!("order {id}: event {event} notified {n} times")),
        }
    }
    for event in per_event.keys() {
        if !events.contains(event) {
            v.violations.push(format!(
                "order {id}: notification for unknown event {event}"
            ));
        }
    }
    match (dlt, failure_notices) {
        (0, 0) => {}
        (0, n) => v.violations.push(format!(
            "order {id} was never dead-lettered but has {n} failure notices"
        )),
        // A dead letter of an order whose customer was already told its decision (a
        // FAIL order cancelled first) tells nothing more.
        (_, 0) if decision_notices > 0 => {}
        (_, 0) => v.violations.push(format!(
            "order {id} was dead-lettered but its customer was not told"
        )),
        (_, 1) => {}
        (_, n) => v.duplicate(format!("order {id}: {n} failure notices")),
    }
}
