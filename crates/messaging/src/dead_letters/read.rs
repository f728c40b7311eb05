//! Dead letters people can act on: list them, show one, replay them to their original topic.
//! Used by `openorder dlt …` and by inventory-service's admin API, so both behave the same.
//!
//! Replaying republishes a dead letter's original key, value and headers (without the
//! dead-letter headers) to its original topic, with `openorder-replay-count` one higher
//! than before and an `openorder-replay-history` header saying where it came from, why
//! that failed, who replayed it and when. A record whose count would pass the cap is
//! refused. Every replay is recorded in the ledger topic `openorder.dlt-replays` (behind
//! the prefix), keyed by the dead letter's position; a dead letter already in the ledger
//! is not replayed again unless forced, so running the same replay twice by accident does
//! nothing.
//!
//! - **Edit and retry** ([`ReplayRequest::patch`]): one dead letter's value with a JSON
//!   merge patch applied ([`super::merge_patch`]), checked against its event's JSON Schema
//!   ([`contracts::schemas`]) before anything is sent: a value that breaks it is refused
//!   ([`InvalidEdit`], every error). The record carries `openorder-edited: true` and the
//!   patch's SHA-256; the ledger keeps the patch. The dead letter itself stays where it is.
//! - **Bulk by filter** ([`redrive`]): the dead letters of one topic or of all of them
//!   (DLTs, or parking lots) that a [`Filter`] matches, at most a limit, at most `rate`
//!   records a second; a dry run counts and lists exactly what would go.
//! - **Parking lots** (`<topic>.PARKED`): a replayed record that fails again goes there
//!   ([`super::write`]); they are listed apart ([`parked_topics`]) and replayed from like
//!   a DLT, deliberately.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use contracts::headers;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

pub use crate::dead_letters::filter::Filter;
use crate::dead_letters::merge_patch::merge_patch;
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

/// Most dead letters one replay or redrive request sends (or lists, in a dry run).
pub const MAX_PER_REQUEST: usize = 1_000;

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

    /// Where the record came from: the `kafka_dlt-original-topic` header, else the topic
    /// without `.DLT` (or `.PARKED`).
    pub fn original_topic(&self) -> String {
        self.text(headers::DLT_ORIGINAL_TOPIC).unwrap_or_else(|| {
            self.topic
                .strip_suffix(contracts::topics::DLT_SUFFIX)
                .or_else(|| self.topic.strip_suffix(contracts::topics::PARKED_SUFFIX))
                .unwrap_or(&self.topic)
                .to_string()
        })
    }

    /// The error class (`kafka_dlt-exception-fqcn`), if the dead letter says it.
    pub fn error_class(&self) -> Option<String> {
        self.text(headers::DLT_EXCEPTION_FQCN)
    }

    /// `transient` or `permanent` (`openorder-failure-kind`), if the dead letter says it.
    pub fn failure_kind(&self) -> Option<String> {
        self.text(headers::FAILURE_KIND)
    }

    /// Is this a parking-lot record (of a `<topic>.PARKED`)?
    pub fn is_parked(&self) -> bool {
        self.topic.ends_with(contracts::topics::PARKED_SUFFIX)
    }

    /// The replays the record went through before it failed this time, oldest first (its
    /// `openorder-replay-history` headers; one that does not decode is left out).
    pub fn history(&self) -> Vec<Replayed> {
        self.headers
            .iter()
            .filter(|(k, _)| k == headers::REPLAY_HISTORY)
            .filter_map(|(_, v)| serde_json::from_slice(v.as_deref()?).ok())
            .collect()
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
            parked: self.is_parked(),
            error_class: self.error_class(),
            failure_kind: self.failure_kind(),
            history: self.history(),
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
// Deserialize: the console reads `GET /admin/dlt` into it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// A parking-lot record (`<topic>.PARKED`): it failed again after a replay.
    pub parked: bool,
    /// The error class alone (`kafka_dlt-exception-fqcn`), what `class` filters on.
    pub error_class: Option<String>,
    /// `transient` or `permanent`, as the consumer classified the failure (absent on dead
    /// letters written before it was recorded).
    pub failure_kind: Option<String>,
    /// The replays the record went through before it failed this time, oldest first.
    pub history: Vec<Replayed>,
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

/// One replay a record went through (an `openorder-replay-history` header).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    /// The dead letter it was replayed from, `topic/partition/offset`.
    pub from: String,
    /// Why that one had failed (`class: message`).
    pub error: String,
    /// How often it was tried then.
    pub attempts: Option<u32>,
    /// The `openorder-replay-count` it was replayed with.
    pub replay_count: u32,
    /// Who replayed it (`auto-redrive` for the automatic policy).
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// Was its value edited (a merge patch applied)?
    #[serde(default)]
    pub edited: bool,
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
    topics_ending(args, contracts::topics::DLT_SUFFIX)
}

/// Every parking-lot (`.PARKED`) topic of this deployment (behind its prefix).
pub fn parked_topics(args: &BrokerArgs) -> anyhow::Result<Vec<String>> {
    topics_ending(args, contracts::topics::PARKED_SUFFIX)
}

/// Every topic of this deployment (behind its prefix) whose name ends with `suffix`.
fn topics_ending(args: &BrokerArgs, suffix: &str) -> anyhow::Result<Vec<String>> {
    let consumer = reader(args)?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .context("Failed to read the broker's topic list")?;
    let prefix = args.topics().prefix().to_string();
    let mut topics: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|t| t.starts_with(&prefix) && t.ends_with(suffix))
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
    ends_in_own(args, topic, contracts::topics::DLT_SUFFIX)
}

/// Is `topic` a parking-lot topic of this deployment (behind its prefix, ending `.PARKED`)?
pub fn is_parked_topic(args: &BrokerArgs, topic: &str) -> bool {
    ends_in_own(args, topic, contracts::topics::PARKED_SUFFIX)
}

/// Can dead letters be read and replayed from `topic`: a DLT or a parking lot of this
/// deployment?
pub fn is_replayable_topic(args: &BrokerArgs, topic: &str) -> bool {
    is_dead_letter_topic(args, topic) || is_parked_topic(args, topic)
}

fn ends_in_own(args: &BrokerArgs, topic: &str, suffix: &str) -> bool {
    let topics = args.topics();
    topic.starts_with(topics.prefix())
        && topic.ends_with(suffix)
        && topic.len() > topics.prefix().len() + suffix.len()
}

/// [`list`]'s dead letters (at most `max`) as summaries, each with how often the ledger
/// says it was replayed (blocking).
pub fn summaries(
    args: &BrokerArgs,
    topic: Option<&str>,
    max: usize,
) -> anyhow::Result<Vec<Summary>> {
    summaries_of(args, &Listing::of(topic, max))
}

/// Which dead letters a list shows.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// One topic (a DLT or a parking lot); None: every DLT, or every parking lot.
    pub topic: Option<String>,
    /// Every parking lot rather than every DLT (when no topic is named).
    pub parked: bool,
    pub filter: Filter,
    /// Most dead letters listed.
    pub max: usize,
}

impl Listing {
    /// `topic` (or every DLT), at most `max`, unfiltered.
    pub fn of(topic: Option<&str>, max: usize) -> Self {
        Self {
            topic: topic.map(str::to_string),
            max,
            ..Default::default()
        }
    }

    /// The topics it reads (blocking).
    fn topics(&self, args: &BrokerArgs) -> anyhow::Result<Vec<String>> {
        match &self.topic {
            Some(t) => Ok(vec![t.clone()]),
            None if self.parked => parked_topics(args),
            None => dlt_topics(args),
        }
    }
}

/// The dead letters `listing` names, in topic order, those its filter matches, at most
/// its `max` (blocking). Unfiltered, only that many are read.
pub fn listed(args: &BrokerArgs, listing: &Listing) -> anyhow::Result<Vec<Record>> {
    let topics = args.topics();
    let mut out = Vec::new();
    for t in listing.topics(args)? {
        let room = listing.max.saturating_sub(out.len());
        if room == 0 {
            break;
        }
        if listing.filter.is_empty() {
            out.extend(read_at_most(args, &t, room)?);
        } else {
            out.extend(
                read_all(args, &t)?
                    .into_iter()
                    .filter(|d| listing.filter.matches(d, &topics))
                    .take(room),
            );
        }
    }
    Ok(out)
}

/// [`listed`]'s dead letters as summaries, each with how often the ledger says it was
/// replayed (blocking).
pub fn summaries_of(args: &BrokerArgs, listing: &Listing) -> anyhow::Result<Vec<Summary>> {
    let letters = listed(args, listing)?;
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
pub(crate) fn replays_by_position(args: &BrokerArgs) -> anyhow::Result<HashMap<String, u32>> {
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
    /// A JSON merge patch (RFC 7396) to apply to the value before it is sent: one dead
    /// letter only ([`Selection::Position`]), and the edited value must pass its event's
    /// JSON Schema ([`InvalidEdit`] otherwise, and nothing is sent).
    pub patch: Option<serde_json::Value>,
    /// Most records sent a second (None: as fast as the broker takes them).
    pub rate: Option<f64>,
}

/// What happened to one selected dead letter.
// Deserialize: the console reads `POST /admin/dlt/replay`'s answer into it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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
    /// Sent (or, in a dry run, would be sent) with its value edited by a patch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edited: bool,
}

/// An edit refused: the patched value breaks its event's schema (each error: a JSON
/// pointer into the value, and what is wrong), or cannot be checked or sent at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidEdit {
    /// What is wrong as a whole.
    pub reason: String,
    /// `(pointer into the edited value, message)`, one per error.
    pub errors: Vec<(String, String)>,
}

impl std::fmt::Display for InvalidEdit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.reason)?;
        for (pointer, message) in &self.errors {
            let pointer = if pointer.is_empty() {
                "/"
            } else {
                pointer.as_str()
            };
            write!(f, "; {pointer}: {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidEdit {}

/// A dead letter's value as an edit makes it.
#[derive(Clone, Debug)]
pub struct Edit {
    /// The patch as asked (for the ledger).
    pub patch: serde_json::Value,
    /// The edited value, as sent.
    pub value: Vec<u8>,
    /// SHA-256 of the patch's JSON text, lower-case hex (`openorder-patch-sha256`).
    pub patch_sha256: String,
}

/// `letter`'s value with `patch` applied (RFC 7396), checked against the JSON Schema of
/// its original topic's event ([`contracts::schemas`]): refused when the dead letter has no
/// value, when the contract has no schema for that topic, when the result breaks the
/// schema (every error listed), or when the patch changes `orderId` (the record's key) or
/// `eventId` (its `event-id` header). A value that was not JSON is patched as `null` (an
/// object patch then gives the whole new value).
pub fn edit(
    letter: &Record,
    topics: &contracts::Topics,
    patch: &serde_json::Value,
) -> Result<Edit, InvalidEdit> {
    let refuse = |reason: String| InvalidEdit {
        reason,
        errors: Vec::new(),
    };
    if letter.value_omitted().is_some() {
        return Err(refuse(format!(
            "{} was written without its value (too large): there is nothing to edit",
            letter.position()
        )));
    }
    let original: serde_json::Value = letter
        .payload
        .as_deref()
        .and_then(|v| serde_json::from_slice(v).ok())
        .unwrap_or(serde_json::Value::Null);
    let mut value = original.clone();
    merge_patch(&mut value, patch);
    let event = topics.unprefixed(&letter.original_topic()).to_string();
    let Some(schema_errors) = contracts::schemas::validate(&event, &value) else {
        return Err(refuse(format!(
            "the contract has no JSON Schema for {event}: an edited value could not be checked, so none is sent"
        )));
    };
    let mut errors: Vec<(String, String)> = schema_errors
        .into_iter()
        .map(|e| (e.pointer, e.message))
        .collect();
    for (field, what) in [
        ("orderId", "the record's key"),
        ("eventId", "its event-id header"),
    ] {
        if let Some(before) = original.get(field) {
            if value.get(field) != Some(before) {
                errors.push((
                    format!("/{field}"),
                    format!("a patch may not change {field} ({what}): it was {before}"),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(InvalidEdit {
            reason: format!("the edited value breaks the {event} contract"),
            errors,
        });
    }
    let patch_text = patch.to_string();
    Ok(Edit {
        patch: patch.clone(),
        value: value.to_string().into_bytes(),
        patch_sha256: store::dedupe::body_hash(Some(patch_text.as_bytes())),
    })
}

/// Replays the selected dead letters (see the module header). Blocking reads, async produce.
pub async fn replay(
    args: &KafkaArgs,
    request: &ReplayRequest,
) -> anyhow::Result<Vec<ReplayResult>> {
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
        .take(MAX_PER_REQUEST)
        .collect();
    if let Selection::Position { partition, offset } = request.selection {
        anyhow::ensure!(
            !selected.is_empty(),
            "no dead letter at {}/{partition}/{offset}",
            request.topic
        );
    }
    let edited = match &request.patch {
        None => None,
        Some(patch) => {
            anyhow::ensure!(
                matches!(request.selection, Selection::Position { .. }),
                "a patch edits one dead letter: select it by partition and offset"
            );
            let letter: &Record = selected.first().expect("ensured above");
            Some(edit(letter, &args.topics(), patch).map_err(anyhow::Error::new)?)
        }
    };
    let how = Sending {
        dry_run: request.dry_run,
        force: request.force,
        max_replays: request.max_replays,
        rate: request.rate,
        by: &request.by,
        edit: edited.as_ref(),
    };
    send_all(args, &selected, &done, &how).await
}

/// Which dead letters a bulk redrive takes, and how it sends them.
#[derive(Clone, Debug)]
pub struct RedriveRequest {
    /// One topic (a DLT, or a parking lot); None: every DLT, or every parking lot with
    /// `parked`.
    pub topic: Option<String>,
    pub parked: bool,
    pub filter: Filter,
    /// Count and list what would go; send nothing.
    pub dry_run: bool,
    /// Replay even dead letters the ledger says were replayed already.
    pub force: bool,
    /// Largest `openorder-replay-count` a replayed record may carry.
    pub max_replays: u32,
    /// Most records sent a second (None: as fast as the broker takes them).
    pub rate: Option<f64>,
    /// Most dead letters taken (at most [`MAX_PER_REQUEST`]); the rest of what matched is
    /// counted, not taken.
    pub limit: usize,
    /// Who asked (for the ledger).
    pub by: String,
}

/// What a bulk redrive did (or, dry, would do).
// Deserialize: the console reads `POST /admin/dlt/redrive`'s answer into it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedriveReport {
    pub dry_run: bool,
    /// Dead letters the filter matched.
    pub matched: usize,
    /// Of those, the ones taken (at most the limit), each with its outcome in `results`.
    pub selected: usize,
    /// Sent (0 in a dry run).
    pub replayed: usize,
    /// That a dry run would send (0 otherwise): its `would-replay` results.
    pub would_replay: usize,
    /// More matched than the limit took.
    pub truncated: bool,
    /// How long the redrive took, reading included (ms).
    pub elapsed_ms: u64,
    pub results: Vec<ReplayResult>,
}

/// Replays the dead letters `request`'s filter matches (see the module header). Blocking
/// reads, async produce.
pub async fn redrive(args: &KafkaArgs, request: &RedriveRequest) -> anyhow::Result<RedriveReport> {
    let started = std::time::Instant::now();
    let listing = Listing {
        topic: request.topic.clone(),
        parked: request.parked,
        filter: request.filter.clone(),
        max: usize::MAX,
    };
    let (letters, done) = {
        let args = args.broker.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let letters = listed(&args, &listing)?;
            let done = replays_by_position(&args)?;
            Ok((letters, done))
        })
        .await
        .context("reader task panicked")??
    };
    let limit = request.limit.min(MAX_PER_REQUEST);
    let selected: Vec<&Record> = letters.iter().take(limit).collect();
    let how = Sending {
        dry_run: request.dry_run,
        force: request.force,
        max_replays: request.max_replays,
        rate: request.rate,
        by: &request.by,
        edit: None,
    };
    let results = send_all(args, &selected, &done, &how).await?;
    let replayed = results.iter().filter(|r| r.outcome == "replayed").count();
    let would_replay = results
        .iter()
        .filter(|r| r.outcome == "would-replay")
        .count();
    Ok(RedriveReport {
        dry_run: request.dry_run,
        matched: letters.len(),
        selected: selected.len(),
        replayed,
        would_replay,
        truncated: letters.len() > selected.len(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        results,
    })
}

/// How the selected dead letters are sent.
pub(crate) struct Sending<'a> {
    pub dry_run: bool,
    pub force: bool,
    pub max_replays: u32,
    /// Records a second, at most.
    pub rate: Option<f64>,
    pub by: &'a str,
    /// The edit of the one selected dead letter.
    pub edit: Option<&'a Edit>,
}

/// Sends `letters` (each unless the ledger `done` has it, its cap is passed or it has no
/// value), each recorded in the ledger, paced to `how.rate`: the n-th record sent goes no
/// sooner than (n − 1) / rate seconds after the first.
pub(crate) async fn send_all(
    args: &KafkaArgs,
    letters: &[&Record],
    done: &HashMap<String, u32>,
    how: &Sending<'_>,
) -> anyhow::Result<Vec<ReplayResult>> {
    let ledger_topic = args.topics().group(LEDGER);
    if !how.dry_run && !letters.is_empty() {
        kafka_clients::ensure_topics(
            args,
            std::slice::from_ref(&ledger_topic),
            &Default::default(),
        )
        .await?;
    }
    let producer = kafka_clients::producer(args, "openorder-dlt-replay")?;
    let pace = how
        .rate
        .and_then(|r| Duration::try_from_secs_f64(1.0 / r).ok());
    let start = tokio::time::Instant::now();
    let mut sent: u32 = 0;
    let mut results = Vec::new();
    for letter in letters {
        let count = letter.replay_count() + 1;
        let mut result = ReplayResult {
            position: letter.position(),
            order_id: letter.order_id(),
            target_topic: letter.original_topic(),
            replay_count: count,
            outcome: String::new(),
            edited: how.edit.is_some(),
        };
        result.outcome = if letter.value_omitted().is_some() {
            "value-omitted".into()
        } else if done.contains_key(&letter.position()) && !how.force {
            "already-replayed".into()
        } else if count > how.max_replays {
            "over-cap".into()
        } else if how.dry_run {
            "would-replay".into()
        } else {
            if let Some(pace) = pace {
                tokio::time::sleep_until(start + pace * sent).await;
            }
            let step = Replayed {
                from: letter.position(),
                error: letter.dead_letter_error(),
                attempts: letter.attempts(),
                replay_count: count,
                by: how.by.to_string(),
                at: telemetry::now_text(),
                edited: how.edit.is_some(),
            };
            publish(
                &producer,
                letter,
                &result.target_topic,
                count,
                how.edit,
                &step,
            )
            .await?;
            record(&producer, &ledger_topic, letter, &result, &step, how.edit).await?;
            sent += 1;
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
    edit: Option<&Edit>,
    step: &Replayed,
) -> anyhow::Result<()> {
    let count = count.to_string();
    let step = serde_json::to_string(step)?;
    let trace = replay_context(letter);
    let mut hs = OwnedHeaders::new();
    for (k, v) in &letter.headers {
        if k.starts_with("kafka_dlt-")
            || k.starts_with("openorder-dlt-")
            || k == headers::ATTEMPTS
            || k == headers::REPLAY_COUNT
            || k == headers::FAILURE_KIND
        {
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
    hs = hs
        .insert(Header {
            key: headers::REPLAY_COUNT,
            value: Some(count.as_bytes()),
        })
        .insert(Header {
            key: headers::REPLAY_HISTORY,
            value: Some(step.as_bytes()),
        });
    if let Some(edit) = edit {
        hs = hs
            .insert(Header {
                key: headers::EDITED,
                value: Some("true".as_bytes()),
            })
            .insert(Header {
                key: headers::PATCH_SHA256,
                value: Some(edit.patch_sha256.as_bytes()),
            });
    }
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
    let value = match edit {
        Some(edit) => Some(edit.value.as_slice()),
        None => letter.payload.as_deref(),
    };
    if let Some(value) = value {
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
    step: &Replayed,
    edit: Option<&Edit>,
) -> anyhow::Result<()> {
    let mut entry = serde_json::json!({
        "position": result.position,
        "orderId": result.order_id,
        "targetTopic": result.target_topic,
        "replayCount": result.replay_count,
        "by": step.by,
        "at": step.at,
        "edited": edit.is_some(),
    });
    if let Some(edit) = edit {
        entry["patch"] = edit.patch.clone();
        entry["patchSha256"] = serde_json::json!(edit.patch_sha256);
    }
    let entry = entry.to_string();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answers_of_the_dead_letter_api_read_back_as_they_were_written() {
        let summary = Summary {
            topic: "order.created.DLT".into(),
            partition: 0,
            offset: 7,
            key: Some("12".into()),
            order_id: Some(12),
            error: "Boom: no".into(),
            attempts: Some(3),
            replay_count: 0,
            replayed: 1,
            parked: false,
            error_class: Some("Boom".into()),
            failure_kind: None,
            history: vec![Replayed {
                from: "order.created.DLT/0/3".into(),
                error: "Boom: no".into(),
                attempts: None,
                replay_count: 1,
                by: "console:ops".into(),
                at: "2026-01-01T10:00:00.000Z".into(),
                edited: true,
            }],
            value_omitted: None,
            original_value_bytes: None,
            original_topic: "order.created".into(),
            original_partition: Some(0),
            original_offset: None,
            consumer_group: None,
            timestamp_ms: Some(1_767_261_600_000),
        };
        let json = serde_json::to_string(&summary).unwrap();
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);

        // `edited` is left out when false, and reads back as false.
        let result = ReplayResult {
            position: "order.created.DLT/0/7".into(),
            order_id: None,
            target_topic: "order.created".into(),
            replay_count: 1,
            outcome: "would-replay".into(),
            edited: false,
        };
        let json = serde_json::to_string(&result).unwrap();
        assert!(!json.contains("edited"), "{json}");
        assert_eq!(serde_json::from_str::<ReplayResult>(&json).unwrap(), result);

        let report = RedriveReport {
            dry_run: true,
            matched: 2,
            selected: 1,
            replayed: 0,
            would_replay: 1,
            truncated: true,
            elapsed_ms: 12,
            results: vec![result],
        };
        let json = serde_json::to_string(&report).unwrap();
        let back: RedriveReport = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
