//! The services' producers put a key on the partition a Java client (Spring Kafka, Kafka
//! Streams, the plain Java producer) puts it on: murmur2 of the key's bytes, made positive,
//! modulo the partition count.

use std::time::Duration;

use crate::support;
use crate::support::{BrokerKind, TestBroker};
use rdkafka::producer::FutureRecord;

/// (key, partition of 3, partition of 7), as Apache Kafka's Java client computes them:
/// `Utils.toPositive(Utils.murmur2(key.getBytes(UTF_8))) % n` with kafka-clients 4.1.1
/// (the jar `scripts/kafka.sh` fetches), run by a ten-line Java program on 2026-12-01.
/// librdkafka's default partitioner (CRC32) puts 3 of the first 4 elsewhere.
const JAVA_PARTITIONS: [(&str, i32, i32); 13] = [
    ("1", 0, 2),
    ("2", 2, 2),
    ("3", 2, 5),
    ("4", 1, 6),
    ("5", 0, 1),
    ("7", 0, 1),
    ("42", 1, 3),
    ("100", 0, 3),
    ("1000", 1, 3),
    ("12345", 2, 3),
    ("999999", 0, 2),
    ("order-7", 1, 1),
    ("ABC-001", 1, 5),
];

async fn keys_land_where_java_puts_them(kind: BrokerKind) {
    let Some(broker) = TestBroker::start(kind).await else {
        return;
    };
    let prefix = format!("p{}.", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut kafka = platform::kafka::KafkaArgs::with_defaults(&broker.bootstrap, &prefix);
    let producer = platform::kafka::producer(&kafka, "partitioning-test").unwrap();
    for (partitions, column) in [(3, 1), (7, 2)] {
        kafka.topic_partitions = partitions;
        let topic = format!("{prefix}keys-{partitions}");
        platform::kafka::ensure_topics(&kafka, std::slice::from_ref(&topic), &Default::default())
            .await
            .unwrap();
        for row in JAVA_PARTITIONS {
            let (key, expected) = (row.0, if column == 1 { row.1 } else { row.2 });
            let partition = producer
                .send(
                    FutureRecord::to(&topic).key(key).payload("{}"),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap()
                .partition;
            assert_eq!(
                partition, expected,
                "key {key:?} of {topic} ({partitions} partitions) went to {partition}, Java puts it on {expected}"
            );
        }
    }
}

#[test]
fn the_tests_own_murmur2_gives_javas_partitions() {
    for (key, of_3, of_7) in JAVA_PARTITIONS {
        assert_eq!(support::java_partition(key.as_bytes(), 3), of_3, "{key}");
        assert_eq!(support::java_partition(key.as_bytes(), 7), of_7, "{key}");
    }
}

#[tokio::test]
async fn keys_land_where_java_clients_put_them_on_tansu() {
    keys_land_where_java_puts_them(BrokerKind::Tansu).await;
}

#[tokio::test]
async fn keys_land_where_java_clients_put_them_on_apache_kafka() {
    keys_land_where_java_puts_them(BrokerKind::Kafka).await;
}
