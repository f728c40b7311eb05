//! What a consumer is held up on, and why: every key set aside because a record of it
//! failed (see [`crate::consumer`]) is listed here, with the record it waits on, until that
//! record is done. One that has waited longer than [`STALLED_AFTER`] is **stalled**: a
//! record that keeps failing as unavailable (its database is down) or whose dead letter
//! cannot be written. Shown by `GET /health/ready` (`checks.consumers`), `GET /admin/status`
//! and the gauges `openorder_consumer_keys_waiting` and `openorder_consumer_keys_stalled`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::record::Record;

/// How long a key may wait on one record before it counts as stalled. The default
/// retry policy (3 tries, 1 s apart) finishes a failing record in about 2 s.
pub const STALLED_AFTER: Duration = Duration::from_secs(30);

/// The keys every consumer of a service waits on. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Stalls(Arc<Mutex<BTreeMap<WaitingOn, Waiting>>>);

/// A consumer's name, a topic, a partition and a key.
type WaitingOn = (String, String, i32, Option<String>);

#[derive(Clone, Debug)]
struct Waiting {
    offset: i64,
    since: Instant,
    since_text: String,
    attempts: u32,
    error: String,
}

/// One key a consumer waits on, as reported.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WaitingKey {
    pub consumer: String,
    pub topic: String,
    pub partition: i32,
    /// The record's key (as text; none for a record without one).
    pub key: Option<String>,
    /// The record it waits on.
    pub offset: i64,
    /// When the key was set aside (RFC 3339).
    pub since: String,
    pub waiting_ms: u64,
    /// Tries of the record so far.
    pub attempts: u32,
    /// The last error: the record's, or its dead letter's.
    pub error: String,
    /// Waiting longer than [`STALLED_AFTER`].
    pub stalled: bool,
}

impl Stalls {
    /// `consumer` waits on `record` after `attempts` tries, for `error`. The time it
    /// started waiting is kept across updates of the same key.
    pub fn waiting(&self, consumer: &str, record: &Record, attempts: u32, error: &str) {
        let offset = record.offset;
        let mut map = self.0.lock().expect("never poisoned");
        let entry = map
            .entry(key_of(consumer, record))
            .or_insert_with(|| Waiting {
                offset,
                since: Instant::now(),
                since_text: telemetry::now_text(),
                attempts,
                error: String::new(),
            });
        entry.offset = offset;
        entry.attempts = attempts;
        entry.error = error.chars().take(500).collect();
    }

    /// `consumer` no longer waits on `record`'s key.
    pub fn cleared(&self, consumer: &str, record: &Record) {
        self.0
            .lock()
            .expect("never poisoned")
            .remove(&key_of(consumer, record));
    }

    pub fn report(&self) -> Vec<WaitingKey> {
        let map = self.0.lock().expect("never poisoned");
        map.iter()
            .map(|((consumer, topic, partition, key), w)| {
                let waited = w.since.elapsed();
                WaitingKey {
                    consumer: consumer.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    key: key.clone(),
                    offset: w.offset,
                    since: w.since_text.clone(),
                    waiting_ms: waited.as_millis() as u64,
                    attempts: w.attempts,
                    error: w.error.clone(),
                    stalled: waited >= STALLED_AFTER,
                }
            })
            .collect()
    }

    /// Sets the waiting and stalled gauges of every consumer in `consumers`.
    pub fn export(&self, consumers: &[&str], metrics: &telemetry::metrics::Metrics) {
        let report = self.report();
        for consumer in consumers {
            let mine = report.iter().filter(|w| w.consumer == *consumer);
            let waiting = mine.clone().count();
            let stalled = mine.filter(|w| w.stalled).count();
            let labels = [("consumer", *consumer)];
            metrics.gauge(
                &telemetry::catalogue::CONSUMER_KEYS_WAITING,
                &labels,
                waiting as i64,
            );
            metrics.gauge(
                &telemetry::catalogue::CONSUMER_KEYS_STALLED,
                &labels,
                stalled as i64,
            );
        }
    }
}

fn key_of(consumer: &str, record: &Record) -> WaitingOn {
    (
        consumer.to_string(),
        record.topic.clone(),
        record.partition,
        record
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).chars().take(200).collect()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_key_keeps_when_it_began_and_is_gone_once_cleared() {
        let stalls = Stalls::default();
        let record = Record {
            topic: "t".into(),
            partition: 1,
            offset: 10,
            timestamp: None,
            key: Some(b"7".to_vec()),
            payload: None,
            headers: Vec::new(),
        };
        stalls.waiting("c", &record, 1, "boom");
        let since = stalls.report()[0].since.clone();
        assert_eq!(stalls.report()[0].key.as_deref(), Some("7"));
        stalls.waiting("c", &record, 2, "boom again");
        let report = stalls.report();
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].since, since);
        assert_eq!(report[0].attempts, 2);
        assert_eq!(report[0].error, "boom again");
        assert!(!report[0].stalled);
        stalls.cleared("c", &record);
        assert!(stalls.report().is_empty());
    }
}
