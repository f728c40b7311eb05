//! The limits the system is compared against, measured in the same run on the same machine:
//! - the broker's raw rate: records of an order event's size produced with the services'
//!   producer settings (idempotent, `acks=all`) and consumed back;
//! - the HTTP ceiling: a no-op JSON endpoint on the same server stack (`platform::http::serve`,
//!   the same body extractor and layers), driven by the same client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::kafka::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerLimit {
    pub records: usize,
    pub record_bytes: usize,
    pub produced_per_second: f64,
    pub consumed_per_second: f64,
    /// Each order makes the broker take 2 records (order.created, its decision) and serve
    /// 4 reads (inventory- and notification-service read the order; order- and
    /// notification-service read the decision): min(produced/s ÷ 2, consumed/s ÷ 4).
    pub orders_per_second: f64,
}

/// Produces `records` records of `payload`'s size to a fresh topic and reads them back.
pub async fn broker(
    kafka: &KafkaArgs,
    records: usize,
    payload: &[u8],
) -> anyhow::Result<BrokerLimit> {
    let topic = kafka
        .topics()
        .group(&format!("bench.raw.{}", uuid::Uuid::new_v4().simple()));
    platform::kafka::ensure_topics(kafka, std::slice::from_ref(&topic), &Default::default())
        .await?;
    let producer = platform::kafka::producer(kafka, "bench-raw")?;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(records);
    for i in 0..records {
        let key = (i % 10_000).to_string();
        loop {
            match producer.send_result(FutureRecord::to(&topic).key(&key).payload(payload)) {
                Ok(d) => {
                    deliveries.push(d);
                    break;
                }
                // The local queue is full: let deliveries drain.
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
    for d in deliveries {
        d.await?
            .map_err(|(e, _)| anyhow::anyhow!("raw produce failed: {e}"))?;
    }
    let produced = records as f64 / started.elapsed().as_secs_f64();

    let consumed = {
        let kafka = kafka.clone();
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
            let consumer: BaseConsumer = platform::kafka::base(&kafka.broker, "bench-raw")?
                .set(
                    "group.id",
                    format!("bench-raw-{}", uuid::Uuid::new_v4().simple()),
                )
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .create()?;
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            let mut tpl = rdkafka::TopicPartitionList::new();
            for p in metadata.topics()[0].partitions() {
                tpl.add_partition_offset(&topic, p.id(), rdkafka::Offset::Beginning)?;
            }
            consumer.assign(&tpl)?;
            let started = Instant::now();
            let mut seen = 0;
            let deadline = started + Duration::from_secs(120);
            while seen < records && Instant::now() < deadline {
                if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
                    seen += 1;
                }
            }
            anyhow::ensure!(seen == records, "read back {seen} of {records} raw records");
            Ok(records as f64 / started.elapsed().as_secs_f64())
        })
        .await??
    };
    Ok(BrokerLimit {
        records,
        record_bytes: payload.len(),
        produced_per_second: produced,
        consumed_per_second: consumed,
        orders_per_second: (produced / 2.0).min(consumed / 4.0),
    })
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpLimit {
    pub requests_per_second: f64,
    pub concurrency: usize,
    pub seconds: f64,
}

async fn noop(
    platform::http::ApiJson(_body): platform::http::ApiJson<serde_json::Value>,
) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    (
        axum::http::StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"orderId": 1, "status": "PENDING"})),
    )
}

/// Saturates a no-op POST endpoint on the services' HTTP stack for `seconds`.
pub async fn http(
    client: &reqwest::Client,
    concurrency: usize,
    seconds: f64,
) -> anyhow::Result<HttpLimit> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/noop", listener.local_addr()?);
    // The services' stack: the in-flight limit, request timing, and `serve` (body limit,
    // problem fallback, the accept loop and its connection settings).
    let metrics = platform::metrics::Metrics::default();
    let api = platform::http::limited(
        axum::Router::new().route("/noop", axum::routing::post(noop)),
        platform::http::MAX_IN_FLIGHT,
        metrics.clone(),
    );
    let router = platform::http::timed(api, metrics);
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move {
            let http = platform::http::HttpArgs::default();
            platform::http::serve(listener, router, &http, stop, Duration::from_secs(1)).await
        }
    });
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, done) = (client.clone(), url.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let body = serde_json::json!({"userId": 1, "items": [{"sku": "ABC-001", "qty": 1}]});
            while Instant::now() < deadline {
                if client.post(&url).json(&body).send().await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    stop.cancel();
    server.await??;
    Ok(HttpLimit {
        requests_per_second: done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
        concurrency,
        seconds,
    })
}
