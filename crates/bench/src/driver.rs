//! The open-loop client and the result observer.
//!
//! Open loop: request `i` is *scheduled* at `start + i / rate` and sent then, whether or not
//! earlier requests have been answered, and every latency is measured from the scheduled
//! time. A stalled server therefore shows up as latency instead of hiding as a lower send
//! rate (no coordinated omission).
//!
//! End to end: the observer consumes `inventory.reserved` and `inventory.rejected` (the
//! events that decide an order's final status, the same records order-service applies) and
//! notes when each order's decision arrived. Nothing polls the API. With `--hops` it also
//! reads `order.created`, and notes each record's producer timestamp, so the end-to-end
//! time splits into hops: until order-service's relay produced `order.created`, until
//! inventory-service's relay produced the decision, and until the decision reached a
//! consumer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One request as sent and answered.
#[derive(Clone, Debug)]
pub struct Sample {
    pub scheduled: Instant,
    /// When the client began sending it: later than `scheduled` by the client's own timer
    /// and scheduling (reported as the send lag; it counts in the POST latency).
    pub sent: Instant,
    pub answered: Instant,
    /// The order id if the answer was a 202.
    pub order_id: Option<i64>,
    /// The answer was a 503: the service refused the order as overloaded.
    pub refused: bool,
    /// When the client knew the order's decision (`--client prefer-wait` or `poll`).
    pub learned: Option<Instant>,
    /// Requests the client made for this order (the POST included).
    pub requests: u32,
}

/// How a client learns an order's outcome (`--client`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    /// Takes the 202 and goes.
    Fire,
    /// POSTs with `Prefer: wait=10` and is answered with the decision.
    PreferWait,
    /// Reads its order every `--poll-every-ms` until it is decided.
    Poll,
}

/// [`Client`] with its setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientMode {
    Fire,
    PreferWait,
    Poll(Duration),
}

/// Longest a client waits for its order's decision (`Prefer: wait`, or polling).
const CLIENT_WAIT: Duration = Duration::from_secs(10);

/// What the observer saw of one order.
#[derive(Clone, Copy, Debug, Default)]
pub struct Trace {
    /// When order-service's relay produced `order.created` (the record's timestamp, 1 ms
    /// granular).
    pub created_produced: Option<Instant>,
    /// When inventory-service's relay produced the decision (likewise).
    pub decision_produced: Option<Instant>,
    /// When the decision reached the observer.
    pub decided: Option<Instant>,
}

/// Orders seen so far: order id → what was seen of it.
#[derive(Clone, Default)]
pub struct Decisions(Arc<Mutex<HashMap<i64, Trace>>>);

impl Decisions {
    /// When the order's decision arrived, if it did.
    pub fn get(&self, order_id: i64) -> Option<Instant> {
        self.trace(order_id).decided
    }

    pub fn trace(&self, order_id: i64) -> Trace {
        self.0
            .lock()
            .expect("never poisoned")
            .get(&order_id)
            .copied()
            .unwrap_or_default()
    }
}

/// A record's timestamp (ms since the epoch) on the monotonic clock, by one pairing of the
/// wall clock with it.
struct Clocks {
    instant: Instant,
    epoch_ms: i64,
}

impl Clocks {
    fn now() -> Self {
        let epoch_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        Self {
            instant: Instant::now(),
            epoch_ms,
        }
    }

    fn instant_of(&self, epoch_ms: i64) -> Instant {
        let offset = Duration::from_millis((epoch_ms - self.epoch_ms).unsigned_abs());
        if epoch_ms >= self.epoch_ms {
            self.instant + offset
        } else {
            self.instant.checked_sub(offset).unwrap_or(self.instant)
        }
    }
}

/// Consumes the decision topics, and `order.created` too if `hops`, (every partition, from
/// the beginning) until `stop`.
pub fn observe(
    kafka: &platform::kafka::KafkaArgs,
    hops: bool,
    stop: CancellationToken,
) -> anyhow::Result<Decisions> {
    let topics = kafka.topics();
    let mut args = kafka.clone();
    args.partition_assignment = platform::kafka::PartitionAssignment::All;
    let consumer: StreamConsumer =
        platform::kafka::consumer(&args, &topics.group("bench-observer"), "bench")?;
    let created_topic = topics.order_created();
    let mut observed = vec![topics.inventory_reserved(), topics.inventory_rejected()];
    if hops {
        observed.push(created_topic.clone());
    }
    platform::kafka::assign_all(&consumer, &observed)?;
    // From the beginning: the system under test is fresh, so every record is this run's.
    let mut tpl = consumer.assignment()?;
    tpl.set_all_offsets(rdkafka::Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let decisions = Decisions::default();
    let out = decisions.clone();
    let clocks = Clocks::now();
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => break,
                m = consumer.recv() => m,
            };
            let Ok(message) = message else { continue };
            let now = Instant::now();
            let order_id = message
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| k.parse::<i64>().ok());
            let Some(id) = order_id else { continue };
            let produced = message
                .timestamp()
                .to_millis()
                .map(|ms| clocks.instant_of(ms));
            let mut seen = out.0.lock().expect("never poisoned");
            let trace = seen.entry(id).or_default();
            if message.topic() == created_topic {
                trace.created_produced = trace.created_produced.or(produced);
            } else if trace.decided.is_none() {
                trace.decision_produced = produced;
                trace.decided = Some(now);
            }
        }
    });
    Ok(decisions)
}

/// The pacer wakes at most once a tick. Up to 1,000 requests/s each request gets a wake-up
/// of its own at its scheduled time; above, each wake starts every request that has come
/// due, so the client's own lateness stays under a tick while its wake-ups (CPU taken from
/// the cores the system under test shares) stay as few as Tokio's timer made (at 4,000/s
/// the client's CPU stayed at 24–26 % of a core; a wake-up per request took it to 34 %, a
/// tick of half a millisecond to 30 %).
const PACER_TICK: Duration = Duration::from_millis(1);

/// Sends `count` orders at `rate` per second, open loop; returns every sample.
///
/// The pacing runs on a thread of its own that sleeps with the OS's high-resolution timer
/// until requests are due and hands them to the runtime, which starts them. Tokio's timer
/// is millisecond-grained (a sleep ends on the tick after its deadline, and the wait for
/// that tick is rounded up to a whole millisecond again), so pacing with it sent requests
/// about a millisecond late on average and up to two, and that lateness counted as POST
/// latency. What lateness remains is measured ([`Sample::sent`]) and reported.
pub async fn open_loop(
    http: &reqwest::Client,
    order_url: &str,
    rate: f64,
    count: usize,
) -> anyhow::Result<Vec<Sample>> {
    open_loop_as(http, order_url, rate, count, ClientMode::Fire).await
}

/// [`open_loop`] with clients that learn each outcome as `client` says.
pub async fn open_loop_as(
    http: &reqwest::Client,
    order_url: &str,
    rate: f64,
    count: usize,
    client: ClientMode,
) -> anyhow::Result<Vec<Sample>> {
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<(usize, Instant)>>();
    std::thread::Builder::new()
        .name("bench-pacer".into())
        .spawn(move || {
            let start = std::time::Instant::now();
            let scheduled = |i: usize| start + Duration::from_secs_f64(i as f64 / rate);
            // Wake-ups are planned on a grid (a tick after the last *planned* one), so the
            // time a wake-up takes does not push the following ones later.
            let mut last_planned = start.checked_sub(PACER_TICK).unwrap_or(start);
            let mut next = 0;
            while next < count {
                let planned = scheduled(next).max(last_planned + PACER_TICK);
                if let Some(wait) = planned.checked_duration_since(std::time::Instant::now()) {
                    std::thread::sleep(wait);
                }
                last_planned = planned;
                let now = std::time::Instant::now();
                let mut due = Vec::new();
                while next < count && scheduled(next) <= now {
                    due.push((next, Instant::from_std(scheduled(next))));
                    next += 1;
                }
                if !due.is_empty() && due_tx.send(due).is_err() {
                    return;
                }
            }
        })?;
    let url = format!("{order_url}/api/orders");
    let mut tasks = Vec::with_capacity(count);
    while let Some(due) = due_rx.recv().await {
        for (i, scheduled) in due {
            tasks.push(tokio::spawn(send_order(
                http.clone(),
                url.clone(),
                i,
                scheduled,
                client,
            )));
        }
    }
    let mut samples = Vec::with_capacity(count);
    for task in tasks {
        if let Ok(s) = task.await {
            samples.push(s);
        }
    }
    Ok(samples)
}

/// Posts an order with an item of the `FAIL` SKU every `every` for `length`; returns how
/// many were accepted. These orders are retried and dead-lettered by inventory-service.
pub async fn post_failing_orders(
    http: reqwest::Client,
    order_url: String,
    every: Duration,
    length: Duration,
) -> usize {
    let url = format!("{order_url}/api/orders");
    let body = serde_json::json!({"userId": 999_999, "items": [{"sku": "FAIL", "qty": 1}]});
    let end = Instant::now() + length;
    let mut ticks = tokio::time::interval(every);
    let mut accepted = 0;
    loop {
        ticks.tick().await;
        if Instant::now() >= end {
            return accepted;
        }
        if let Ok(r) = http.post(&url).json(&body).send().await {
            accepted += usize::from(r.status().as_u16() == 202);
        }
    }
}

/// Sends order `i` (scheduled at `scheduled`) and notes how it was answered; then, as
/// `client` says, when the client knew its decision.
async fn send_order(
    http: reqwest::Client,
    url: String,
    i: usize,
    scheduled: Instant,
    client: ClientMode,
) -> Sample {
    let sent = Instant::now();
    let sku = crate::SKUS[i % crate::SKUS.len()];
    let body =
        serde_json::json!({"userId": 1 + (i % 1000) as i64, "items": [{"sku": sku, "qty": 1}]});
    let mut request = http.post(&url).json(&body);
    if client == ClientMode::PreferWait {
        request = request.header("prefer", format!("wait={}", CLIENT_WAIT.as_secs()));
    }
    let answer = request.send().await;
    let refused = matches!(&answer, Ok(r) if r.status().as_u16() == 503);
    // 201: answered with the decision (`Prefer: wait`); 202: accepted, still PENDING.
    let (order_id, decided) = match answer {
        Ok(r) if matches!(r.status().as_u16(), 201 | 202) => {
            let decided = r.status().as_u16() == 201;
            let id = r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["orderId"].as_i64());
            (id, decided)
        }
        _ => (None, false),
    };
    let answered = Instant::now();
    let mut requests = 1;
    let learned = match (client, order_id) {
        (ClientMode::PreferWait, Some(_)) if decided => Some(answered),
        (ClientMode::Poll(every), Some(id)) => {
            let order = format!("{url}/{id}");
            let mut learned = None;
            while answered.elapsed() < CLIENT_WAIT {
                tokio::time::sleep(every).await;
                requests += 1;
                let status = match http.get(&order).send().await {
                    Ok(r) => r.json::<serde_json::Value>().await.ok(),
                    Err(_) => None,
                };
                if status.is_some_and(|v| v["status"].as_str().is_some_and(|s| s != "PENDING")) {
                    learned = Some(Instant::now());
                    break;
                }
            }
            learned
        }
        _ => None,
    };
    Sample {
        scheduled,
        sent,
        answered,
        order_id,
        refused,
        learned,
        requests,
    }
}

/// Waits until every accepted order of `samples` has a decision, or `timeout` passes.
pub async fn wait_decided(samples: &[Sample], decisions: &Decisions, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let missing = samples
            .iter()
            .filter_map(|s| s.order_id)
            .filter(|id| decisions.get(*id).is_none())
            .count();
        if missing == 0 || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
