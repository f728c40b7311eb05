//! What the console costs the system, and how fast it pages:
//! - `--tail`: a browser's live tail of `order.created` (the console's `/topics/…/tail`
//!   server-sent events, read as a browser would) through the whole run, so a run with it
//!   beside one without shows what tailing costs the flow;
//! - `--console-records N`: a topic filled with N records, then the console's pages of 100
//!   timed on it: the newest, from an offset in the middle, from a time in the middle, and
//!   the newest of one key (a filtered read, which scans up to 20,000 records a partition);
//! - `--console-tails N`: N live tails at once, each its own session: how many the console
//!   admits (it bounds them) and what they cost `up` in memory and threads, and whether
//!   that comes back once they close.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::producer::FutureRecord;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Signs in to the console at `base` with the operator `token`; the session's cookie.
pub async fn sign_in(base: &str, token: &str) -> anyhow::Result<String> {
    // The answer to signing in is a redirect that carries the cookie: not followed.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()?;
    let page = http.get(format!("{base}/sign-in")).send().await?;
    let cookie = session_cookie(&page).context("the console gave no session cookie")?;
    let body = page.text().await?;
    let marker = "name=\"csrf\" value=\"";
    let at = body
        .find(marker)
        .context("no CSRF field on the sign-in page")?
        + marker.len();
    let csrf = &body[at..at + body[at..].find('"').context("a CSRF value")?];
    let signed = http
        .post(format!("{base}/sign-in"))
        .header(reqwest::header::COOKIE, &cookie)
        .form(&[("csrf", csrf), ("token", token), ("next", "/")])
        .send()
        .await?;
    anyhow::ensure!(
        signed.status() == reqwest::StatusCode::SEE_OTHER,
        "signing in to the console answered {}",
        signed.status()
    );
    session_cookie(&signed).context("no session cookie after signing in")
}

/// The `name=value` of the cookie `response` sets, if it sets one.
fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

/// What a tail received.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tailed {
    pub events: u64,
    pub records: u64,
    /// Records the console counted but did not send (past its per-tick cap).
    pub skipped: u64,
}

/// Reads `topic`'s live tail until `stop`, as a browser would.
pub async fn tail(
    base: String,
    cookie: String,
    topic: String,
    stop: CancellationToken,
) -> anyhow::Result<Tailed> {
    // No overall timeout: the stream runs as long as the run.
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let mut response = http
        .get(format!("{base}/topics/{topic}/tail"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "tail answered {}",
        response.status()
    );
    let mut tailed = Tailed::default();
    let mut pending = String::new();
    loop {
        let chunk = tokio::select! {
            () = stop.cancelled() => break,
            chunk = response.chunk() => chunk?,
        };
        let Some(chunk) = chunk else { break };
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            if !event.contains("event: records") {
                continue;
            }
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect();
            let batch: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
            tailed.events += 1;
            tailed.records += batch["records"].as_array().map_or(0, Vec::len) as u64;
            tailed.skipped += batch["skipped"].as_u64().unwrap_or(0);
        }
    }
    Ok(tailed)
}

/// Many live tails at once, and what they cost.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TailsLoad {
    pub asked: usize,
    pub admitted: usize,
    pub refused: usize,
    /// `up`'s resident memory before, with the tails open, and 15 s after they closed.
    pub rss_kib: [u64; 3],
    /// `up`'s threads at the same moments.
    pub threads: [u64; 3],
}

/// Threads of process `pid` (from /proc).
fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Opens `n` live tails of `topic` on the console at `base`, each from a session of its
/// own, keeps them 20 s, closes them, and reads `up_pid`'s memory and threads around that.
pub async fn tails_load(
    base: &str,
    token: &str,
    topic: &str,
    n: usize,
    up_pid: u32,
) -> anyhow::Result<TailsLoad> {
    let mut load = TailsLoad {
        asked: n,
        ..Default::default()
    };
    let sample = |i: usize, load: &mut TailsLoad| {
        load.rss_kib[i] = super::procstat::rss_kib(up_pid).unwrap_or(0);
        load.threads[i] = threads(up_pid);
    };
    sample(0, &mut load);
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let stop = CancellationToken::new();
    let mut open = tokio::task::JoinSet::new();
    for _ in 0..n {
        let cookie = sign_in(base, token).await?;
        let response = http
            .get(format!("{base}/topics/{topic}/tail"))
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await?;
        if !response.status().is_success() {
            load.refused += 1;
            continue;
        }
        load.admitted += 1;
        let stop = stop.clone();
        open.spawn(async move {
            let mut response = response;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    chunk = response.chunk() => match chunk {
                        Ok(Some(_)) => {}
                        _ => break,
                    },
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    sample(1, &mut load);
    stop.cancel();
    while open.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_secs(15)).await;
    sample(2, &mut load);
    Ok(load)
}

/// One kind of page, timed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageTiming {
    pub page: String,
    pub records_shown: usize,
    /// Each try, in milliseconds.
    pub ms: Vec<f64>,
}

/// Fills a topic with `records` records and times the console's pages on it.
pub async fn pages(
    http: &reqwest::Client,
    kafka: &platform::kafka::KafkaArgs,
    base: &str,
    cookie: &str,
    records: usize,
) -> anyhow::Result<Vec<PageTiming>> {
    let (topic, middle_time) = fill_topic(kafka, records).await?;
    let per_partition = records as i64 / kafka.topic_partitions.max(1) as i64;
    let asks = [
        ("newest 100".to_string(), "limit=100".to_string()),
        (
            "100 from the middle of partition 0".to_string(),
            format!("partition=0&offset={}&limit=100", per_partition / 2),
        ),
        (
            "100 from the middle time".to_string(),
            format!("time={}&limit=100", middle_time.unwrap_or(0)),
        ),
        (
            "newest 100 of key 4242 (filtered)".to_string(),
            "key=4242&limit=100".to_string(),
        ),
    ];
    let mut out = Vec::new();
    for (page, query) in asks {
        let url = format!("{base}/api/topics/{topic}/records?{query}");
        out.push(printed(time_api_page(http, &url, cookie, page).await?));
    }
    // The HTML page of the newest 100, as a browser opens it.
    let url = format!("{base}/topics/{topic}?limit=100");
    out.push(printed(time_html_page(http, &url, cookie).await?));
    Ok(out)
}

/// A new topic filled with `records` records (keys and order ids cycling through 10,000);
/// its name, and when the middle record was produced (ms since the epoch).
async fn fill_topic(
    kafka: &platform::kafka::KafkaArgs,
    records: usize,
) -> anyhow::Result<(String, Option<i64>)> {
    let topic = kafka.topics().group(&format!(
        "bench.console.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    platform::kafka::ensure_topics(kafka, std::slice::from_ref(&topic), &Default::default())
        .await?;
    let producer = platform::kafka::producer(kafka, "bench-console")?;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(records.min(100_000));
    let mut middle_time = None;
    for i in 0..records {
        let key = (i % 10_000).to_string();
        let value = format!(
            r#"{{"eventId":"bench-{i}","orderId":{},"userId":42,"items":[{{"sku":"BENCH-0","qty":1}}],"createdAt":"2026-12-02T00:00:00Z"}}"#,
            i % 10_000
        );
        if i == records / 2 {
            middle_time = Some(chrono::Utc::now().timestamp_millis());
        }
        loop {
            match producer.send_result(FutureRecord::to(&topic).key(&key).payload(&value)) {
                Ok(d) => {
                    deliveries.push(d);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
        if deliveries.len() >= 100_000 {
            for d in deliveries.drain(..) {
                d.await?
                    .map_err(|(e, _)| anyhow::anyhow!("produce failed: {e}"))?;
            }
        }
    }
    for d in deliveries {
        d.await?
            .map_err(|(e, _)| anyhow::anyhow!("produce failed: {e}"))?;
    }
    println!(
        "bench: {records} records in {topic} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok((topic, middle_time))
}

/// `page`: the console's JSON records at `url`, read five times.
async fn time_api_page(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
    page: String,
) -> anyhow::Result<PageTiming> {
    let mut ms = Vec::new();
    let mut shown = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let answer: serde_json::Value = http
            .get(url)
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await?
            .json()
            .await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        shown = answer["records"].as_array().map_or(0, Vec::len);
    }
    Ok(PageTiming {
        page,
        records_shown: shown,
        ms,
    })
}

/// The console's HTML page of the newest 100 at `url`, read five times; each must show
/// 100 records.
async fn time_html_page(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
) -> anyhow::Result<PageTiming> {
    let mut ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let page = http
            .get(url)
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await?
            .text()
            .await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            page.contains("100 record(s) shown"),
            "the page shows 100 records"
        );
    }
    Ok(PageTiming {
        page: "HTML page of the newest 100".into(),
        records_shown: 100,
        ms,
    })
}

/// `timing`, once its line is printed.
fn printed(timing: PageTiming) -> PageTiming {
    println!(
        "bench: console page {:<40} {:>4} records, {} ms",
        timing.page,
        timing.records_shown,
        timing
            .ms
            .iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    timing
}
