//! A bounded load of orders, sent like real clients: each order with its own
//! `Idempotency-Key`, retried through refused connections and 503s (a service being killed
//! or its database away), so "accepted" means exactly "got a 202".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::seq::IndexedRandom;
use serde_json::json;
use tokio::sync::Semaphore;

/// SKUs the harness stocks and orders (all behind the `CHAOS-` prefix except `FAIL`).
pub const IN_STOCK: [&str; 5] = ["CHAOS-A", "CHAOS-B", "CHAOS-C", "CHAOS-D", "CHAOS-E"];
pub const OUT_OF_STOCK: &str = "CHAOS-OUT";
pub const HOT: &str = "CHAOS-HOT";

/// What kind of order to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// In-stock, out-of-stock, multi-item and `FAIL` orders, a tenth of them cancelled.
    Mixed,
    /// One unit of the one hot SKU each.
    Contention,
}

/// One order the load sent.
#[derive(Clone, Debug)]
pub struct Sent {
    pub order_id: i64,
    pub items: Vec<(String, i64)>,
    pub fail: bool,
    pub cancel_requested: bool,
}

/// What the load did.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub accepted: Vec<Sent>,
    /// Orders never acknowledged with a 202 (gave up after retrying); not "accepted".
    pub unacknowledged: usize,
    /// Answers that should never happen (a 4xx to a valid order, a 5xx other than 503).
    pub unexpected: Vec<String>,
}

fn items_for(mix: Mix, rng: &mut impl rand::Rng) -> (Vec<(String, i64)>, bool) {
    if mix == Mix::Contention {
        return (vec![(HOT.to_string(), 1)], false);
    }
    let roll: u32 = rng.random_range(0..100);
    let pick = |rng: &mut _| IN_STOCK.choose(rng).expect("not empty").to_string();
    match roll {
        0..=59 => (vec![(pick(rng), rng.random_range(1..=3))], false),
        60..=74 => (vec![(OUT_OF_STOCK.to_string(), 1)], false),
        75..=94 => {
            let mut skus: Vec<&str> = IN_STOCK.choose_multiple(rng, 2).copied().collect();
            if rng.random_bool(0.5) {
                skus.push(OUT_OF_STOCK);
            }
            (
                skus.into_iter()
                    .map(|s| (s.to_string(), rng.random_range(1..=2)))
                    .collect(),
                false,
            )
        }
        _ => (
            vec![(IN_STOCK[0].to_string(), 1), ("FAIL".to_string(), 1)],
            true,
        ),
    }
}

/// Sends `count` orders with at most `concurrency` in flight; `progress` counts acceptances
/// (the fault injector watches it to strike mid-load).
pub async fn run(
    order_url: &str,
    mix: Mix,
    count: usize,
    concurrency: usize,
    progress: Arc<AtomicUsize>,
) -> LoadResult {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a plain HTTP client builds");
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..count {
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        let (items, fail) = items_for(mix, &mut rand::rng());
        let cancel = mix == Mix::Mixed && rand::random_range(0..10) == 0;
        let http = http.clone();
        let url = order_url.to_string();
        let progress = progress.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let outcome = send_one(&http, &url, n, &items, cancel).await;
            if outcome.as_ref().is_ok_and(|o| o.is_some()) {
                progress.fetch_add(1, Ordering::Relaxed);
            }
            (outcome, items, fail, cancel)
        });
    }
    let mut result = LoadResult::default();
    while let Some(joined) = tasks.join_next().await {
        let (outcome, items, fail, cancel_requested) = joined.expect("load task");
        match outcome {
            Ok(Some(order_id)) => result.accepted.push(Sent {
                order_id,
                items,
                fail,
                cancel_requested,
            }),
            Ok(None) => result.unacknowledged += 1,
            Err(unexpected) => result.unexpected.push(unexpected),
        }
    }
    result.accepted.sort_by_key(|s| s.order_id);
    result
}

/// POSTs one order (and maybe its cancel) until it is acknowledged or 60 s pass.
async fn send_one(
    http: &reqwest::Client,
    url: &str,
    n: usize,
    items: &[(String, i64)],
    cancel: bool,
) -> Result<Option<i64>, String> {
    let key = format!("chaos-{n}-{}", uuid::Uuid::new_v4());
    let body = order_body(1 + (n % 50) as i64, items);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let Some(order_id) = post_until_acknowledged(http, url, &key, &body, deadline).await? else {
        return Ok(None);
    };
    if cancel {
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..50))).await;
        loop {
            match http
                .post(format!("{url}/api/orders/{order_id}/cancel"))
                .send()
                .await
            {
                // 200 cancelled; 409 it was already REJECTED or FAILED: both are answers.
                Ok(r) if matches!(r.status().as_u16(), 200 | 409) => break,
                Ok(r) if r.status().as_u16() == 503 => {}
                Ok(r) => return Err(format!("cancel answered {}", r.status())),
                Err(_) => {}
            }
            if tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(Some(order_id))
}

/// The body of an order of `user_id` for `items` (SKU, quantity).
pub(crate) fn order_body(user_id: i64, items: &[(String, i64)]) -> serde_json::Value {
    json!({
        "userId": user_id,
        "items": items.iter().map(|(sku, qty)| json!({"sku": sku, "qty": qty})).collect::<Vec<_>>(),
    })
}

/// POSTs `body` to the order-service at `order_url` under the `Idempotency-Key` `key`, as a
/// client does: again every 200 ms through refused connections and 503s, until a 202 (the
/// order's id) or `deadline` (`None`). Any other answer is an error saying what it was.
pub(crate) async fn post_until_acknowledged(
    http: &reqwest::Client,
    order_url: &str,
    key: &str,
    body: &serde_json::Value,
    deadline: tokio::time::Instant,
) -> Result<Option<i64>, String> {
    loop {
        let sent = http
            .post(format!("{order_url}/api/orders"))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().as_u16() == 202 => {
                let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
                let order_id = v["orderId"].as_i64().ok_or("202 without an orderId")?;
                return Ok(Some(order_id));
            }
            Ok(r) if r.status().as_u16() == 503 => {}
            Ok(r) => {
                return Err(format!(
                    "POST answered {}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ))
            }
            Err(_) => {}
        }
        if tokio::time::Instant::now() > deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
