//! Reading topics for people: every topic with its partitions and watermarks, a page of
//! records from the newest, an offset or a time (filtered by key, event type or text), and
//! every record of one key (an order's, on the one partition its key maps to). Blocking
//! (librdkafka), so called through [`crate::blocking`]; every read is bounded in records
//! scanned and in time, and its answer says when a bound cut it short.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use contracts::headers;
use platform::dead_letters::write::be_int;
use platform::kafka::BrokerArgs;
use platform::record::Record;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

/// Most records a page shows.
pub const MAX_PAGE: usize = 500;
/// Most records one read looks at per partition (a filter that matches little reads this
/// many at most, then says so).
pub const MAX_SCAN: i64 = 20_000;
/// Longest one read takes.
const READ_FOR: Duration = Duration::from_secs(5);
/// Most bytes of a value a page shows (the rest is cut, and says how much).
pub const MAX_VALUE_SHOWN: usize = 64 * 1024;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionInfo {
    pub partition: i32,
    /// The oldest offset kept (low watermark).
    pub low: i64,
    /// The next offset to be written (high watermark).
    pub high: i64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
    /// Records kept (high − low, added up).
    pub records: i64,
}

/// Readers kept between requests (a new one connects and fetches metadata first), at
/// most [`MAX_READERS`] at once: each is a librdkafka client with threads of its own, and
/// a crowd of viewers must not make hundreds of them (a request waits for a free reader,
/// at most [`READER_WAIT`]).
pub struct Readers {
    kafka: BrokerArgs,
    idle: Mutex<Vec<BaseConsumer>>,
    /// Readers in existence (idle or in use).
    made: Mutex<usize>,
    freed: std::sync::Condvar,
}

/// Most Kafka readers the console keeps or uses at once.
pub const MAX_READERS: usize = 8;
/// Longest a read waits for a free reader.
const READER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Readers {
    pub fn new(kafka: BrokerArgs) -> Self {
        Self {
            kafka,
            idle: Mutex::new(Vec::new()),
            made: Mutex::new(0),
            freed: std::sync::Condvar::new(),
        }
    }

    pub fn kafka(&self) -> &BrokerArgs {
        &self.kafka
    }

    fn take(&self) -> anyhow::Result<BaseConsumer> {
        let deadline = std::time::Instant::now() + READER_WAIT;
        let mut made = self.made.lock().expect("never poisoned");
        loop {
            if let Some(c) = self.idle.lock().expect("never poisoned").pop() {
                return Ok(c);
            }
            if *made < MAX_READERS {
                *made += 1;
                break;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            anyhow::ensure!(
                !left.is_zero(),
                "the console is busy: {MAX_READERS} reads of the brokers are running; retry shortly"
            );
            made = self
                .freed
                .wait_timeout(made, left)
                .expect("never poisoned")
                .0;
        }
        drop(made);
        let created = self.create();
        if created.is_err() {
            *self.made.lock().expect("never poisoned") -= 1;
            self.freed.notify_one();
        }
        created
    }

    fn create(&self) -> anyhow::Result<BaseConsumer> {
        let mut config = platform::kafka::base(&self.kafka, "openorder-console")?;
        config
            .set("group.id", "openorder-console")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // A page of records, not a stream: small fetches, and no fetch left waiting on
            // the broker for new records (a broker that answers a connection's requests in
            // turn would hold the next watermark or offset lookup behind it).
            .set("fetch.wait.max.ms", "10")
            // A page is 100 records or so: a broker asked for a megabyte a partition reads
            // (and the embedded one materialises) thousands. A record larger than this still
            // comes whole (brokers return at least one batch).
            .set("fetch.max.bytes", "1048576")
            .set("max.partition.fetch.bytes", "65536");
        for (k, v) in &self.kafka.kafka_options {
            config.set(k, v);
        }
        config.create().context("Failed to create a Kafka reader")
    }

    fn give_back(&self, consumer: BaseConsumer) {
        let _ = consumer.unassign();
        let mut made = self.made.lock().expect("never poisoned");
        let mut idle = self.idle.lock().expect("never poisoned");
        if idle.len() < 4 {
            idle.push(consumer);
        } else {
            *made -= 1;
            drop(idle);
            drop(made);
            drop(consumer);
        }
        self.freed.notify_one();
    }

    /// Every topic of this deployment (behind its prefix; none of the broker's own), by name.
    pub fn topics(&self) -> anyhow::Result<Vec<TopicInfo>> {
        let consumer = self.take()?;
        let result = topics_of(&consumer, self.kafka.topics().prefix());
        self.give_back(consumer);
        result
    }

    /// One topic, if it exists.
    pub fn topic(&self, name: &str) -> anyhow::Result<Option<TopicInfo>> {
        let consumer = self.take()?;
        let result = topic_of(&consumer, name);
        self.give_back(consumer);
        result
    }

    /// `topic` and a page of it as `query` asks (None: no such topic).
    pub fn browse(&self, topic: &str, query: &Browse) -> anyhow::Result<Option<(TopicInfo, Page)>> {
        let consumer = self.take()?;
        let result = topic_of(&consumer, topic).and_then(|info| match info {
            Some(info) => {
                let page = browse(&consumer, &info, query)?;
                Ok(Some((info, page)))
            }
            None => Ok(None),
        });
        self.give_back(consumer);
        result
    }

    /// Every record of `topic` in each `(partition, from, until)`, oldest first.
    pub fn ranges(
        &self,
        topic: &str,
        ranges: &[(i32, i64, i64)],
    ) -> anyhow::Result<Vec<RecordView>> {
        let consumer = self.take()?;
        let result = read_ranges(&consumer, topic, ranges, usize::MAX, &|_| true);
        self.give_back(consumer);
        let mut records = result?.0;
        records.sort_by_key(|r| (r.timestamp, r.partition, r.offset));
        Ok(records.iter().map(RecordView::of).collect())
    }

    /// Every record keyed `key` in each of `topics`, read from `since` (milliseconds since
    /// the epoch) on the partition the key maps to, oldest first.
    pub fn by_key(
        &self,
        topics: &[TopicInfo],
        key: &str,
        since: Option<i64>,
    ) -> anyhow::Result<Page> {
        let consumer = self.take()?;
        let result = by_key(&consumer, topics, key, since);
        self.give_back(consumer);
        result
    }
}

fn topics_of(consumer: &BaseConsumer, prefix: &str) -> anyhow::Result<Vec<TopicInfo>> {
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

fn topic_of(consumer: &BaseConsumer, name: &str) -> anyhow::Result<Option<TopicInfo>> {
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

/// Where a page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// The newest records (of each partition, or of the one asked for).
    Newest,
    /// This offset on, in each partition asked for.
    Offset(i64),
    /// Records written at or after this time (milliseconds since the epoch) on.
    Time(i64),
}

/// What a page shows.
#[derive(Clone, Debug)]
pub struct Browse {
    pub partition: Option<i32>,
    pub from: From,
    pub limit: usize,
    pub filter: Filter,
}

/// Records a page keeps; every part given must match.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// The key, exactly.
    pub key: Option<String>,
    /// The `event-type` header, exactly.
    pub event_type: Option<String>,
    /// Text anywhere in the key, the headers or the value.
    pub text: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.key.is_none() && self.event_type.is_none() && self.text.is_none()
    }

    fn matches(&self, r: &Record) -> bool {
        if let Some(key) = &self.key {
            if r.key.as_deref() != Some(key.as_bytes()) {
                return false;
            }
        }
        if let Some(t) = &self.event_type {
            if r.header(headers::EVENT_TYPE) != Some(t.as_str()) {
                return false;
            }
        }
        if let Some(text) = &self.text {
            let needle = text.as_bytes();
            let within = |hay: &[u8]| hay.windows(needle.len().max(1)).any(|w| w == needle);
            let in_headers = r
                .headers
                .iter()
                .any(|(k, v)| within(k.as_bytes()) || v.as_deref().is_some_and(within));
            if !(r.key.as_deref().is_some_and(within)
                || r.payload.as_deref().is_some_and(within)
                || in_headers)
            {
                return false;
            }
        }
        true
    }
}

/// A page of records and how it was read.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub records: Vec<RecordView>,
    /// Records looked at (a filter keeps fewer).
    pub scanned: u64,
    /// Whether a bound (records scanned, time) ended the read before it had seen every
    /// record it was asked to look at.
    pub cut_short: bool,
}

/// One record as a person reads it: headers decoded, value pretty-printed when JSON.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordView {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<String>,
    pub event_type: Option<String>,
    pub headers: Vec<HeaderView>,
    pub value: Value,
    /// The value's size in bytes.
    pub value_bytes: usize,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderView {
    pub name: String,
    /// Text, or the number a binary `kafka_dlt-*` integer holds, or hex of other bytes.
    pub value: String,
}

/// A value as shown.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", content = "text", rename_all = "camelCase")]
pub enum Value {
    None,
    /// Pretty-printed JSON.
    Json(String),
    /// UTF-8 text that is not JSON.
    Text(String),
    /// Bytes that are not text, as hex.
    Hex(String),
}

impl RecordView {
    pub fn of(r: &Record) -> Self {
        let headers = r
            .headers
            .iter()
            .map(|(name, v)| {
                let bytes = v.as_deref().unwrap_or_default();
                let value = match (
                    platform::dead_letters::read::BINARY_INT_HEADERS.contains(&name.as_str()),
                    be_int(bytes),
                ) {
                    (true, Some(n)) => n.to_string(),
                    _ => text_or_hex(bytes),
                };
                HeaderView {
                    name: name.clone(),
                    value,
                }
            })
            .collect();
        let payload = r.payload.as_deref();
        Self {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            timestamp_ms: r.timestamp,
            key: r.key_text(),
            event_type: r.header(headers::EVENT_TYPE).map(str::to_string),
            headers,
            value: payload.map_or(Value::None, shown),
            value_bytes: payload.map_or(0, <[u8]>::len),
        }
    }

    /// The record's value as JSON, when it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        match &self.value {
            Value::Json(text) => serde_json::from_str(text).ok(),
            _ => None,
        }
    }
}

fn text_or_hex(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
        {
            text.to_string()
        }
        _ => hex(bytes),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len().min(MAX_VALUE_SHOWN / 2) * 3);
    for (i, b) in bytes.iter().take(MAX_VALUE_SHOWN / 3).enumerate() {
        if i > 0 {
            out.push(if i % 16 == 0 { '\n' } else { ' ' });
        }
        let _ = write!(out, "{b:02x}");
    }
    if bytes.len() > MAX_VALUE_SHOWN / 3 {
        let _ = write!(out, "\n… {} more bytes", bytes.len() - MAX_VALUE_SHOWN / 3);
    }
    out
}

fn shown(bytes: &[u8]) -> Value {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let pretty = serde_json::to_string_pretty(&json).unwrap_or_default();
        return Value::Json(cut(pretty));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::Text(cut(text.to_string())),
        Err(_) => Value::Hex(hex(bytes)),
    }
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_VALUE_SHOWN {
        let mut at = MAX_VALUE_SHOWN;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let rest = text.len() - at;
        text.truncate(at);
        text.push_str(&format!("\n… {rest} more bytes"));
    }
    text
}

/// Reads each `(partition, from, until)` of `topic` forward, keeping what `keep` keeps,
/// until each partition reaches `until`, `want` records are kept, or [`READ_FOR`] passes.
/// Stops a reader's fetching when a read ends, however it ends.
struct Unassign<'a>(&'a BaseConsumer);

impl Drop for Unassign<'_> {
    fn drop(&mut self) {
        let _ = self.0.unassign();
    }
}

fn read_ranges(
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

fn browse(consumer: &BaseConsumer, info: &TopicInfo, query: &Browse) -> anyhow::Result<Page> {
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

fn by_key(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, payload: &[u8], headers: &[(&str, &[u8])]) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset: 7,
            timestamp: Some(1),
            key: Some(key.as_bytes().to_vec()),
            payload: Some(payload.to_vec()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_vec())))
                .collect(),
        }
    }

    #[test]
    fn a_dead_letters_binary_headers_show_as_numbers_and_its_text_as_text() {
        let r = record(
            "42",
            br#"{"orderId":42}"#,
            &[
                (headers::DLT_ORIGINAL_OFFSET, &1234i64.to_be_bytes()),
                (headers::DLT_ORIGINAL_PARTITION, &2i32.to_be_bytes()),
                (headers::DLT_EXCEPTION_MESSAGE, b"boom"),
                ("odd", &[0, 1, 2]),
            ],
        );
        let view = RecordView::of(&r);
        let value = |n: &str| {
            view.headers
                .iter()
                .find(|h| h.name == n)
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(value(headers::DLT_ORIGINAL_OFFSET), "1234");
        assert_eq!(value(headers::DLT_ORIGINAL_PARTITION), "2");
        assert_eq!(value(headers::DLT_EXCEPTION_MESSAGE), "boom");
        assert_eq!(value("odd"), "00 01 02");
        assert!(matches!(&view.value, Value::Json(t) if t.contains("\"orderId\": 42")));
    }

    #[test]
    fn a_value_that_is_not_json_shows_as_text_or_hex_and_a_large_one_is_cut() {
        assert!(matches!(shown(b"<script>"), Value::Text(t) if t == "<script>"));
        assert!(matches!(shown(&[0xff, 0xfe]), Value::Hex(t) if t == "ff fe"));
        let large = "x".repeat(MAX_VALUE_SHOWN + 10);
        match shown(large.as_bytes()) {
            Value::Text(t) => assert!(t.ends_with("… 10 more bytes"), "{}", &t[t.len() - 20..]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_filter_keeps_a_record_only_when_every_part_given_matches() {
        let r = record(
            "42",
            br#"{"sku":"ABC"}"#,
            &[(headers::EVENT_TYPE, b"OrderCreated")],
        );
        let f = |key: Option<&str>, event: Option<&str>, text: Option<&str>| Filter {
            key: key.map(Into::into),
            event_type: event.map(Into::into),
            text: text.map(Into::into),
        };
        assert!(f(None, None, None).matches(&r));
        assert!(f(Some("42"), Some("OrderCreated"), Some("ABC")).matches(&r));
        assert!(!f(Some("4"), None, None).matches(&r));
        assert!(!f(None, Some("OrderCancelled"), None).matches(&r));
        assert!(!f(None, None, Some("XYZ")).matches(&r));
        assert!(
            f(None, None, Some("Created")).matches(&r),
            "text in a header"
        );
    }
}
