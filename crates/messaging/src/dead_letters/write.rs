//! Writing a dead letter: the record's key, value and headers plus Spring Kafka's
//! `kafka_dlt-*` headers, to `<topic>.DLT`, on the original's partition when the DLT has
//! it (as Spring's `DeadLetterPublishingRecoverer` does), and never for ever.
//!
//! A record that was replayed before (`openorder-replay-count` above 0) and fails again
//! goes to its parking lot `<topic>.PARKED` instead, the same way
//! ([`Topics::dead_letter_topic_for`]): it is not replayed in a loop by a replay of all of
//! a DLT, and the DLT's readers do not act on the same order twice. It is replayed from
//! there only deliberately (or by the automatic redrive policy, up to its cap).
//!
//! A dead letter that would not fit in a record the producer may send
//! ([`kafka_clients::max_message_bytes`]) is written without its value, with
//! `openorder-dlt-value-omitted` saying why and `openorder-dlt-original-value-bytes` the
//! original's size; the original stays in its topic at the position the `kafka_dlt-original-*`
//! headers give. A send the broker refuses as too large is written that way too. Other
//! refusals (the DLT missing or not writable) are the operator's to fix: the writer keeps
//! trying, with a growing wait, and says why in the consumer's stall report.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use contracts::headers;
use contracts::Topics;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::record::Record;
use store::failure::HandleError;

/// Room kept for a record's framing (batch and record headers, varints) when estimating
/// whether a dead letter fits under the producer's limit.
const FRAMING_BYTES: usize = 1024;

/// How a dead-letter send ended.
pub enum Sent {
    /// Acknowledged by the broker; `value_omitted` when written without the value.
    Written { value_omitted: bool },
    /// Not written: the broker refused it or was unreachable, for this reason.
    Failed(String),
}

/// Writes dead letters for one consumer group.
pub struct DeadLetterWriter {
    pub producer: FutureProducer,
    pub group_id: String,
    /// Largest record the producer sends (`message.max.bytes`).
    pub max_message_bytes: usize,
    /// Partitions of each DLT, once read (a topic's partition count only grows).
    partitions: Mutex<HashMap<String, i32>>,
}

impl DeadLetterWriter {
    pub fn new(producer: FutureProducer, group_id: String, max_message_bytes: usize) -> Self {
        Self {
            producer,
            group_id,
            max_message_bytes,
            partitions: Mutex::new(HashMap::new()),
        }
    }

    /// One try at writing `record`'s dead letter, waiting at most `timeout` for the broker.
    pub async fn send(
        &self,
        record: &Record,
        error: &HandleError,
        attempts: u32,
        timeout: Duration,
    ) -> Sent {
        let topic = Topics::dead_letter_topic_for(&record.topic, record.replay_count());
        let partition = self.partition_for(&topic, record.partition).await;
        let full = dead_letter_headers(record, &self.group_id, error, attempts, None);
        let fits = record_size(record.key.as_deref(), record.payload.as_deref(), &full)
            + FRAMING_BYTES
            <= self.max_message_bytes;
        if fits {
            match self
                .produce(
                    &topic,
                    partition,
                    record,
                    record.payload.as_deref(),
                    full,
                    timeout,
                )
                .await
            {
                Ok(()) => {
                    return Sent::Written {
                        value_omitted: false,
                    }
                }
                Err(err) if too_large(&err) => {}
                Err(err) => return Sent::Failed(err.to_string()),
            }
        }
        let size = record.payload.as_ref().map_or(0, Vec::len);
        let reason = format!(
            "the dead letter would exceed the producer's limit of {} bytes",
            self.max_message_bytes
        );
        let omitted = dead_letter_headers(
            record,
            &self.group_id,
            error,
            attempts,
            Some((&reason, size)),
        );
        match self
            .produce(&topic, partition, record, None, omitted, timeout)
            .await
        {
            Ok(()) => Sent::Written {
                value_omitted: true,
            },
            Err(err) => Sent::Failed(err.to_string()),
        }
    }

    async fn produce(
        &self,
        topic: &str,
        partition: Option<i32>,
        record: &Record,
        value: Option<&[u8]>,
        headers: OwnedHeaders,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        let mut out = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(partition) = partition {
            out = out.partition(partition);
        }
        if let Some(key) = &record.key {
            out = out.key(key);
        }
        if let Some(value) = value {
            out = out.payload(value);
        }
        self.producer
            .send(out, timeout)
            .await
            .map(|_| ())
            .map_err(|(err, _)| err)
    }

    /// The original's partition, when `dlt` has that many partitions (else the partitioner
    /// chooses by key). Read once per DLT, on a blocking thread.
    async fn partition_for(&self, dlt: &str, original: i32) -> Option<i32> {
        let known = self
            .partitions
            .lock()
            .expect("never poisoned")
            .get(dlt)
            .copied();
        let count = match known {
            Some(count) => count,
            None => {
                let producer = self.producer.clone();
                let topic = dlt.to_string();
                let read = tokio::task::spawn_blocking(move || {
                    producer
                        .client()
                        .fetch_metadata(Some(&topic), Duration::from_secs(5))
                        .ok()
                        .and_then(|m| m.topics().first().map(|t| t.partitions().len() as i32))
                })
                .await
                .ok()
                .flatten()
                .filter(|&n| n > 0)?;
                self.partitions
                    .lock()
                    .expect("never poisoned")
                    .insert(dlt.to_string(), read);
                read
            }
        };
        (original >= 0 && original < count).then_some(original)
    }
}

/// Did the producer or the broker refuse the record for its size?
fn too_large(err: &KafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
        )
    )
}

/// Key, value and headers, as the producer counts a record against `message.max.bytes`
/// (less the framing).
fn record_size(key: Option<&[u8]>, value: Option<&[u8]>, headers: &OwnedHeaders) -> usize {
    use rdkafka::message::Headers;
    let header_bytes: usize = headers
        .iter()
        .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len) + 8)
        .sum();
    key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len) + header_bytes
}

/// The original headers followed by Spring Kafka's dead-letter headers. As in Spring,
/// partition is a 4-byte and offset and timestamp are 8-byte big-endian integers; the rest
/// is UTF-8. `omitted`: the value is left out, for this reason, and had this many bytes.
pub fn dead_letter_headers(
    record: &Record,
    group_id: &str,
    error: &HandleError,
    attempts: u32,
    omitted: Option<(&str, usize)>,
) -> OwnedHeaders {
    let mut out = OwnedHeaders::new_with_capacity(record.headers.len() + 10);
    for (key, value) in &record.headers {
        out = out.insert(Header {
            key,
            value: value.as_deref(),
        });
    }
    let partition = record.partition.to_be_bytes();
    let offset = record.offset.to_be_bytes();
    let timestamp = record.timestamp.unwrap_or(-1).to_be_bytes();
    let attempts = attempts.to_string();
    let fields: [(&str, &[u8]); 9] = [
        (headers::DLT_ORIGINAL_TOPIC, record.topic.as_bytes()),
        (headers::DLT_ORIGINAL_PARTITION, &partition),
        (headers::DLT_ORIGINAL_OFFSET, &offset),
        (headers::DLT_ORIGINAL_TIMESTAMP, &timestamp),
        (headers::DLT_ORIGINAL_CONSUMER_GROUP, group_id.as_bytes()),
        (headers::DLT_EXCEPTION_FQCN, error.class.as_bytes()),
        (headers::DLT_EXCEPTION_MESSAGE, error.message.as_bytes()),
        (headers::ATTEMPTS, attempts.as_bytes()),
        (headers::FAILURE_KIND, error.kind.as_str().as_bytes()),
    ];
    for (key, value) in fields {
        out = out.insert(Header {
            key,
            value: Some(value),
        });
    }
    if let Some((reason, bytes)) = omitted {
        let bytes = bytes.to_string();
        out = out
            .insert(Header {
                key: headers::DLT_VALUE_OMITTED,
                value: Some(reason.as_bytes()),
            })
            .insert(Header {
                key: headers::DLT_ORIGINAL_VALUE_BYTES,
                value: Some(bytes.as_bytes()),
            });
    }
    out
}

/// Reads a big-endian integer header as Spring Kafka writes them (4 or 8 bytes).
pub fn be_int(value: &[u8]) -> Option<i64> {
    match value.len() {
        4 => Some(i32::from_be_bytes(value.try_into().ok()?) as i64),
        8 => Some(i64::from_be_bytes(value.try_into().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;

    fn record() -> Record {
        Record {
            topic: "order.created".into(),
            partition: 2,
            offset: 41,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"7".to_vec()),
            payload: Some(b"{}".to_vec()),
            headers: vec![("event-id".into(), Some(b"abc".to_vec()))],
        }
    }

    fn get(hs: &OwnedHeaders, name: &str) -> Option<Vec<u8>> {
        hs.iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(<[u8]>::to_vec)
    }

    #[test]
    fn dead_letter_headers_keep_the_originals_and_add_springs() {
        let error = HandleError::permanent("openorder.UndecodableRecord", "bad json");
        let hs = dead_letter_headers(&record(), "inventory-service", &error, 1, None);
        assert_eq!(get(&hs, "event-id").unwrap(), b"abc");
        assert_eq!(
            get(&hs, headers::DLT_ORIGINAL_TOPIC).unwrap(),
            b"order.created"
        );
        assert_eq!(
            be_int(&get(&hs, headers::DLT_ORIGINAL_PARTITION).unwrap()),
            Some(2)
        );
        assert_eq!(
            be_int(&get(&hs, headers::DLT_ORIGINAL_OFFSET).unwrap()),
            Some(41)
        );
        assert_eq!(
            be_int(&get(&hs, headers::DLT_ORIGINAL_TIMESTAMP).unwrap()),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            get(&hs, headers::DLT_ORIGINAL_CONSUMER_GROUP).unwrap(),
            b"inventory-service"
        );
        assert_eq!(
            get(&hs, headers::DLT_EXCEPTION_MESSAGE).unwrap(),
            b"bad json"
        );
        assert_eq!(get(&hs, headers::ATTEMPTS).unwrap(), b"1");
        assert_eq!(get(&hs, headers::FAILURE_KIND).unwrap(), b"permanent");
        assert_eq!(get(&hs, headers::DLT_VALUE_OMITTED), None);
    }

    #[test]
    fn a_dead_letter_without_its_value_says_why_and_how_large_it_was() {
        let error = HandleError::permanent("openorder.UndecodableRecord", "bad json");
        let hs = dead_letter_headers(&record(), "g", &error, 1, Some(("too large", 999_800)));
        assert_eq!(get(&hs, headers::DLT_VALUE_OMITTED).unwrap(), b"too large");
        assert_eq!(
            get(&hs, headers::DLT_ORIGINAL_VALUE_BYTES).unwrap(),
            b"999800"
        );
    }
}
