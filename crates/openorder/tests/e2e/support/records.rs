//! Records the tests write to the broker as another producer would (raw, again, in one
//! batch, on the partition the services would choose) and read back from a topic, without
//! a consumer group: until some are found, up to a later record, or to the topic's end.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::{java_partition, Stack};

impl Stack {
    /// Produces a raw record, as a misbehaving or duplicating producer would; returns where
    /// it went (partition, offset).
    pub async fn produce_raw(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> (i32, i64) {
        self.produce_with(topic, Some(key), payload, headers, &[])
            .await
    }

    /// Produces `record` (as read back) again to `topic` under `key`, headers and all: a
    /// redelivery or a duplicate publish.
    pub async fn produce_again(&self, topic: &str, key: &str, record: &DltRecord) {
        let headers: Vec<(String, String)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.produce_raw(topic, key, &record.payload, &headers)
            .await;
    }

    /// Produces one record, with or without a key, with extra producer settings (e.g. a
    /// larger `message.max.bytes`, as a Java client configured for large records has);
    /// returns where it went (partition, offset).
    pub async fn produce_with(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        headers: &[(&str, &str)],
        settings: &[(&str, &str)],
    ) -> (i32, i64) {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.broker.bootstrap);
        for (k, v) in settings {
            config.set(*k, *v);
        }
        let producer: FutureProducer = config.create().unwrap();
        let mut hs = OwnedHeaders::new();
        for (k, v) in headers {
            hs = hs.insert(rdkafka::message::Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut record = FutureRecord::<str, [u8]>::to(topic)
            .payload(payload)
            .headers(hs);
        if let Some(key) = key {
            record = record.key(key);
        }
        let delivered = producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("record produced");
        (delivered.partition, delivered.offset)
    }

    /// Produces `records` (key, value) to one partition of `topic` in one producer batch,
    /// so that a consumer fetches them together.
    pub async fn produce_raw_together(
        &self,
        topic: &str,
        partition: i32,
        records: &[(String, Vec<u8>)],
    ) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.broker.bootstrap)
            .set("linger.ms", "200")
            .create()
            .unwrap();
        let sends = records.iter().map(|(key, payload)| {
            producer.send(
                FutureRecord::to(topic)
                    .partition(partition)
                    .key(key)
                    .payload(payload),
                Duration::from_secs(10),
            )
        });
        for sent in futures_util::future::join_all(sends).await {
            sent.expect("record produced");
        }
    }

    /// Produces one record keyed `key` on the partition the services' producers (and
    /// Java's) put that key on ([`platform::kafka::PARTITIONER`]), so that it shares a
    /// partition, in order, with the records of [`Stack::order_id_beside`] the key; returns
    /// where it went (partition, offset).
    pub async fn produce_keyed(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> (i32, i64) {
        self.produce_with(
            topic,
            Some(key),
            payload,
            headers,
            &[("partitioner", platform::kafka::PARTITIONER)],
        )
        .await
    }

    /// The partition the services' producers put `key` on, in this stack's topics.
    pub fn partition_of(&self, key: &str) -> i32 {
        java_partition(key.as_bytes(), self.kafka.topic_partitions)
    }

    /// Waits until `topic` holds a record whose key is `key`; returns its headers and value.
    pub async fn wait_record(&self, topic: &str, key: &str) -> DltRecord {
        let records = self
            .records_with_key(topic, key, Duration::from_secs(60), 1)
            .await;
        records
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no record with key {key} on {topic} in 60 s"))
    }

    /// Reads `topic` from the beginning (no consumer group) until `want` records with
    /// `key` were seen or `timeout` passed.
    pub async fn records_with_key(
        &self,
        topic: &str,
        key: &str,
        timeout: Duration,
        want: usize,
    ) -> Vec<DltRecord> {
        self.read_keyed(topic, key, timeout, Stop::Found(want))
            .await
    }

    /// The records of `topic` keyed `key` that come before the first one keyed `sentinel`
    /// (the key of a later record on the same partition, e.g. a sentinel order's id after
    /// [`Stack::decision_sentinel`]): every one there is, without a reading window. Fails
    /// if the sentinel's record is not there within 60 s.
    pub async fn records_with_key_before(
        &self,
        topic: &str,
        key: &str,
        sentinel: &str,
    ) -> Vec<DltRecord> {
        let until = Stop::Key(sentinel.to_string());
        self.read_keyed(topic, key, Duration::from_secs(60), until)
            .await
    }

    /// Every record of `topic` keyed `key` that the topic holds when the read begins,
    /// without a reading window: each partition is read to the end the broker reports
    /// (librdkafka's end-of-partition event). For records written before something the test
    /// waited for (a commit past a sentinel, an empty outbox). Fails if an end is not
    /// reached within 60 s.
    pub async fn records_with_key_to_end(&self, topic: &str, key: &str) -> Vec<DltRecord> {
        self.read_keyed(topic, key, Duration::from_secs(60), Stop::End)
            .await
    }

    /// Reads `topic` from the beginning (no consumer group) until `stop` or `timeout`;
    /// returns the records keyed `key`. A stop at a key or at the end must be reached.
    async fn read_keyed(
        &self,
        topic: &str,
        key: &str,
        timeout: Duration,
        stop: Stop,
    ) -> Vec<DltRecord> {
        let bootstrap = self.broker.bootstrap.clone();
        let (topic_name, key) = (topic.to_string(), key.to_string());
        let must_reach = !matches!(stop, Stop::Found(_));
        let said = format!("{stop:?}");
        let (found, reached) = tokio::task::spawn_blocking(move || {
            read_blocking(&bootstrap, &topic_name, &key, timeout, &stop)
        })
        .await
        .unwrap();
        assert!(
            reached || !must_reach,
            "{topic} not read to {said} in {timeout:?}"
        );
        found
    }
}

/// Where a read of a topic stops (or at its time bound).
#[derive(Debug)]
enum Stop {
    /// Once this many records with the key were seen.
    Found(usize),
    /// At the first record with this key.
    Key(String),
    /// Once every partition was read to its end.
    End,
}

/// [`Stack::read_keyed`]'s reading, on a blocking thread: the records keyed `key`, and
/// whether `stop` was reached within `timeout`.
fn read_blocking(
    bootstrap: &str,
    topic: &str,
    key: &str,
    timeout: Duration,
    stop: &Stop,
) -> (Vec<DltRecord>, bool) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "openorder-test-reader")
        .set("enable.auto.commit", "false");
    if let Stop::End = stop {
        config.set("enable.partition.eof", "true");
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    let partitions = tpl.count();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + timeout;
    let mut found = Vec::new();
    let mut ended = HashSet::new();
    while std::time::Instant::now() < deadline {
        if let Stop::Found(want) = stop {
            if found.len() >= *want {
                return (found, true);
            }
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                if let Stop::Key(until) = stop {
                    if m.key() == Some(until.as_bytes()) {
                        return (found, true);
                    }
                }
                if m.key() == Some(key.as_bytes()) {
                    found.push(DltRecord::of(&m));
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ended.insert(partition);
                if ended.len() == partitions {
                    return (found, true);
                }
            }
            _ => {}
        }
    }
    (found, false)
}

/// A record read back from a topic.
pub struct DltRecord {
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
    /// Where it was read.
    pub partition: i32,
    pub offset: i64,
}

impl DltRecord {
    /// The record `m` as read.
    fn of(m: &BorrowedMessage<'_>) -> Self {
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            headers,
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            partition: m.partition(),
            offset: m.offset(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The consumer group that dead-lettered it (`kafka_dlt-original-consumer-group`; ""
    /// if none is named).
    pub fn original_group(&self) -> String {
        self.header_text(contracts::headers::DLT_ORIGINAL_CONSUMER_GROUP)
            .unwrap_or_default()
    }

    pub fn header_text(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// The groups that dead-lettered `dead` ([`DltRecord::original_group`]), sorted.
pub fn groups_of(dead: &[DltRecord]) -> Vec<String> {
    let mut groups: Vec<String> = dead.iter().map(DltRecord::original_group).collect();
    groups.sort();
    groups
}
