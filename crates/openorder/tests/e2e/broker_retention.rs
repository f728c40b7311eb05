//! The embedded broker keeps a bounded log: it deletes what is older than a topic's
//! `retention.ms` (the services create their topics with one) or beyond its
//! `retention.bytes`, moves the low watermark, serves no offset below it, and gives the
//! space back, so that its file stops growing; a topic that sets nothing keeps the broker's
//! default.

use std::time::Duration;

use crate::support::TestBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// Made by a service (`ensure_topics`, `--topic-retention 6s`).
const TIMED: &str = "retention-timed";
/// `retention.ms=-1`, `retention.bytes` 100 KB.
const SIZED: &str = "retention-sized";
/// No retention setting: the broker's default (an hour here).
const PLAIN: &str = "retention-plain";

/// Sends `n` records of 1 KiB to partition 0 of `topic` and waits for every acknowledgement.
async fn fill(producer: &FutureProducer, topic: &str, n: usize, tag: &str) {
    let value = format!("{tag}:{}", "x".repeat(1024));
    let sends: Vec<_> = (0..n)
        .map(|i| {
            let key = format!("{tag}-{i}");
            let value = value.clone();
            async move {
                producer
                    .send(
                        FutureRecord::to(topic)
                            .partition(0)
                            .key(&key)
                            .payload(&value),
                        Duration::from_secs(30),
                    )
                    .await
                    .unwrap_or_else(|(err, _)| panic!("producing to {topic} failed: {err}"));
            }
        })
        .collect();
    futures_util::future::join_all(sends).await;
}

/// The low and high watermarks of partition 0 of `topic`.
async fn watermarks(bootstrap: &str, topic: &str) -> (i64, i64) {
    let bootstrap = bootstrap.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(10))
            .unwrap()
    })
    .await
    .unwrap()
}

/// Waits (at most 60 s) until the low watermark of `topic` reaches `low`; returns both.
async fn wait_low(bootstrap: &str, topic: &str, low: i64) -> (i64, i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let marks = watermarks(bootstrap, topic).await;
        if marks.0 >= low {
            return marks;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{topic}: the low watermark stayed at {} (high {}), short of {low}",
            marks.0,
            marks.1
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The offset and value of the first record a consumer reading from `offset` gets.
async fn first_from(bootstrap: &str, topic: &str, offset: i64) -> (i64, String) {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "retention-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let m = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
        .await
        .expect("a record within 20 s")
        .unwrap();
    let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
    (m.offset(), value)
}

/// The size of the broker's database and its write-ahead log.
fn disk_bytes(broker: &TestBroker) -> u64 {
    let dir = broker.data_dir().unwrap();
    ["broker.db", "broker.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_deletes_what_retention_lets_go_moves_the_low_watermark_and_stops_growing(
) {
    let broker = TestBroker::start_tansu_with_env(&[
        ("OPENORDER_BROKER_MAINTAIN_EVERY", "500ms"),
        ("OPENORDER_BROKER_RETENTION", "1h"),
    ])
    .await;
    let bootstrap = broker.bootstrap.clone();

    let mut args = platform::kafka::KafkaArgs::with_defaults(&bootstrap, "");
    args.topic_partitions = 1;
    args.topic_retention = Duration::from_secs(6);
    platform::kafka::ensure_topics(&args, &[TIMED.to_string()], &CancellationToken::new())
        .await
        .unwrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let sized = NewTopic::new(SIZED, 1, TopicReplication::Fixed(1))
        .set("retention.ms", "-1")
        .set("retention.bytes", "102400");
    let plain = NewTopic::new(PLAIN, 1, TopicReplication::Fixed(1));
    for result in admin
        .create_topics(&[sized, plain], &AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();

    // Beyond its newest 100 KB, a sized topic keeps nothing, however young.
    fill(&producer, SIZED, 500, "sized").await;
    let (low, high) = wait_low(&bootstrap, SIZED, 400).await;
    assert_eq!(high, 500);
    assert!(low <= 403, "kept about 100 KB: from {low} of {high}");

    // A topic that sets no retention keeps the broker's (an hour): written now, its records
    // are older than the timed topic's window when the maintenance passes below are seen
    // deleting that topic's records, and are checked after them.
    fill(&producer, PLAIN, 10, "plain").await;

    // Three windows of 6 s: each fills the timed topic with 3,000 records of 1 KiB, then
    // waits for retention to take them (a record sent after the wait is kept, for the 6 s
    // the checks below have before it goes too).
    let mut sizes = Vec::new();
    for window in 0..3 {
        fill(&producer, TIMED, 3_000, &format!("window{window}")).await;
        // The one wait on the clock: retention is by age, so the window's records must
        // grow older than 6 s, and the record sent next must not (no event marks that).
        tokio::time::sleep(Duration::from_secs(7)).await;
        fill(&producer, TIMED, 1, &format!("kept{window}")).await;
        let first_kept = 3_001 * (window + 1) - 1;
        let (low, high) = wait_low(&bootstrap, TIMED, first_kept).await;
        assert_eq!((low, high), (first_kept, first_kept + 1));
        // An offset no longer kept is not served: the reader gets the oldest record kept.
        let (offset, value) = first_from(&bootstrap, TIMED, 0).await;
        assert_eq!(offset, first_kept);
        assert!(value.starts_with(&format!("kept{window}:")), "{value:.20}");
        sizes.push(disk_bytes(&broker));
    }
    // 9 MB went through the timed topic; the files hold about one window of it (and the
    // write-ahead log, whose size depends on when it was last checkpointed): kept, the
    // three windows would make them three times the first.
    eprintln!("the broker's files after each window: {sizes:?} bytes");
    assert!(
        sizes[2] < 2 * sizes[0],
        "the broker's files grew across windows: {sizes:?} bytes"
    );

    // The plain topic's records, older than the timed window through every pass that
    // deleted the timed topic's: nothing went.
    assert_eq!(watermarks(&bootstrap, PLAIN).await, (0, 10));
}
