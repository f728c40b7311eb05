//! Dead letters people can act on: list them, show one, replay them to their original topic.
//! Used by `openorder dlt …` and by inventory-service's admin API, so both behave the same.
//!
//! Replaying republishes a dead letter's original key, value and headers (without the
//! dead-letter headers) to its original topic, with `openorder-replay-count` one higher
//! than before. A record whose count would pass the cap is refused. Every replay is
//! recorded in the ledger topic `openorder.dlt-replays` (behind the prefix), keyed by the
//! dead letter's position; a dead letter already in the ledger is not replayed again
//! unless forced, so running the same replay twice by accident does nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use contracts::headers;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::dead_letters::write::be_int;
use crate::record::Record;
use kafka_clients::{BrokerArgs, KafkaArgs};

/// The dead-letter headers whose value is a big-endian integer (as Spring writes them):
/// shown as numbers.
pub const BINARY_INT_HEADERS: [&str; 3] = [
    headers::DLT_ORIGINAL_PARTITION,
    headers::DLT_ORIGINAL_OFFSET,
    headers::DLT_ORIGINAL_TIMESTAMP,
];

/// Ledger topic of replays (behind the prefix).
pub const LEDGER: &str = "openorder.dlt-replays";

/// The readings of a dead letter: a [`Record`] of a `.DLT` topic, with the headers
/// [`crate::dead_letters::write`] wrote on it.
impl Record {
    fn text(&self, name: &str) -> Option<String> {
        self.header_bytes(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.header_bytes(name).and_then(be_int)
    }

    /// Did consumer group `group` (its full name, behind the prefix) give up on the record?
    pub fn dead_lettered_by(&self, group: &str) -> bool {
        self.header(headers::DLT_ORIGINAL_CONSUMER_GROUP) == Some(group)
    }

    /// Why the value was left out of this dead letter, if it was.
    pub fn value_omitted(&self) -> Option<String> {
        self.text(headers::DLT_VALUE_OMITTED)
    }

    /// `<exception class>: <exception message>` from its `kafka_dlt-exception-*` headers
    /// ("unknown" / "no message" where missing).
    pub fn dead_letter_error(&self) -> String {
        format!(
            "{}: {}",
            self.text(headers::DLT_EXCEPTION_FQCN)
                .unwrap_or_else(|| "unknown".into()),
            self.text(headers::DLT_EXCEPTION_MESSAGE)
                .unwrap_or_else(|| "no message".into())
        )
    }

    /// Where the record came from: the `kafka_dlt-original-topic` header, else the topic without `.DLT`.
    pub fn original_topic(&self) -> String {
        self.text(headers::DLT_ORIGINAL_TOPIC).unwrap_or_else(|| {
            self.topic
                .strip_suffix(contracts::topics::DLT_SUFFIX)
                .unwrap_or(&self.topic)
                .to_string()
        })
    }

    /// How often the consumer tried the record before it gave up.
    pub fn attempts(&self) -> Option<u32> {
        self.text(headers::ATTEMPTS).and_then(|a| a.parse().ok())
    }

    /// `topic/partition/offset`: the dead letter's identity in the ledger.
    pub fn position(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }

    pub fn summary(&self) -> Summary {
        Summary {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            key: self.key_text(),
            order_id: self.order_id(),
            error: self.dead_letter_error(),
            attempts: self.attempts(),
            replay_count: self.replay_count(),
            replayed: 0,
            value_omitted: self.value_omitted(),
            original_value_bytes: self
                .text(headers::DLT_ORIGINAL_VALUE_BYTES)
                .and_then(|n| n.parse().ok()),
            original_topic: self.original_topic(),
            original_partition: self.int(headers::DLT_ORIGINAL_PARTITION),
            original_offset: self.int(headers::DLT_ORIGINAL_OFFSET),
            consumer_group: self.text(headers::DLT_ORIGINAL_CONSUMER_GROUP),
            timestamp_ms: self.timestamp,
        }
    }

    /// Everything, headers decoded (Spring's binary integers as numbers), value as JSON if it is JSON.
    pub fn detail(&self) -> serde_json::Value {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let v = v.as_deref().unwrap_or_default();
                let value = match (BINARY_INT_HEADERS.contains(&k.as_str()), be_int(v)) {
                    (true, Some(n)) => serde_json::json!(n),
                    _ => serde_json::json!(String::from_utf8_lossy(v)),
                };
                (k.clone(), value)
            })
            .collect();
        let value = self.payload.as_deref().map(|v| {
            serde_json::from_slice::<serde_json::Value>(v)
                .unwrap_or_else(|_| serde_json::json!(String::from_utf8_lossy(v)))
        });
        serde_json::json!({
            "summary": self.summary(),
            "headers": headers,
            "value": value,
        })
    }
}

/// What `dlt list` shows of one dead letter.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub order_id: Option<i64>,
    pub error: String,
    pub attempts: Option<u32>,
    /// `openorder-replay-count`: how often the record had been replayed when it failed
    /// this time.
    pub replay_count: u32,
    /// How often this dead letter was replayed, as the replay ledger records it.
    pub replayed: u32,
    /// Why the value was left out (too large), if it was; the original's size then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_omitted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_value_bytes: Option<u64>,
    pub original_topic: String,
    pub original_partition: Option<i64>,
    pub original_offset: Option<i64>,
    pub consumer_group: Option<String>,
    pub timestamp_ms: Option<i64>,
}

fn reader(args: &BrokerArgs) -> anyhow::Result<BaseConsumer> {
    let mut config = kafka_clients::base(args, "openorder-dlt-reader")?;
    config
        .set("group.id", "openorder-dlt-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    for (k, v) in &args.kafka_options {
        config.set(k, v);
    }
    config.create().context("Failed to create a Kafka reader")
}

/// Every `.DLT` topic of this deployment (behind its prefix).
pub fn dlt_topics(args: &BrokerArgs) -> anyhow::Result<Vec<String>> {
    let consumer = reader(args)?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .context("Failed to read the broker's topic list")?;
    let prefix = args.topics().prefix().to_string();
    let mut topics: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|t| t.starts_with(&prefix) && t.ends_with(contracts::topics::DLT_SUFFIX))
        .collect();
    topics.sort();
    Ok(topics)
}

/// Reads `topic` from the beginning to its end (blocking). The end is each partition's
/// end-of-partition event, with an idle limit for brokers whose high watermark lags.
pub fn read_all(args: &BrokerArgs, topic: &str) -> anyhow::Result<Vec<Record>> {
    read_at_most(args, topic, usize::MAX)
}

/// [`read_all`], but no more than `max` records (the first read).
pub fn read_at_most(args: &BrokerArgs, topic: &str, max: usize) -> anyhow::Result<Vec<Record>> {
    let consumer = reader(args)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("Failed to read metadata of {topic}"))?;
    let Some(meta) = metadata.topics().first() else {
        return Ok(Vec::new());
    };
    if meta.error().is_some() || meta.partitions().is_empty() {
        return Ok(Vec::new());
    }
    // Each partition is read up to its end now (an empty one not at all): a broker that
    // does not signal the end of a partition is not waited on.
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for p in meta.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .with_context(|| format!("Failed to read the watermarks of {topic}"))?;
        if high > low {
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))?;
            ends.insert(p.id(), high);
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&tpl)?;
    let mut open: HashSet<i32> = ends.keys().copied().collect();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut idle_since = std::time::Instant::now();
    while !open.is_empty() && out.len() < max && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                idle_since = std::time::Instant::now();
                if ends
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() + 1 >= *end)
                {
                    open.remove(&m.partition());
                }
                out.push(Record::from_message(&m));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(err)) => return Err(err).with_context(|| format!("Failed to read {topic}")),
            None if idle_since.elapsed() > Duration::from_secs(3) => break,
            None => {}
        }
    }
    out.sort_by_key(|d| (d.partition, d.offset));
    Ok(out)
}

/// The record of `topic` at `partition`/`offset`, if there is one (blocking; reads that
/// record only).
pub fn read_one(
    args: &BrokerArgs,
    topic: &str,
    partition: i32,
    offset: i64,
) -> anyhow::Result<Option<Record>> {
    if offset < 0 || partition < 0 {
        return Ok(None);
    }
    let consumer = reader(args)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    consumer.assign(&tpl)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.offset() == offset => return Ok(Some(Record::from_message(&m))),
            // Past it (compacted away, or a transaction marker): not there.
            Some(Ok(m)) if m.offset() > offset => return Ok(None),
            Some(Ok(_)) => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return Ok(None),
            Some(Err(err)) => return Err(err).with_context(|| format!("Failed to read {topic}")),
            None => {}
        }
    }
    Ok(None)
}

/// Dead letters of `topic`, or of every DLT topic when None; at most `max` of them.
pub fn list(args: &BrokerArgs, topic: Option<&str>, max: usize) -> anyhow::Result<Vec<Record>> {
    let topics = match topic {
        Some(t) => vec![t.to_string()],
        None => dlt_topics(args)?,
    };
    let mut out = Vec::new();
    for t in topics {
        let room = max.saturating_sub(out.len());
        if room == 0 {
            break;
        }
        out.extend(read_at_most(args, &t, room)?);
    }
    Ok(out)
}

/// Is `topic` a dead-letter topic of this deployment (behind its prefix, ending `.DLT`)?
pub fn is_dead_letter_topic(args: &BrokerArgs, topic: &str) -> bool {
    let topics = args.topics();
    topic.starts_with(topics.prefix())
        && topic.ends_with(contracts::topics::DLT_SUFFIX)
        && topic.len() > topics.prefix().len() + contracts::topics::DLT_SUFFIX.len()
}

/// [`list`]'s dead letters (at most `max`) as summaries, each with how often the ledger
/// says it was replayed (blocking).
pub fn summaries(
    args: &BrokerArgs,
    topic: Option<&str>,
    max: usize,
) -> anyhow::Result<Vec<Summary>> {
    let letters = list(args, topic, max)?;
    let replays = replays_by_position(args)?;
    Ok(letters
        .iter()
        .map(|d| Summary {
            replayed: replays.get(&d.position()).copied().unwrap_or(0),
            ..d.summary()
        })
        .collect())
}

/// How often the ledger says each dead letter (by [`Record::position`]) was replayed
/// (blocking).
fn replays_by_position(args: &BrokerArgs) -> anyhow::Result<HashMap<String, u32>> {
    let mut replays = HashMap::new();
    for entry in read_all(args, &args.topics().group(LEDGER))? {
        if let Some(position) = entry.key_text() {
            *replays.entry(position).or_default() += 1;
        }
    }
    Ok(replays)
}

/// Which dead letters to replay.
#[derive(Clone, Debug)]
pub enum Selection {
    Position { partition: i32, offset: i64 },
    OrderId(i64),
    All,
}

/// What to do and under which limits.
#[derive(Clone, Debug)]
pub struct ReplayRequest {
    pub topic: String,
    pub selection: Selection,
    pub dry_run: bool,
    /// Replay even dead letters the ledger says were replayed already.
    pub force: bool,
    /// Largest `openorder-replay-count` a replayed record may carry.
    pub max_replays: u32,
    /// Who asked (for the ledger).
    pub by: String,
}

/// What happened to one selected dead letter.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResult {
    pub position: String,
    pub order_id: Option<i64>,
    pub target_topic: String,
    pub replay_count: u32,
    /// `replayed`, `would-replay` (dry run), `already-replayed`, `over-cap`,
    /// `value-omitted` (the dead letter has no value to replay: republish the original
    /// from its topic instead).
    pub outcome: String,
}

/// Replays the selected dead letters (see the module header). Blocking reads, async produce.
pub async fn replay(
    args: &KafkaArgs,
    request: &ReplayRequest,
) -> anyhow::Result<Vec<ReplayResult>> {
    let ledger_topic = args.topics().group(LEDGER);
    let (letters, done) = {
        let args = args.broker.clone();
        let topic = request.topic.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let letters = read_all(&args, &topic)?;
            let done = replays_by_position(&args)?;
            Ok((letters, done))
        })
        .await
        .context("reader task panicked")??
    };
    let selected: Vec<&Record> = letters
        .iter()
        .filter(|d| match request.selection {
            Selection::Position { partition, offset } => {
                d.partition == partition && d.offset == offset
            }
            Selection::OrderId(id) => d.order_id() == Some(id),
            Selection::All => true,
        })
        .collect();
    if let Selection::Position { partition, offset } = request.selection {
        anyhow::ensure!(
            !selected.is_empty(),
            "no dead letter at {}/{partition}/{offset}",
            request.topic
        );
    }
    if !request.dry_run {
        kafka_clients::ensure_topics(
            args,
            std::slice::from_ref(&ledger_topic),
            &Default::default(),
        )
        .await?;
    }
    let producer = kafka_clients::producer(args, "openorder-dlt-replay")?;
    let mut results = Vec::new();
    for letter in selected {
        let count = letter.replay_count() + 1;
        let mut result = ReplayResult {
            position: letter.position(),
            order_id: letter.order_id(),
            target_topic: letter.original_topic(),
            replay_count: count,
            outcome: String::new(),
        };
        result.outcome = if letter.value_omitted().is_some() {
            "value-omitted".into()
        } else if done.contains_key(&letter.position()) && !request.force {
            "already-replayed".into()
        } else if count > request.max_replays {
            "over-cap".into()
        } else if request.dry_run {
            "would-replay".into()
        } else {
            publish(&producer, letter, &result.target_topic, count).await?;
            record(&producer, &ledger_topic, letter, &result, &request.by).await?;
            "replayed".into()
        };
        results.push(result);
    }
    Ok(results)
}

async fn publish(
    producer: &FutureProducer,
    letter: &Record,
    target: &str,
    count: u32,
) -> anyhow::Result<()> {
    let count = count.to_string();
    let trace = replay_context(letter);
    let mut hs = OwnedHeaders::new();
    for (k, v) in &letter.headers {
        if k.starts_with("kafka_dlt-") || k == headers::ATTEMPTS || k == headers::REPLAY_COUNT {
            continue;
        }
        // The replay's own context replaces the original's (which its span links to).
        let traced = k.eq_ignore_ascii_case("traceparent") || k.eq_ignore_ascii_case("tracestate");
        if traced && !trace.is_empty() {
            continue;
        }
        hs = hs.insert(Header {
            key: k,
            value: v.as_deref(),
        });
    }
    hs = hs.insert(Header {
        key: headers::REPLAY_COUNT,
        value: Some(count.as_bytes()),
    });
    for (k, v) in &trace {
        hs = hs.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    let mut record = FutureRecord::<[u8], [u8]>::to(target).headers(hs);
    if let Some(key) = &letter.key {
        record = record.key(key);
    }
    if let Some(value) = &letter.payload {
        record = record.payload(value);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| {
            anyhow::anyhow!("Failed to republish {} to {target}: {e}", letter.position())
        })?;
    Ok(())
}

/// With traces on, links the current span (the operator's request) to the dead letter's
/// original context (it keeps the `traceparent` of the record that failed) and gives that
/// span's context for the replayed record: what the replay causes continues the
/// operator's trace, which links back to the failure. Empty without a current span (the
/// record then keeps its original context).
fn replay_context(letter: &Record) -> Vec<(String, String)> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let current = tracing::Span::current();
    let trace = telemetry::context_headers_of(&current);
    if trace.is_empty() {
        return trace;
    }
    let linked = letter.trace_context().span().span_context().clone();
    if linked.is_valid() {
        current.add_link(linked);
    }
    trace
}

async fn record(
    producer: &FutureProducer,
    ledger: &str,
    letter: &Record,
    result: &ReplayResult,
    by: &str,
) -> anyhow::Result<()> {
    let entry = serde_json::json!({
        "position": result.position,
        "orderId": result.order_id,
        "targetTopic": result.target_topic,
        "replayCount": result.replay_count,
        "by": by,
        "at": telemetry::now_text(),
    })
    .to_string();
    let key = letter.position();
    producer
        .send(
            FutureRecord::to(ledger).key(&key).payload(&entry),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("Failed to record the replay of {key}: {e}"))?;
    Ok(())
}
