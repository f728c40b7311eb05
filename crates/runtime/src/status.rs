//! What a service is behind on: consumer lag per assigned partition (committed offset vs.
//! the partition's end; with its start, so what the broker keeps shows too) and the outbox
//! backlog (rows not yet published, oldest age).
//! Served as `GET /admin/status` by every service and gathered by `openorder status`; the
//! same reads, made every few seconds, set the lag and backlog gauges of `/metrics`
//! ([`crate::gauges`]).
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

use store::db::Database;

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

#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxStatus {
    pub pending: i64,
    pub oldest_created_at: Option<String>,
    pub oldest_age_ms: Option<i64>,
    /// Why the backlog could not be read (within [`BOUND`]), if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub service: String,
    pub outbox: OutboxStatus,
    pub consumers: Vec<ConsumerStatus>,
    /// Keys set aside while a record of theirs is retried or dead-lettered.
    #[serde(default)]
    pub waiting: Vec<messaging::stalls::WaitingKey>,
}

/// A consumer to report on.
#[derive(Clone)]
pub struct Watched {
    pub name: &'static str,
    pub group: String,
    /// Weak, so that the consumer loop holds the last reference and closes it at its end.
    pub consumer: Weak<StreamConsumer>,
    /// What its loop received and finished ([`messaging::lanes::Progress`]).
    pub progress: messaging::lanes::Progress,
}

/// Longest `GET /admin/status` takes: what was not read by then is reported as not
/// answered (a stalled broker must not hold the answer).
pub const BOUND: Duration = Duration::from_secs(2);

fn lag_of(
    consumer: &StreamConsumer,
    deadline: std::time::Instant,
) -> anyhow::Result<Vec<PartitionLag>> {
    let left = || {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        anyhow::ensure!(
            !left.is_zero(),
            "no answer from the brokers within {} s",
            BOUND.as_secs()
        );
        Ok(left)
    };
    let assignment = consumer.assignment()?;
    let committed = consumer.committed_offsets(assignment, left()?)?;
    let mut out = Vec::new();
    for element in committed.elements() {
        let (low, high) =
            consumer.fetch_watermarks(element.topic(), element.partition(), left()?)?;
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

/// The outbox backlog, in one query: its rows, and the oldest (the first by `id`, which is
/// time order: found through the primary key, not by reading every `created_at`).
pub async fn outbox(db: &Database) -> Result<OutboxStatus, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, (SELECT created_at FROM outbox ORDER BY id LIMIT 1) AS oldest
         FROM outbox",
    )
    .fetch_one(&db.pool)
    .await?;
    let oldest: Option<String> = row.try_get("oldest")?;
    let age = oldest
        .as_deref()
        .and_then(|t| age_ms(t, chrono::Utc::now()));
    Ok(OutboxStatus {
        pending: row.try_get("n")?,
        oldest_created_at: oldest,
        oldest_age_ms: age,
        error: None,
    })
}

/// Milliseconds from `created_at` (RFC 3339, as the outbox keeps it) to `now`; None when it
/// does not parse. Negative for a row stamped by a clock ahead of this one.
pub fn age_ms(created_at: &str, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(created_at)
        .ok()
        .map(|at| (now - at.with_timezone(&chrono::Utc)).num_milliseconds())
}

/// The lag of each partition assigned to `watched`'s consumer, read on a blocking thread
/// (librdkafka's calls block) within [`BOUND`]; None when the consumer has stopped.
pub async fn consumer_lag(watched: &Watched) -> Option<anyhow::Result<Vec<PartitionLag>>> {
    let consumer = watched.consumer.upgrade()?;
    let deadline = std::time::Instant::now() + BOUND;
    let read = tokio::task::spawn_blocking(move || lag_of(&consumer, deadline));
    // The blocking read ends by the deadline too; the margin covers its hand-over.
    Some(
        match tokio::time::timeout(BOUND + Duration::from_millis(200), read).await {
            Ok(Ok(lag)) => lag,
            Ok(Err(panicked)) => Err(anyhow::anyhow!("the lag read failed: {panicked}")),
            Err(_) => Err(anyhow::anyhow!(
                "the brokers gave no answer within {} s",
                BOUND.as_secs()
            )),
        },
    )
}

/// The status of one service: its outbox and each watched consumer, read side by side and
/// answered within [`BOUND`]: a part not read by then says so in its `error`.
pub async fn snapshot(
    service: &str,
    db: &Database,
    watched: &[Watched],
    stalls: &messaging::stalls::Stalls,
) -> anyhow::Result<ServiceStatus> {
    let late = || format!("no answer within {} s", BOUND.as_secs());
    let outbox = async {
        match tokio::time::timeout(BOUND, outbox(db)).await {
            Ok(Ok(outbox)) => outbox,
            Ok(Err(err)) => OutboxStatus {
                error: Some(format!("{err:#}")),
                ..Default::default()
            },
            Err(_) => OutboxStatus {
                error: Some(format!("the database gave {}", late())),
                ..Default::default()
            },
        }
    };
    let consumers = futures_util::future::join_all(watched.iter().map(|w| async move {
        let lag = consumer_lag(w).await?;
        Some(ConsumerStatus {
            name: w.name.to_string(),
            group: w.group.clone(),
            error: lag.as_ref().err().map(|e| format!("{e:#}")),
            partitions: lag.unwrap_or_default(),
        })
    }));
    let (outbox, consumers) = tokio::join!(outbox, consumers);
    Ok(ServiceStatus {
        service: service.to_string(),
        outbox,
        consumers: consumers.into_iter().flatten().collect(),
        waiting: stalls.report(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outbox_rows_age_is_counted_from_its_created_at_to_the_millisecond() {
        let now = chrono::DateTime::parse_from_rfc3339("2025-03-01T12:00:05.250Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(age_ms("2025-03-01T12:00:00.000Z", now), Some(5_250));
        assert_eq!(age_ms("2025-03-01T13:00:00.000+01:00", now), Some(5_250));
        assert_eq!(age_ms("yesterday", now), None);
    }
}
