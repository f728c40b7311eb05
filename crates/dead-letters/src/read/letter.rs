//! A dead letter as people read it: what its `kafka_dlt-*` and `openorder-*` headers say
//! ([`LetterHeaders`], on a [`Record`]), its [`Summary`] in a list and its [`detail`], and
//! the [`Replayed`] steps of its history.

use contracts::headers;
use messaging::dead_letters::write::be_int;
use messaging::record::Record;
use serde::{Deserialize, Serialize};

use super::BINARY_INT_HEADERS;

/// The readings of a dead letter: a [`Record`] of a `.DLT` topic, with the headers
/// [`crate::write`] wrote on it (who gave up on it and why are [`Record`]'s own:
/// [`Record::dead_lettered_by`], [`Record::dead_letter_error`]).
pub(crate) trait LetterHeaders {
    /// Header `name` as a big-endian integer (as Spring writes them).
    fn int(&self, name: &str) -> Option<i64>;

    /// Why the value was left out of this dead letter, if it was.
    fn value_omitted(&self) -> Option<String>;

    /// Where the record came from: the `kafka_dlt-original-topic` header, else the topic
    /// without `.DLT` (or `.PARKED`).
    fn original_topic(&self) -> String;

    /// The error class (`kafka_dlt-exception-fqcn`), if the dead letter says it.
    fn error_class(&self) -> Option<String>;

    /// `transient` or `permanent` (`openorder-failure-kind`), if the dead letter says it.
    fn failure_kind(&self) -> Option<String>;

    /// Is this a parking-lot record (of a `<topic>.PARKED`)?
    fn is_parked(&self) -> bool;

    /// The replays the record went through before it failed this time, oldest first (its
    /// `openorder-replay-history` headers; one that does not decode is left out).
    fn history(&self) -> Vec<Replayed>;

    /// How often the consumer tried the record before it gave up.
    fn attempts(&self) -> Option<u32>;

    /// `topic/partition/offset`: the dead letter's identity in the ledger.
    fn position(&self) -> String;
}

impl LetterHeaders for Record {
    fn int(&self, name: &str) -> Option<i64> {
        self.header_bytes(name).and_then(be_int)
    }

    fn value_omitted(&self) -> Option<String> {
        self.header_text(headers::DLT_VALUE_OMITTED)
    }

    fn original_topic(&self) -> String {
        self.header_text(headers::DLT_ORIGINAL_TOPIC)
            .unwrap_or_else(|| {
                self.topic
                    .strip_suffix(contracts::topics::DLT_SUFFIX)
                    .or_else(|| self.topic.strip_suffix(contracts::topics::PARKED_SUFFIX))
                    .unwrap_or(&self.topic)
                    .to_string()
            })
    }

    fn error_class(&self) -> Option<String> {
        self.header_text(headers::DLT_EXCEPTION_FQCN)
    }

    fn failure_kind(&self) -> Option<String> {
        self.header_text(headers::FAILURE_KIND)
    }

    fn is_parked(&self) -> bool {
        self.topic.ends_with(contracts::topics::PARKED_SUFFIX)
    }

    fn history(&self) -> Vec<Replayed> {
        self.headers
            .iter()
            .filter(|(k, _)| k == headers::REPLAY_HISTORY)
            .filter_map(|(_, v)| serde_json::from_slice(v.as_deref()?).ok())
            .collect()
    }

    fn attempts(&self) -> Option<u32> {
        self.header_text(headers::ATTEMPTS)
            .and_then(|a| a.parse().ok())
    }

    fn position(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// What `dlt list` shows of `letter` (its `replayed` 0: the ledger's count is
/// [`summaries_of`](super::summaries_of)'s to add).
pub fn summary(letter: &Record) -> Summary {
    Summary {
        topic: letter.topic.clone(),
        partition: letter.partition,
        offset: letter.offset,
        key: letter.key_text(),
        order_id: letter.order_id(),
        error: letter.dead_letter_error(),
        attempts: letter.attempts(),
        replay_count: letter.replay_count(),
        replayed: 0,
        parked: letter.is_parked(),
        error_class: letter.error_class(),
        failure_kind: letter.failure_kind(),
        history: letter.history(),
        value_omitted: letter.value_omitted(),
        original_value_bytes: letter
            .header_text(headers::DLT_ORIGINAL_VALUE_BYTES)
            .and_then(|n| n.parse().ok()),
        original_topic: letter.original_topic(),
        original_partition: letter.int(headers::DLT_ORIGINAL_PARTITION),
        original_offset: letter.int(headers::DLT_ORIGINAL_OFFSET),
        consumer_group: letter.header_text(headers::DLT_ORIGINAL_CONSUMER_GROUP),
        timestamp_ms: letter.timestamp,
    }
}

/// Everything of `letter`: its [`summary`], its headers decoded (Spring's binary integers
/// as numbers), its value as JSON if it is JSON.
pub fn detail(letter: &Record) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = letter
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
    let value = letter.payload.as_deref().map(|v| {
        serde_json::from_slice::<serde_json::Value>(v)
            .unwrap_or_else(|_| serde_json::json!(String::from_utf8_lossy(v)))
    });
    serde_json::json!({
        "summary": summary(letter),
        "headers": headers,
        "value": value,
    })
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
