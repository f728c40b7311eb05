//! Flags every service takes, each with an environment-variable twin: `OPENORDER_` and the
//! flag in SCREAMING_SNAKE_CASE (`--bootstrap-servers` is `OPENORDER_BOOTSTRAP_SERVERS`).

use std::time::Duration;

use clap::Args;

/// Broker connection, topics and retry policy: the same for every service.
#[derive(Args, Clone, Debug)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port, comma-separated) [default: 127.0.0.1:9092;
    /// `openorder up` starts its embedded broker when none are given].
    #[arg(long, env = "OPENORDER_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,

    /// Prefix in front of every topic and consumer group name (lets several deployments share a cluster).
    #[arg(long, env = "OPENORDER_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,

    /// Partitions of each topic the service creates at start-up when it is missing.
    #[arg(long, env = "OPENORDER_TOPIC_PARTITIONS", default_value_t = 3)]
    pub topic_partitions: i32,

    /// Replication factor of each topic the service creates at start-up.
    #[arg(long, env = "OPENORDER_TOPIC_REPLICATION_FACTOR", default_value_t = 1)]
    pub topic_replication_factor: i32,

    /// Consumer group session timeout (ms). 6 s suits the embedded broker's slow first join.
    #[arg(
        long,
        env = "OPENORDER_KAFKA_SESSION_TIMEOUT_MS",
        default_value_t = 6000
    )]
    pub kafka_session_timeout_ms: u64,

    /// Longest a consumer's fetch waits for new records (ms). Brokers answer as soon as
    /// records arrive (the embedded one too, with OpenOrder's patch to Tansu), so this only
    /// bounds idle fetches: lower means a busier idle broker.
    #[arg(long, env = "OPENORDER_FETCH_WAIT_MAX_MS", default_value_t = 100)]
    pub fetch_wait_max_ms: u64,

    /// Most records a consumer applies in one database transaction: it takes what the
    /// client has already fetched, up to this many, and commits them together (a record
    /// that fails makes the batch go again one record per transaction). 1 turns batching off.
    #[arg(long, env = "OPENORDER_CONSUME_BATCH", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=10_000))]
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
        default_value = "group"
    )]
    pub partition_assignment: PartitionAssignment,

    /// Extra librdkafka settings, `key=value`, repeatable; applied to every client last.
    /// (Environment: comma-separated.)
    #[arg(long = "kafka-option", env = "OPENORDER_KAFKA_OPTION", value_delimiter = ',', value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,

    /// How many times a consumer tries a record that fails with a transient error
    /// before dead-lettering it (1 = no retry).
    #[arg(long, env = "OPENORDER_RETRY_ATTEMPTS", default_value_t = 3)]
    pub retry_attempts: u32,

    /// Wait before the first retry (ms).
    #[arg(long, env = "OPENORDER_RETRY_BACKOFF_MS", default_value_t = 1000)]
    pub retry_backoff_ms: u64,

    /// Factor applied to the wait after each further failure (1 = fixed interval, as in the seed).
    #[arg(
        long,
        env = "OPENORDER_RETRY_BACKOFF_MULTIPLIER",
        default_value_t = 1.0
    )]
    pub retry_backoff_multiplier: f64,
}

impl KafkaArgs {
    /// The defaults (as the flags give them, environment included) for one broker and prefix:
    /// for tools that talk to a deployment without taking every flag themselves.
    pub fn with_defaults(bootstrap: &str, topic_prefix: &str) -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            kafka: KafkaArgs,
        }
        let mut kafka = Flags::parse_from(["openorder"]).kafka;
        kafka.bootstrap_servers = Some(bootstrap.to_string());
        kafka.topic_prefix = topic_prefix.to_string();
        kafka
    }

    /// The bootstrap servers to connect to.
    pub fn bootstrap(&self) -> &str {
        self.bootstrap_servers
            .as_deref()
            .unwrap_or("127.0.0.1:9092")
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.retry_attempts.max(1),
            initial_backoff: Duration::from_millis(self.retry_backoff_ms),
            multiplier: self.retry_backoff_multiplier.max(1.0),
            max_backoff: Duration::from_secs(30),
        }
    }

    pub fn topics(&self) -> contracts::Topics {
        contracts::Topics::with_prefix(self.topic_prefix.clone())
    }
}

/// See [`KafkaArgs::partition_assignment`].
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionAssignment {
    Group,
    All,
}

/// Bounded retries with exponential backoff and ±20 % jitter.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Total tries, the first included.
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub multiplier: f64,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (1-based), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = self.multiplier.powi(attempt.saturating_sub(1) as i32);
        self.initial_backoff.mul_f64(factor).min(self.max_backoff)
    }

    /// [`Self::backoff`] with ±20 % jitter, so that many consumers do not retry in step.
    pub fn backoff_with_jitter(&self, attempt: u32) -> Duration {
        let jitter = rand::random_range(0.8..1.2);
        self.backoff(attempt).mul_f64(jitter)
    }
}

/// Where a service keeps its data.
#[derive(Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://path/to/file.db` or `postgres://user:pass@host/db`.
    #[arg(long, env = "OPENORDER_DATABASE_URL")]
    pub database_url: String,

    /// Largest number of pooled connections.
    #[arg(long, env = "OPENORDER_DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,
}

/// How a service's HTTP API takes load.
#[derive(Args, Clone, Debug)]
pub struct HttpArgs {
    /// Most API requests worked on at once; one more is answered at once with
    /// `503 /problems/overloaded` and `Retry-After: 1` (health and metrics endpoints are not
    /// limited). Each request in flight holds memory, so this bounds it under overload.
    #[arg(long, env = "OPENORDER_MAX_IN_FLIGHT_REQUESTS", default_value_t = crate::http::MAX_IN_FLIGHT, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_in_flight_requests: u32,
    /// Milliseconds a client may take to send a request's head, counted from when its
    /// connection opened or its last response was sent; then the connection is closed. This
    /// also closes kept-alive connections idle that long.
    #[arg(long, env = "OPENORDER_HEADER_READ_TIMEOUT_MS", default_value_t = crate::http::HEADER_READ_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub header_read_timeout_ms: u64,
}

impl Default for HttpArgs {
    fn default() -> Self {
        Self {
            max_in_flight_requests: crate::http::MAX_IN_FLIGHT,
            header_read_timeout_ms: crate::http::HEADER_READ_TIMEOUT_MS,
        }
    }
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
    fn backoff_grows_by_the_multiplier_and_stops_at_the_cap() {
        let p = RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(100),
            multiplier: 2.0,
            max_backoff: Duration::from_millis(300),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(300));
    }

    #[test]
    fn kafka_options_must_be_key_value_pairs() {
        assert_eq!(
            parse_key_value("linger.ms=5"),
            Ok(("linger.ms".into(), "5".into()))
        );
        assert!(parse_key_value("linger.ms").is_err());
    }
}
