//! The reads a reader makes: the topics and their watermarks, ranges of records, a page as
//! a [`Browse`] asks, and every record of one key.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use platform::record::Record;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{
    Browse, From, Page, PartitionInfo, RecordView, TopicInfo, MAX_PAGE, MAX_SCAN, READ_FOR,
};

pub(super) fn topics_of(consumer: &BaseConsumer, prefix: &str) -> anyhow::Result<Vec<TopicInfo>> {
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .context("Failed to read the cluster's metadata")?;
    let mut out = Vec::new();
    for t in metadata.topics() {
        if !t.name().starts_with(prefix) || t.name().starts_with("__") || t.error().is_some() {
            continue;
        }
        out.push(info(
            consumer,
            t.name(),
            t.partitions().iter().map(|p| p.id()),
        )?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(super) fn topic_of(consumer: &BaseConsumer, name: &str) -> anyhow::Result<Option<TopicInfo>> {
    let metadata = consumer
        .fetch_metadata(Some(name), Duration::from_secs(10))
        .with_context(|| format!("Failed to read the metadata of {name}"))?;
    match metadata.topics().first() {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(Some(info(
            consumer,
            name,
            t.partitions().iter().map(|p| p.id()),
        )?)),
        _ => Ok(None),
    }
}

fn info(
    consumer: &BaseConsumer,
    name: &str,
    partitions: impl Iterator<Item = i32>,
) -> anyhow::Result<TopicInfo> {
    let mut out = Vec::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(name, partition, Duration::from_secs(5))
            .with_context(|| format!("Failed to read the watermarks of {name}[{partition}]"))?;
        out.push(PartitionInfo {
            partition,
            low,
            high,
        });
    }
    out.sort_by_key(|p| p.partition);
    Ok(TopicInfo {
        name: name.to_string(),
        records: out.iter().map(|p| (p.high - p.low).max(0)).sum(),
        partitions: out,
    })
}

/// Stops a reader's fetching when a read ends, however it ends.
struct Unassign<'a>(&'a BaseConsumer);

impl Drop for Unassign<'_> {
    fn drop(&mut self) {
        let _ = self.0.unassign();
    }
}

/// Reads each `(partition, from, until)` of `topic` forward, keeping what `keep` keeps,
/// until each partition reaches `until`, `want` records are kept, or [`READ_FOR`] passes.
pub(super) fn read_ranges(
    consumer: &BaseConsumer,
    topic: &str,
    ranges: &[(i32, i64, i64)],
    want: usize,
    keep: &dyn Fn(&Record) -> bool,
) -> anyhow::Result<(Vec<Record>, u64, bool)> {
    let _unassign = Unassign(consumer);
    let mut tpl = TopicPartitionList::new();
    let mut open: HashMap<i32, (i64, i64)> = HashMap::new();
    for &(partition, from, until) in ranges {
        if from < until {
            tpl.add_partition_offset(topic, partition, Offset::Offset(from))?;
            open.insert(partition, (from, until));
        }
    }
    if open.is_empty() {
        return Ok((Vec::new(), 0, false));
    }
    consumer
        .assign(&tpl)
        .with_context(|| format!("Failed to read {topic}"))?;
    let deadline = Instant::now() + READ_FOR;
    let (mut kept, mut scanned) = (Vec::new(), 0u64);
    while !open.is_empty() && kept.len() < want {
        if Instant::now() >= deadline {
            return Ok((kept, scanned, true));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                use rdkafka::Message;
                let Some(&(from, until)) = open.get(&m.partition()) else {
                    continue;
                };
                if m.offset() < from {
                    // Left from the reader's previous use.
                    continue;
                }
                if m.offset() >= until {
                    open.remove(&m.partition());
                    continue;
                }
                scanned += 1;
                let record = Record::from_message(&m);
                if keep(&record) {
                    kept.push(record);
                }
                if m.offset() + 1 >= until {
                    open.remove(&m.partition());
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(err)) => return Err(err).with_context(|| format!("Failed to read {topic}")),
            None => {}
        }
    }
    let cut_short = !open.is_empty() && kept.len() < want;
    Ok((kept, scanned, cut_short))
}

pub(super) fn browse(
    consumer: &BaseConsumer,
    info: &TopicInfo,
    query: &Browse,
) -> anyhow::Result<Page> {
    let topic = info.name.as_str();
    let limit = query.limit.clamp(1, MAX_PAGE);
    let parts: Vec<&PartitionInfo> = info
        .partitions
        .iter()
        .filter(|p| query.partition.is_none_or(|want| want == p.partition))
        .collect();
    // How far back (or on) each partition is read.
    let span = if query.filter.is_empty() {
        limit as i64
    } else {
        MAX_SCAN
    };
    let times: BTreeMap<i32, i64> = match query.from {
        From::Time(at) => offsets_for_time(consumer, topic, &parts, at)?,
        _ => BTreeMap::new(),
    };
    let ranges: Vec<(i32, i64, i64)> = parts
        .iter()
        .map(|p| {
            let from = match query.from {
                From::Newest => (p.high - span).max(p.low),
                From::Offset(o) => o.clamp(p.low, p.high),
                From::Time(_) => times.get(&p.partition).copied().unwrap_or(p.high),
            };
            let until = match query.from {
                From::Newest => p.high,
                _ => (from + span).min(p.high),
            };
            (p.partition, from, until)
        })
        .collect();
    let want = match query.from {
        // Every partition's newest, then the newest of them all.
        From::Newest => usize::MAX,
        _ => limit,
    };
    let filter = &query.filter;
    let (mut records, scanned, cut_short) =
        read_ranges(consumer, topic, &ranges, want, &|r| filter.matches(r))?;
    match query.from {
        From::Newest => {
            records.sort_by_key(|r| std::cmp::Reverse((r.timestamp, r.offset)));
            records.truncate(limit);
        }
        _ => {
            records.sort_by_key(|r| (r.timestamp, r.partition, r.offset));
            records.truncate(limit);
        }
    }
    Ok(Page {
        records: records.iter().map(RecordView::of).collect(),
        scanned,
        cut_short,
    })
}

fn offsets_for_time(
    consumer: &BaseConsumer,
    topic: &str,
    parts: &[&PartitionInfo],
    at: i64,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut tpl = TopicPartitionList::new();
    for p in parts {
        tpl.add_partition_offset(topic, p.partition, Offset::Offset(at))?;
    }
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(5))
        .with_context(|| format!("Failed to find the offsets of {topic} at {at}"))?;
    let mut out = BTreeMap::new();
    for e in found.elements() {
        let offset = match e.offset() {
            Offset::Offset(o) => o,
            // No record that late: the end.
            _ => parts
                .iter()
                .find(|p| p.partition == e.partition())
                .map_or(0, |p| p.high),
        };
        out.insert(e.partition(), offset);
    }
    Ok(out)
}

pub(super) fn by_key(
    consumer: &BaseConsumer,
    topics: &[TopicInfo],
    key: &str,
    since: Option<i64>,
) -> anyhow::Result<Page> {
    let (mut records, mut scanned, mut cut_short) = (Vec::new(), 0, false);
    for info in topics {
        let topic = info.name.as_str();
        let n = info.partitions.len() as i32;
        let partition = platform::kafka::partition_of(key.as_bytes(), n);
        let Some(p) = info
            .partitions
            .iter()
            .find(|p| p.partition == partition && p.high > p.low)
        else {
            continue;
        };
        // A broker that cannot look offsets up by time is read from its oldest record.
        let from = since
            .and_then(|at| offsets_for_time(consumer, topic, &[p], at).ok())
            .and_then(|found| found.get(&partition).copied())
            .unwrap_or(p.low)
            .max(p.low);
        let until = (from + MAX_SCAN).min(p.high);
        cut_short |= until < p.high;
        let (found, looked, cut) = read_ranges(
            consumer,
            topic,
            &[(partition, from, until)],
            usize::MAX,
            &|r| r.key.as_deref() == Some(key.as_bytes()),
        )?;
        records.extend(found);
        scanned += looked;
        cut_short |= cut;
    }
    records.sort_by_key(|r| (r.timestamp, r.offset));
    Ok(Page {
        records: records.iter().map(RecordView::of).collect(),
        scanned,
        cut_short,
    })
}
