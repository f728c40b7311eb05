//! A dead letter as people read it: what its `kafka_dlt-*` and `openorder-*` headers say
//! ([`Record`]'s readings), its [`Summary`] in a list, and the [`Replayed`] steps of its
//! history.

use contracts::headers;
use serde::{Deserialize, Serialize};

use super::BINARY_INT_HEADERS;
use crate::dead_letters::write::be_int;
use crate::record::Record;

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
