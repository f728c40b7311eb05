//! Broker readiness: the probe start-up asks whether the brokers answer (and which tells a
//! broker refusing this client from one not up yet), a ping, a watch that logs when the
//! brokers stop and start answering, and a wait until they do.

use std::time::Duration;

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, FutureProducer, Producer};
use tokio_util::sync::CancellationToken;

use crate::clients::base;
use crate::BrokerArgs;

/// A client that asks whether the brokers answer, for start-up
/// (`runtime::starting::Starting::until` with [`BrokerProbe::answers`]).
pub struct BrokerProbe {
    pub(crate) probe: std::sync::Arc<BaseProducer<StartContext>>,
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

    pub(crate) fn refusal(&self) -> Option<String> {
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
