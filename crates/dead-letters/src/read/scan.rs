//! Reading dead-letter topics: which there are, every record of one (or the first so
//! many), one record by its position, and whether a topic is one of this deployment's.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use kafka_clients::BrokerArgs;
use messaging::record::Record;

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
