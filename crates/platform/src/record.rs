//! A Kafka record as OpenOrder code sees it: owned (so it can be retried, dead-lettered and
//! replayed), with its headers, and the readings every consumer and tool needs: header
//! text, the order it is about, the value decoded as JSON. Dead-letter readings (why it
//! failed, where it came from) are in [`crate::dlt`].

use contracts::headers;
use rdkafka::message::{Headers, Message};

use crate::failure::HandleError;

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

    /// The W3C trace context the record carries (`traceparent`, `tracestate`), if any.
    pub fn trace_context(&self) -> opentelemetry::Context {
        crate::telemetry::context_from(
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
