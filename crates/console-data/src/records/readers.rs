//! The Kafka readers the console keeps between requests, and what each read asks of one.

use std::sync::Mutex;

use anyhow::Context;
use platform::kafka::BrokerArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::reads;
use super::{Browse, Page, RecordView, TopicInfo};

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
        let result = reads::topics_of(&consumer, self.kafka.topics().prefix());
        self.give_back(consumer);
        result
    }

    /// One topic, if it exists.
    pub fn topic(&self, name: &str) -> anyhow::Result<Option<TopicInfo>> {
        let consumer = self.take()?;
        let result = reads::topic_of(&consumer, name);
        self.give_back(consumer);
        result
    }

    /// `topic` and a page of it as `query` asks (None: no such topic).
    pub fn browse(&self, topic: &str, query: &Browse) -> anyhow::Result<Option<(TopicInfo, Page)>> {
        let consumer = self.take()?;
        let result = reads::topic_of(&consumer, topic).and_then(|info| match info {
            Some(info) => {
                let page = reads::browse(&consumer, &info, query)?;
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
        let result = reads::read_ranges(&consumer, topic, ranges, usize::MAX, &|_| true);
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
        let result = reads::by_key(&consumer, topics, key, since);
        self.give_back(consumer);
        result
    }
}
