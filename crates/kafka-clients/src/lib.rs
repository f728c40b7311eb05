//! How OpenOrder reaches its brokers: Kafka clients as every service configures them (from
//! [`KafkaArgs`], the flags every service's Kafka client takes; what only reaches the
//! brokers takes [`BrokerArgs`], the connection's part of them), topic creation, broker readiness and
//! the probe that watches it, and [`backoff`], the one exponential backoff every retry uses.
//! The lowest layer of messaging: it depends on `telemetry` and `store` only.

mod args;
pub mod backoff;

pub use args::*;

use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

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

/// Creates the topics that are missing (never relying on broker auto-creation).
/// Waits, retrying, while the broker is unreachable, until `shutdown`; fails at once when
/// the broker refuses the client (credentials, TLS).
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

/// A client that asks whether the brokers answer, for start-up
/// (`runtime::starting::Starting::until` with [`BrokerProbe::answers`]).
pub struct BrokerProbe {
    probe: std::sync::Arc<BaseProducer<StartContext>>,
    bootstrap: String,
}

impl BrokerProbe {
    pub fn new(args: &BrokerArgs) -> anyhow::Result<Self> {
        let probe = base(args, "openorder-start")?
            .create_with_context(StartContext::default())
            .context("Failed to create the Kafka client")?;
        Ok(Self {
            probe: std::sync::Arc::new(probe),
            bootstrap: args.bootstrap().to_string(),
        })
    }

    /// Ok once a Metadata request is answered (within 2 s), or once a broker refused this
    /// client (credentials, TLS: not something waiting cures; topic creation reports it).
    /// The error says why not, in librdkafka's words (e.g. "Connection refused").
    pub async fn answers(&self) -> anyhow::Result<()> {
        let probe = self.probe.clone();
        let asked = tokio::task::spawn_blocking(move || {
            let answer = probe.client().fetch_metadata(None, Duration::from_secs(2));
            probe.poll(Duration::ZERO);
            answer.map(|_| ())
        })
        .await
        .context("the broker probe panicked")?;
        if asked.is_ok() || self.probe.context().refusal().is_some() {
            return Ok(());
        }
        let heard = self.probe.context().last_said();
        match (asked, heard) {
            (Err(err), Some(heard)) => Err(anyhow::anyhow!("{err} ({heard})")),
            (Err(err), None) => Err(anyhow::anyhow!("{err}")),
            (Ok(()), _) => Ok(()),
        }
    }

    /// The bootstrap servers asked.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }
}

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
        .map(|t| {
            let kept = if t.ends_with(contracts::topics::DLT_SUFFIX) {
                args.dead_letter_retention
            } else if t.ends_with(contracts::topics::PARKED_SUFFIX) {
                args.parked_retention
            } else {
                args.topic_retention
            };
            (
                kept.as_millis().to_string(),
                segment_roll(kept).as_millis().to_string(),
            )
        })
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

/// `segment.ms` of a topic kept `retention`: a quarter of it (at least a minute, or all of
/// it when shorter). Kafka deletes whole segments once their newest record is older than
/// `retention.ms`, and rolls a segment only at `segment.ms` (7 days by default) or
/// `segment.bytes`; so a record stays at most 1¼ × `retention.ms` instead of up to twice
/// that (or, for windows shorter than the default roll, for a week). The embedded broker
/// deletes record by record and ignores it.
pub fn segment_roll(retention: Duration) -> Duration {
    (retention / 4).max(retention.min(Duration::from_secs(60)))
}

/// The admin client's context at start-up: remembers a failure that retrying will not cure
/// (credentials refused, a TLS handshake that failed). librdkafka reports it only in its
/// log while it keeps reconnecting; the log callback runs on librdkafka's own threads.
#[derive(Default)]
pub struct StartContext {
    refusal: std::sync::Mutex<Option<String>>,
    /// librdkafka's last warning or error line (why a broker does not answer).
    last: std::sync::Mutex<Option<String>>,
}

/// What librdkafka's log says when a broker refuses the client.
const REFUSALS: &[&str] = &[
    "SASL authentication error",
    "Authentication failed",
    "SSL handshake failed",
    "certificate verify failed",
];

impl StartContext {
    fn last_said(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn refusal(&self) -> Option<String> {
        self.refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The probe sends nothing; a producer because its events can be served by hand.
impl rdkafka::producer::ProducerContext for StartContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

impl rdkafka::ClientContext for StartContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if REFUSALS.iter().any(|r| message.contains(r)) {
            // "sasl_ssl://host:port/bootstrap: SASL authentication error: …": the reason.
            let reason = message.split_once(": ").map_or(message, |(_, r)| r);
            *self.refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
        }
        if (level as i32) <= rdkafka::config::RDKafkaLogLevel::Warning as i32 {
            // "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused …"
            let said: String = message.chars().take(300).collect();
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(said);
        }
        tracing::debug!(?level, fac, message, "librdkafka");
    }
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

/// Is the broker answering a Metadata request? (An open port is not enough.)
pub async fn ping(producer: &FutureProducer) -> anyhow::Result<()> {
    let producer = producer.clone();
    tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(None, Duration::from_secs(2))
            .map(|_| ())
            .map_err(|e: KafkaError| anyhow::anyhow!("broker metadata request failed: {e}"))
    })
    .await
    .context("metadata task panicked")?
}

/// How often [`watch_brokers`] looks.
const WATCH_EVERY: Duration = Duration::from_secs(3);

/// Logs when the brokers stop answering and when they answer again, once each (a stalled
/// or unreachable broker is otherwise silent: fetches just wait, records wait in the
/// outbox). Looks every [`WATCH_EVERY`] with a Metadata request on `producer`'s
/// connections ([`ping`]), until `stop`.
pub async fn watch_brokers(
    service: &'static str,
    producer: FutureProducer,
    bootstrap: String,
    stop: CancellationToken,
) {
    let mut silent_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(WATCH_EVERY) => {}
        }
        let answered = tokio::select! {
            _ = stop.cancelled() => return,
            answered = ping(&producer) => answered,
        };
        match (answered, silent_since) {
            (Err(err), None) => {
                tracing::warn!(
                    service, %bootstrap, error = %format!("{err:#}"),
                    "the Kafka brokers do not answer: events wait in the outbox, consumers wait for records"
                );
                silent_since = Some(tokio::time::Instant::now());
            }
            (Ok(()), Some(since)) => {
                tracing::info!(
                    service, %bootstrap, after_s = since.elapsed().as_secs(),
                    "the Kafka brokers answer again"
                );
                silent_since = None;
            }
            _ => {}
        }
    }
}

/// Waits until the broker at `bootstrap` answers Metadata, or `timeout` passes.
pub async fn wait_until_ready(bootstrap: &str, timeout: Duration) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "0")
        .create()
        .context("Failed to create a Kafka client")?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match ping(&producer).await {
            Ok(()) => return Ok(()),
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(err.context(format!("broker {bootstrap} not ready after {timeout:?}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
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
