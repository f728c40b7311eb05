//! Topic creation: the topics a service needs that are missing, created with their
//! retention, never by the broker's auto-creation.

use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use crate::clients::base;
use crate::readiness::{BrokerProbe, StartContext};
use crate::KafkaArgs;

/// Creates the topics that are missing (never relying on broker auto-creation).
/// Waits, retrying, while the broker is unreachable, until `shutdown`; fails at once when
/// the broker refuses the client (credentials, TLS).
pub async fn ensure_topics(
    args: &KafkaArgs,
    topics: &[String],
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base(&args.broker, "openorder-admin")?
        .create()
        .context("Failed to create the Kafka admin client")?;
    // A client of its own, for start-up only: the admin client's events are not served.
    let probe = BrokerProbe::new(&args.broker)?.probe;
    let refused = |probe: &BaseProducer<StartContext>| {
        probe.context().refusal().map(|reason| {
            anyhow::anyhow!(
                "the Kafka brokers at {} refused this client: {reason} (check --kafka-security-protocol, \
                 the SASL username and password, and --kafka-ssl-ca-file)",
                args.bootstrap()
            )
        })
    };
    // Only what is missing is asked for: a create of an existing topic is an error line in
    // the broker's log (Tansu logs one per topic), though an expected one. Services in one
    // process (`up`) take turns, so the second finds what the first created.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let missing = missing_topics(probe.clone(), topics).await;
    if let Some(refused) = refused(&probe) {
        return Err(refused);
    }
    if missing.is_empty() {
        return Ok(());
    }
    let retention: Vec<(String, String)> = missing
        .iter()
        .map(|t| retention_settings(args, t))
        .collect();
    let new_topics: Vec<NewTopic> = missing
        .iter()
        .zip(&retention)
        .map(|(t, (retention_ms, segment_ms))| {
            NewTopic::new(
                t,
                args.topic_partitions,
                TopicReplication::Fixed(args.topic_replication_factor),
            )
            .set("cleanup.policy", "delete")
            .set("retention.ms", retention_ms)
            .set("segment.ms", segment_ms)
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let backoff =
        crate::backoff::Backoff::doubling(Duration::from_millis(200), Duration::from_secs(5));
    let mut tries = 0;
    loop {
        tries += 1;
        match admin.create_topics(&new_topics, &options).await {
            Ok(results) => {
                let mut retry = false;
                for result in results {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((topic, code)) if is_retriable(code) => {
                            tracing::warn!(%topic, %code, "topic not created yet, retrying");
                            retry = true;
                        }
                        Err((topic, code)) => {
                            anyhow::bail!("Failed to create topic {topic}: {code}")
                        }
                    }
                }
                if !retry {
                    return Ok(());
                }
            }
            Err(err) => {
                let _ = missing_topics(probe.clone(), &[]).await;
                if let Some(refused) = refused(&probe) {
                    return Err(refused);
                }
                tracing::warn!(error = %err, "broker not reachable yet, retrying topic creation")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => anyhow::bail!("shut down before the topics could be created"),
            _ = tokio::time::sleep(backoff.delay(tries)) => {}
        }
    }
}

/// The topics of `wanted` the broker's metadata does not list (all of them when the
/// metadata cannot be read: then the create tells why), read by `probe` on a blocking
/// thread for 5 s at most. The probe then serves its events, so that its context sees
/// whether the broker refused it.
async fn missing_topics(
    probe: std::sync::Arc<BaseProducer<StartContext>>,
    wanted: &[String],
) -> Vec<String> {
    let all = wanted.to_vec();
    let read = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let metadata = probe.client().fetch_metadata(None, Duration::from_secs(5));
        probe.poll(Duration::ZERO);
        let metadata = metadata?;
        let known: std::collections::HashSet<&str> =
            metadata.topics().iter().map(|t| t.name()).collect();
        Ok(all
            .into_iter()
            .filter(|t| !known.contains(t.as_str()))
            .collect())
    });
    match read.await {
        Ok(Ok(missing)) => missing,
        _ => wanted.to_vec(),
    }
}

/// `retention.ms` and `segment.ms` of a new `topic`: a DLT, a parking lot or any other
/// topic kept as long as `args` says ([`segment_roll`]).
fn retention_settings(args: &KafkaArgs, topic: &str) -> (String, String) {
    let kept = if topic.ends_with(contracts::topics::DLT_SUFFIX) {
        args.dead_letter_retention
    } else if topic.ends_with(contracts::topics::PARKED_SUFFIX) {
        args.parked_retention
    } else {
        args.topic_retention
    };
    (
        kept.as_millis().to_string(),
        segment_roll(kept).as_millis().to_string(),
    )
}

/// `segment.ms` of a topic kept `retention`: a quarter of it (at least a minute, or all of
/// it when shorter). Kafka deletes whole segments once their newest record is older than
/// `retention.ms`, and rolls a segment only at `segment.ms` (7 days by default) or
/// `segment.bytes`; so a record stays at most 1¼ × `retention.ms` instead of up to twice
/// that (or, for windows shorter than the default roll, for a week). The embedded broker
/// deletes record by record and ignores it.
pub fn segment_roll(retention: Duration) -> Duration {
    (retention / 4).max(retention.min(Duration::from_secs(60)))
}

fn is_retriable(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::NotController
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::InvalidReplicationFactor
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_rolls_at_a_quarter_of_the_retention_and_never_under_a_minute_unless_kept_less() {
        let days = |n: u64| Duration::from_secs(n * 86_400);
        assert_eq!(segment_roll(days(7)), Duration::from_secs(151_200));
        assert_eq!(
            segment_roll(Duration::from_secs(180)),
            Duration::from_secs(60)
        );
        assert_eq!(
            segment_roll(Duration::from_secs(400)),
            Duration::from_secs(100)
        );
        assert_eq!(
            segment_roll(Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }
}
