//! The flags of every Kafka client: the broker connection ([`BrokerArgs`]: where the brokers
//! are, the prefix, TLS and SASL, extra librdkafka settings), and for the services
//! ([`KafkaArgs`]) topics, consumer settings and the retry policy besides (each with an
//! environment-variable twin: `OPENORDER_` and the flag in SCREAMING_SNAKE_CASE,
//! `--bootstrap-servers` is `OPENORDER_BOOTSTRAP_SERVERS`).

use std::time::Duration;

use clap::Args;

mod security;
pub use security::*;

/// The `--help` heading of the topics' flags (those [`KafkaArgs`] creates topics with).
const TOPICS: &str = "Kafka topics";
/// The `--help` heading of the consumers' flags, their retries included.
const CONSUMERS: &str = "Kafka consumers";

/// How to reach the brokers: all a tool that reads a few records or writes a few needs
/// (`openorder dlt`, the console). (`Debug` shows no value of a `--kafka-option` whose key
/// names a password, secret or key.)
#[derive(Args, Clone)]
#[command(next_help_heading = "Kafka connection")]
pub struct BrokerArgs {
    /// Kafka bootstrap servers (host:port, comma-separated) [default: 127.0.0.1:9092;
    /// `openorder up` starts its embedded broker when none are given].
    #[arg(long, env = "OPENORDER_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,

    /// Prefix in front of every topic and consumer group name (lets several deployments share a cluster).
    #[arg(long, env = "OPENORDER_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,

    /// Extra librdkafka settings, `key=value`, repeatable; applied to every client last.
    /// (Environment: comma-separated.)
    #[arg(long = "kafka-option", env = "OPENORDER_KAFKA_OPTION", hide_env_values = true, value_delimiter = ',', value_parser = parse_key_value, hide_short_help = true)]
    pub kafka_options: Vec<(String, String)>,

    #[command(flatten)]
    pub security: KafkaSecurityArgs,
}

/// What the services' clients take: the broker connection, topics, consumer settings and
/// retry policy; the same for every service.
#[derive(Args, Clone)]
pub struct KafkaArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,

    /// Partitions of each topic the service creates at start-up when it is missing.
    #[arg(long, env = "OPENORDER_TOPIC_PARTITIONS", default_value_t = 3, hide_short_help = true, help_heading = TOPICS)]
    pub topic_partitions: i32,

    /// Replication factor of each topic the service creates at start-up.
    #[arg(long, env = "OPENORDER_TOPIC_REPLICATION_FACTOR", default_value_t = 1, hide_short_help = true, help_heading = TOPICS)]
    pub topic_replication_factor: i32,

    /// `retention.ms` of each event topic the service creates (`7d`, `36h`, `90s`; the
    /// broker deletes older records). Keep `--retain-dedupe` above it.
    #[arg(long, env = "OPENORDER_TOPIC_RETENTION", default_value = "7d", value_parser = store::retention::parse_age, hide_short_help = true, help_heading = TOPICS)]
    pub topic_retention: Duration,

    /// `retention.ms` of each dead-letter topic the service creates: longer than the
    /// events', to leave time to mend and replay. Keep `--retain-dedupe` at or above it.
    #[arg(long, env = "OPENORDER_DEAD_LETTER_RETENTION", default_value = "14d", value_parser = store::retention::parse_age, hide_short_help = true, help_heading = TOPICS)]
    pub dead_letter_retention: Duration,

    /// `retention.ms` of each parking-lot topic the service creates (`<topic>.PARKED`:
    /// records that failed again after a replay), kept longer still: they wait for a
    /// person. Keep `--retain-dedupe` at or above it.
    #[arg(long, env = "OPENORDER_PARKED_RETENTION", default_value = "30d", value_parser = store::retention::parse_age, hide_short_help = true, help_heading = TOPICS)]
    pub parked_retention: Duration,

    /// Consumer group session timeout (ms). 6 s suits the embedded broker's slow first join.
    #[arg(
        long,
        env = "OPENORDER_KAFKA_SESSION_TIMEOUT_MS",
        default_value_t = 6000,
        hide_short_help = true,
        help_heading = CONSUMERS
    )]
    pub kafka_session_timeout_ms: u64,

    /// Longest a consumer's fetch waits for new records (ms). Brokers answer as soon as
    /// records arrive (the embedded one too, with OpenOrder's patch to Tansu), so this only
    /// bounds idle fetches: lower means a busier idle broker.
    #[arg(long, env = "OPENORDER_FETCH_WAIT_MAX_MS", default_value_t = 100, hide_short_help = true, help_heading = CONSUMERS)]
    pub fetch_wait_max_ms: u64,

    /// Most records a consumer applies in one database transaction: it takes what the
    /// client has already fetched, up to this many, and commits them together (a record
    /// that fails makes the batch go again one record per transaction). 1 turns batching off.
    #[arg(long, env = "OPENORDER_CONSUME_BATCH", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=10_000), hide_short_help = true, help_heading = CONSUMERS)]
    pub consume_batch: u32,

    /// How a consumer gets its partitions: `group` (the broker's group protocol, so several
    /// instances share them) or `all` (each consumer reads every partition itself: one
    /// instance per group; offsets are still committed to the group). `openorder up` uses
    /// `all` with its embedded broker, whose group coordinator cannot re-admit a member that
    /// was killed.
    #[arg(
        long,
        env = "OPENORDER_PARTITION_ASSIGNMENT",
        value_enum,
        default_value = "group",
        hide_short_help = true,
        help_heading = CONSUMERS
    )]
    pub partition_assignment: PartitionAssignment,

    /// How many times a consumer tries a record that fails with a transient error
    /// before dead-lettering it (1 = no retry).
    #[arg(long, env = "OPENORDER_RETRY_ATTEMPTS", default_value_t = 3, hide_short_help = true, help_heading = CONSUMERS)]
    pub retry_attempts: u32,

    /// Wait before the first retry (ms).
    #[arg(long, env = "OPENORDER_RETRY_BACKOFF_MS", default_value_t = 1000, hide_short_help = true, help_heading = CONSUMERS)]
    pub retry_backoff_ms: u64,

    /// Factor applied to the wait after each further failure (1 = fixed interval, as in the seed).
    #[arg(
        long,
        env = "OPENORDER_RETRY_BACKOFF_MULTIPLIER",
        default_value_t = 1.0,
        hide_short_help = true,
        help_heading = CONSUMERS
    )]
    pub retry_backoff_multiplier: f64,
}

impl std::fmt::Debug for BrokerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options: Vec<(&str, &str)> = self
            .kafka_options
            .iter()
            .map(|(key, value)| {
                let secret = ["password", "secret", "key", "token"]
                    .iter()
                    .any(|word| key.to_ascii_lowercase().contains(word));
                (key.as_str(), if secret { "***" } else { value.as_str() })
            })
            .collect();
        f.debug_struct("BrokerArgs")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic_prefix", &self.topic_prefix)
            .field("kafka_options", &options)
            .field("security", &self.security)
            .finish()
    }
}

impl std::fmt::Debug for KafkaArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaArgs")
            .field("broker", &self.broker)
            .field("partition_assignment", &self.partition_assignment)
            .finish_non_exhaustive()
    }
}

impl BrokerArgs {
    /// The bootstrap servers to connect to.
    pub fn bootstrap(&self) -> &str {
        self.bootstrap_servers
            .as_deref()
            .unwrap_or("127.0.0.1:9092")
    }

    pub fn topics(&self) -> contracts::Topics {
        contracts::Topics::with_prefix(self.topic_prefix.clone())
    }
}

impl KafkaArgs {
    /// Every setting at its default (as the flags give them, environment included).
    fn defaults() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            kafka: KafkaArgs,
        }
        Flags::parse_from(["openorder"]).kafka
    }

    /// The defaults (as the flags give them, environment included) for one broker and prefix:
    /// for tools that talk to a deployment without taking every flag themselves.
    pub fn with_defaults(bootstrap: &str, topic_prefix: &str) -> Self {
        let mut kafka = Self::defaults();
        kafka.broker.bootstrap_servers = Some(bootstrap.to_string());
        kafka.broker.topic_prefix = topic_prefix.to_string();
        kafka
    }

    /// `broker`, with every other setting at its default (as the flags give them,
    /// environment included): for a tool that takes only the connection's flags and
    /// needs a service's client now and then (`openorder dlt replay` creates its ledger
    /// topic).
    pub fn from_broker(broker: BrokerArgs) -> Self {
        Self {
            broker,
            ..Self::defaults()
        }
    }

    /// The bootstrap servers to connect to ([`BrokerArgs::bootstrap`]).
    pub fn bootstrap(&self) -> &str {
        self.broker.bootstrap()
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.retry_attempts.max(1),
            backoff: crate::backoff::Backoff {
                initial: Duration::from_millis(self.retry_backoff_ms),
                multiplier: self.retry_backoff_multiplier.max(1.0),
                max: Duration::from_secs(30),
                jitter: 0.2,
            },
        }
    }

    /// The deployment's topics ([`BrokerArgs::topics`]).
    pub fn topics(&self) -> contracts::Topics {
        self.broker.topics()
    }
}

/// See [`KafkaArgs::partition_assignment`].
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionAssignment {
    Group,
    All,
}

/// Bounded retries of a failing record.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Total tries, the first included.
    pub attempts: u32,
    /// The wait between tries (±20 % jitter).
    pub backoff: crate::backoff::Backoff,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_options_must_be_key_value_pairs() {
        assert_eq!(
            parse_key_value("linger.ms=5"),
            Ok(("linger.ms".into(), "5".into()))
        );
        assert!(parse_key_value("linger.ms").is_err());
    }
}
