//! Kafka clients as every service configures them: what every client shares ([`base`]),
//! the producer, the at-least-once consumer, and how records are partitioned and assigned.

use std::time::Duration;

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureProducer;

use crate::{BrokerArgs, KafkaArgs};

/// How the producers map keys to partitions: Java's (see [`producer`]).
pub const PARTITIONER: &str = "murmur2_random";

/// What every client shares: brokers, name, and how it reaches them (TLS, SASL).
pub fn base(args: &BrokerArgs, client_id: &str) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", args.bootstrap())
        .set("client.id", client_id)
        // Only log through the error callback; librdkafka's own stderr lines are noise here.
        .set("log_level", "3");
    let security = args.security.settings().map_err(|e| anyhow::anyhow!(e))?;
    for (key, value) in security {
        config.set(key, value);
    }
    Ok(config)
}

fn apply_overrides(config: &mut ClientConfig, args: &BrokerArgs) {
    for (key, value) in &args.kafka_options {
        config.set(key, value);
    }
}

/// The largest record the producers send (`message.max.bytes`), unless a
/// `--kafka-option message.max.bytes=…` says otherwise. librdkafka's default, set on
/// purpose: it is under what Apache Kafka accepts by default (`message.max.bytes`
/// 1,048,588 on the broker, `max.request.size` 1,048,576 in Java clients), so a record the
/// producer lets through is one the broker takes. Events are a few hundred bytes; only a
/// dead letter of a record someone else produced can come near it
/// (`messaging::dead_letters::write`).
pub const MAX_MESSAGE_BYTES: usize = 1_000_000;

/// The producers' `message.max.bytes`, as configured.
pub fn max_message_bytes(args: &BrokerArgs) -> usize {
    args.kafka_options
        .iter()
        .rev()
        .find(|(k, _)| k == "message.max.bytes")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(MAX_MESSAGE_BYTES)
}

/// The producer every service uses: idempotent, `acks=all`, so a record the broker
/// acknowledged is in every in-sync replica exactly once and in order. Keys are
/// partitioned as Java clients partition them (murmur2, `murmur2_random`: a record without
/// a key goes to a random partition), so a record keyed by an order id lands on the
/// partition a Spring or Kafka Streams producer would choose for the same key.
pub fn producer(args: &KafkaArgs, client_id: &str) -> anyhow::Result<FutureProducer> {
    let mut config = base(&args.broker, client_id)?;
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", PARTITIONER)
        .set("message.max.bytes", MAX_MESSAGE_BYTES.to_string())
        .set("linger.ms", "2")
        .set("compression.type", "none")
        // A relay retries what timed out, so a bounded wait per attempt is enough.
        .set("message.timeout.ms", "30000");
    apply_overrides(&mut config, &args.broker);
    config
        .create()
        .context("Failed to create the Kafka producer")
}

/// An at-least-once consumer: offsets are stored by the consumer loop only after the
/// record's effect is committed, and committed from the store in the background.
pub fn consumer(
    args: &KafkaArgs,
    group_id: &str,
    client_id: &str,
) -> anyhow::Result<StreamConsumer> {
    let mut config = base(&args.broker, client_id)?;
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            args.kafka_session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (args.kafka_session_timeout_ms / 3).max(100).to_string(),
        )
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("fetch.wait.max.ms", args.fetch_wait_max_ms.to_string());
    apply_overrides(&mut config, &args.broker);
    config
        .create()
        .with_context(|| format!("Failed to create the Kafka consumer of group {group_id}"))
}

/// The partition a Java client puts `key` on among `partitions`: Kafka's murmur2
/// (`Utils.murmur2`, seed 0x9747b28c) made positive, modulo the count. The services'
/// producers partition this way ([`PARTITIONER`]), so the console finds an order's records
/// on one partition of each topic; openorder's tests/e2e/partitioning.rs checks both against
/// values computed with kafka-clients.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ key.len() as u32;
    let chunks = key.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().unwrap());
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    ((h & 0x7fff_ffff) % partitions as u32) as i32
}

/// How long [`assign_all`] waits for a topic to list its partitions.
pub const PARTITIONS_WAIT: Duration = Duration::from_secs(10);

/// Assigns every partition of `topics` to `consumer` (no group membership), starting each
/// at the group's committed offset, or the earliest when none is committed.
///
/// A topic another process created a moment ago may not list its partitions yet (Kafka
/// answers metadata from what its controller has propagated so far): it is asked again
/// every 100 ms for up to [`PARTITIONS_WAIT`] before that is an error.
pub fn assign_all(consumer: &StreamConsumer, topics: &[String]) -> anyhow::Result<()> {
    use rdkafka::consumer::Consumer;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for topic in topics {
        anyhow::ensure!(
            !topic.starts_with('^'),
            "a pattern ({topic}) needs group assignment"
        );
        let deadline = std::time::Instant::now() + PARTITIONS_WAIT;
        let partitions = loop {
            let metadata = consumer
                .fetch_metadata(Some(topic), PARTITIONS_WAIT)
                .with_context(|| format!("Failed to read the partitions of {topic}"))?;
            let meta = metadata
                .topics()
                .first()
                .with_context(|| format!("no metadata for {topic}"))?;
            let partitions: Vec<i32> = meta.partitions().iter().map(|p| p.id()).collect();
            if !partitions.is_empty() {
                break partitions;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "topic {topic} has no partitions after {} s ({:?})",
                PARTITIONS_WAIT.as_secs(),
                meta.error()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        for partition in partitions {
            tpl.add_partition_offset(topic, partition, rdkafka::Offset::Stored)?;
        }
    }
    consumer
        .assign(&tpl)
        .map_err(|e| anyhow::anyhow!("Failed to assign {topics:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KafkaSecurityArgs, SaslMechanism, Secret, SecurityProtocol};

    #[test]
    fn sasl_ssl_settings_make_a_client_this_build_of_librdkafka_accepts() {
        let mut args = KafkaArgs::with_defaults("127.0.0.1:1", "");
        args.broker.security = KafkaSecurityArgs {
            kafka_security_protocol: SecurityProtocol::SaslSsl,
            kafka_sasl_mechanism: Some(SaslMechanism::ScramSha512),
            kafka_sasl_username: Some("openorder".into()),
            kafka_sasl_password: Some(Secret::new("S3CRET")),
            ..Default::default()
        };
        let producer = producer(&args, "test").expect("OpenSSL and SCRAM are built in");
        drop(producer);
        let settings = args.broker.security.settings().unwrap();
        assert!(settings.contains(&("ssl.endpoint.identification.algorithm", "https".into())));
        assert!(settings.contains(&("sasl.mechanisms", "SCRAM-SHA-512".into())));
        assert!(
            !format!("{args:?}").contains("S3CRET"),
            "Debug shows no password"
        );
    }

    #[test]
    fn incomplete_security_settings_say_what_is_missing() {
        let sasl = |mechanism, user: Option<&str>, password: Option<&str>| KafkaSecurityArgs {
            kafka_security_protocol: SecurityProtocol::SaslSsl,
            kafka_sasl_mechanism: mechanism,
            kafka_sasl_username: user.map(String::from),
            kafka_sasl_password: password.map(Secret::new),
            ..Default::default()
        };
        let err = sasl(None, Some("u"), Some("p")).settings().unwrap_err();
        assert!(err.contains("--kafka-sasl-mechanism"), "{err}");
        let err = sasl(Some(SaslMechanism::Plain), None, Some("p"))
            .settings()
            .unwrap_err();
        assert!(err.contains("--kafka-sasl-username"), "{err}");
        let err = sasl(Some(SaslMechanism::Plain), Some("u"), None)
            .settings()
            .unwrap_err();
        assert!(err.contains("password"), "{err}");
        let stray = KafkaSecurityArgs {
            kafka_sasl_username: Some("u".into()),
            ..Default::default()
        };
        assert!(stray
            .settings()
            .unwrap_err()
            .contains("SASL settings are given"));
        let stray = KafkaSecurityArgs {
            kafka_ssl_ca_file: Some("/ca.pem".into()),
            ..Default::default()
        };
        assert!(stray
            .settings()
            .unwrap_err()
            .contains("TLS files are given"));
    }
}
