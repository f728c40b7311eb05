//! What a service is behind on: consumer lag per assigned partition (committed offset vs.
//! the partition's end; with its start, so what the broker keeps shows too) and the outbox
//! backlog (rows not yet published, oldest age).
//! Served as `GET /admin/status` by every service and gathered by `openorder status`.
//!
//! Lag is per member: each instance reports the partitions assigned to it. The embedded
//! broker (Tansu 0.6) reports a partition's end too low when its last batch held several
//! records, so lag there can read low; Apache Kafka and Redpanda report it exactly.

use std::sync::Weak;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Offset;
use serde::Serialize;
use sqlx::Row;

use crate::db::Database;

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Next offset the group will read (None: nothing committed yet).
    pub committed: Option<i64>,
    /// The partition's start (low watermark): the oldest offset the broker still keeps
    /// (retention moves it).
    #[serde(default)]
    pub start: i64,
    /// The partition's end (high watermark).
    pub end: i64,
    pub lag: i64,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerStatus {
    pub name: String,
    pub group: String,
    pub partitions: Vec<PartitionLag>,
    /// Why the lag could not be read, if it could not.
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxStatus {
    pub pending: i64,
    pub oldest_created_at: Option<String>,
    pub oldest_age_ms: Option<i64>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub service: String,
    pub outbox: OutboxStatus,
    pub consumers: Vec<ConsumerStatus>,
    /// Keys set aside while a record of theirs is retried or dead-lettered.
    #[serde(default)]
    pub waiting: Vec<crate::stalls::WaitingKey>,
}

/// A consumer to report on.
#[derive(Clone)]
pub struct Watched {
    pub name: &'static str,
    pub group: String,
    /// Weak, so that the consumer loop holds the last reference and closes it at its end.
    pub consumer: Weak<StreamConsumer>,
}

fn lag_of(consumer: &StreamConsumer) -> anyhow::Result<Vec<PartitionLag>> {
    let timeout = Duration::from_secs(5);
    let assignment = consumer.assignment()?;
    let committed = consumer.committed_offsets(assignment, timeout)?;
    let mut out = Vec::new();
    for element in committed.elements() {
        let (low, high) =
            consumer.fetch_watermarks(element.topic(), element.partition(), timeout)?;
        let committed = match element.offset() {
            Offset::Offset(n) => Some(n),
            _ => None,
        };
        out.push(PartitionLag {
            topic: element.topic().to_string(),
            partition: element.partition(),
            committed,
            start: low,
            end: high,
            lag: (high - committed.unwrap_or(low)).max(0),
        });
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

pub async fn outbox(db: &Database) -> Result<OutboxStatus, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox")
        .fetch_one(&db.pool)
        .await?;
    let oldest: Option<String> = row.try_get("oldest")?;
    let age = oldest.as_deref().and_then(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds())
    });
    Ok(OutboxStatus {
        pending: row.try_get("n")?,
        oldest_created_at: oldest,
        oldest_age_ms: age,
    })
}

/// The status of one service: its outbox and each watched consumer.
pub async fn snapshot(
    service: &str,
    db: &Database,
    watched: &[Watched],
    stalls: &crate::stalls::Stalls,
) -> anyhow::Result<ServiceStatus> {
    let outbox = outbox(db).await?;
    let mut consumers = Vec::new();
    for w in watched {
        let Some(consumer) = w.consumer.upgrade() else {
            continue;
        };
        let lag = tokio::task::spawn_blocking(move || lag_of(&consumer)).await?;
        consumers.push(ConsumerStatus {
            name: w.name.to_string(),
            group: w.group.clone(),
            error: lag.as_ref().err().map(|e| format!("{e:#}")),
            partitions: lag.unwrap_or_default(),
        });
    }
    Ok(ServiceStatus {
        service: service.to_string(),
        outbox,
        consumers,
        waiting: stalls.report(),
    })
}
