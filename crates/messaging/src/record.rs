//! A Kafka record as OpenOrder code sees it: owned (so it can be retried, dead-lettered and
//! replayed), with its headers, and the readings every consumer and tool needs: header
//! text, the order it is about, the value decoded as JSON, and of a dead letter, who gave up
//! on it and why (what a consumer of a `.DLT` topic needs; the operator's readings, where it
//! came from and its history, are the `dead-letters` crate's).

use contracts::headers;
use rdkafka::message::{Headers, Message};

use store::failure::HandleError;

/// One record of a topic (an event, or a dead letter of one).
#[derive(Clone, Debug)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch, when the broker gave one.
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    /// An owned copy of what librdkafka handed over.
    pub fn from_message<M: Message>(message: &M) -> Self {
        let headers = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// The last value of header `name`, as bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The last value of header `name`, as UTF-8 text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The last value of header `name` as text, bytes that are not UTF-8 replaced.
    pub fn header_text(&self, name: &str) -> Option<String> {
        self.header_bytes(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Did consumer group `group` (its full name, behind the prefix) give up on this dead
    /// letter (its `kafka_dlt-original-consumer-group`)?
    pub fn dead_lettered_by(&self, group: &str) -> bool {
        self.header(headers::DLT_ORIGINAL_CONSUMER_GROUP) == Some(group)
    }

    /// Why this dead letter is one: `<exception class>: <exception message>` from its
    /// `kafka_dlt-exception-*` headers ("unknown" / "no message" where missing).
    pub fn dead_letter_error(&self) -> String {
        format!(
            "{}: {}",
            self.header_text(headers::DLT_EXCEPTION_FQCN)
                .unwrap_or_else(|| "unknown".into()),
            self.header_text(headers::DLT_EXCEPTION_MESSAGE)
                .unwrap_or_else(|| "no message".into())
        )
    }

    /// The W3C trace context the record carries (`traceparent`, `tracestate`), if any.
    pub fn trace_context(&self) -> opentelemetry::Context {
        telemetry::context_from(
            self.headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), std::str::from_utf8(v.as_deref()?).ok()?))),
        )
    }

    /// The key as text (bytes that are not UTF-8 replaced).
    pub fn key_text(&self) -> Option<String> {
        self.key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
    }

    /// The order this record is about ([`order_id_of`]).
    pub fn order_id(&self) -> Option<i64> {
        order_id_of(self.key.as_deref(), self.payload.as_deref())
    }

    /// The fingerprint of the value ([`store::dedupe::body_hash`]): what tells a
    /// redelivery of an event from another event under the same id.
    pub fn body_hash(&self) -> String {
        store::dedupe::body_hash(self.payload.as_deref())
    }

    /// The mark of this record's event, whose id is `id`, for [`store::dedupe::mark_processed`].
    pub fn mark(&self, id: impl Into<String>) -> store::dedupe::Mark {
        store::dedupe::Mark {
            id: id.into(),
            hash: Some(self.body_hash()),
        }
    }

    /// Checks that the key is `order_id`, the `orderId` of the event this record carries,
    /// as decimal text ([`key_names_order`]).
    pub fn check_key(&self, order_id: i64) -> Result<(), HandleError> {
        key_names_order(self.key.as_deref(), order_id)
    }

    /// `openorder-replay-count`: how often the record was replayed from a dead-letter
    /// topic (0 for a record never replayed).
    pub fn replay_count(&self) -> u32 {
        self.header(headers::REPLAY_COUNT)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// The value decoded as JSON into `T`; a record that does not decode is permanent trouble.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HandleError> {
        let payload = self.payload.as_deref().ok_or_else(|| {
            HandleError::permanent("openorder.EmptyRecord", "record has no value")
        })?;
        serde_json::from_slice(payload).map_err(|e| {
            HandleError::permanent(
                "openorder.UndecodableRecord",
                format!("value is not a valid {}: {e}", short_type_name::<T>()),
            )
        })
    }
}

/// `OrderCreated` rather than `contracts::events::OrderCreated`.
fn short_type_name<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    name.rsplit("::").next().unwrap_or(name)
}

/// The order a record is about: its key when that is an order id, else the `orderId`
/// field of its value (a record someone produced without a key).
pub fn order_id_of(key: Option<&[u8]>, value: Option<&[u8]>) -> Option<i64> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct WithOrderId {
        order_id: i64,
    }
    let from_key = key
        .and_then(|k| std::str::from_utf8(k).ok())
        .and_then(|k| k.trim().parse().ok());
    from_key.or_else(|| {
        serde_json::from_slice::<WithOrderId>(value?)
            .ok()
            .map(|v| v.order_id)
    })
}

/// The class of the permanent failure of a record whose key is not its event's `orderId`.
pub const KEY_MISMATCH: &str = "openorder.KeyMismatch";

/// The contract's rule for keys: an event's record is keyed by its `orderId` as decimal
/// text (`7`, not `07`, ` 7` or a binary long), which is what puts all of an order's events
/// on one partition, in order, and what the dead-letter tools find an order by. A record
/// keyed otherwise, or without a key, breaks it: a permanent failure ([`KEY_MISMATCH`])
/// naming both.
pub fn key_names_order(key: Option<&[u8]>, order_id: i64) -> Result<(), HandleError> {
    let expected = order_id.to_string();
    match key {
        Some(key) if key == expected.as_bytes() => Ok(()),
        Some(key) => Err(HandleError::permanent(
            KEY_MISMATCH,
            format!(
                "the record's key {:?} is not its orderId {order_id}: an event is keyed by its orderId as decimal text",
                String::from_utf8_lossy(key)
            ),
        )),
        None => Err(HandleError::permanent(
            KEY_MISMATCH,
            format!(
                "the record has no key, and its orderId is {order_id}: an event is keyed by its orderId as decimal text"
            ),
        )),
    }
}

/// The `orderId` of a JSON value, when it has one (for events of a type this build reads
/// only as [`contracts::AnyEvent`]-like readings, whose type says nothing of it).
pub fn value_order_id(value: &[u8]) -> Option<i64> {
    order_id_of(None, Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_is_the_order_id_as_decimal_text_is_accepted() {
        assert!(key_names_order(Some(&b"7"[..]), 7).is_ok());
        assert!(key_names_order(Some(&b"900000123"[..]), 900_000_123).is_ok());
    }

    #[test]
    fn a_key_naming_another_order_or_none_is_a_permanent_key_mismatch_naming_both() {
        let other = key_names_order(Some(&b"8"[..]), 7).unwrap_err();
        assert_eq!(other.kind, store::failure::FailureKind::Permanent);
        assert_eq!(other.class, "openorder.KeyMismatch");
        assert!(
            other.message.contains("key \"8\"") && other.message.contains("orderId 7"),
            "{}",
            other.message
        );
        // The same number in another spelling lands on another partition: refused too.
        for spelling in [
            &b"07"[..],
            &b" 7"[..],
            &b"+7"[..],
            &b"7 "[..],
            &b"\x00\x00\x00\x00\x00\x00\x00\x07"[..],
        ] {
            let err = key_names_order(Some(spelling), 7).unwrap_err();
            assert_eq!(err.class, KEY_MISMATCH, "{spelling:?}");
        }
        let none = key_names_order(None, 7).unwrap_err();
        assert_eq!(none.class, KEY_MISMATCH);
        assert!(none.message.contains("no key") && none.message.contains("orderId is 7"));
    }

    #[test]
    fn the_order_id_of_a_value_is_read_whatever_else_it_holds() {
        assert_eq!(
            value_order_id(br#"{"eventId":"e","orderId":12,"status":"AUDITED"}"#),
            Some(12)
        );
        assert_eq!(value_order_id(br#"{"eventId":"e"}"#), None);
        assert_eq!(value_order_id(b"not json"), None);
    }
}
