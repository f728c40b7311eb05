//! A record as a person reads it: headers decoded (a dead letter's binary integers as
//! numbers), the value pretty-printed when JSON, as text or as hex otherwise, and cut at
//! [`MAX_VALUE_SHOWN`].

use contracts::headers;
use platform::dead_letters::write::be_int;
use platform::record::Record;
use serde::Serialize;

use super::MAX_VALUE_SHOWN;

/// One record as a person reads it: headers decoded, value pretty-printed when JSON.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordView {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<String>,
    pub event_type: Option<String>,
    pub headers: Vec<HeaderView>,
    pub value: Value,
    /// The value's size in bytes.
    pub value_bytes: usize,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderView {
    pub name: String,
    /// Text, or the number a binary `kafka_dlt-*` integer holds, or hex of other bytes.
    pub value: String,
}

/// A value as shown.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", content = "text", rename_all = "camelCase")]
pub enum Value {
    None,
    /// Pretty-printed JSON.
    Json(String),
    /// UTF-8 text that is not JSON.
    Text(String),
    /// Bytes that are not text, as hex.
    Hex(String),
}

impl RecordView {
    pub fn of(r: &Record) -> Self {
        let headers = r
            .headers
            .iter()
            .map(|(name, v)| {
                let bytes = v.as_deref().unwrap_or_default();
                let value = match (
                    platform::dead_letters::read::BINARY_INT_HEADERS.contains(&name.as_str()),
                    be_int(bytes),
                ) {
                    (true, Some(n)) => n.to_string(),
                    _ => text_or_hex(bytes),
                };
                HeaderView {
                    name: name.clone(),
                    value,
                }
            })
            .collect();
        let payload = r.payload.as_deref();
        Self {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            timestamp_ms: r.timestamp,
            key: r.key_text(),
            event_type: r.header(headers::EVENT_TYPE).map(str::to_string),
            headers,
            value: payload.map_or(Value::None, shown),
            value_bytes: payload.map_or(0, <[u8]>::len),
        }
    }

    /// The record's value as JSON, when it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        match &self.value {
            Value::Json(text) => serde_json::from_str(text).ok(),
            _ => None,
        }
    }
}

fn text_or_hex(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
        {
            text.to_string()
        }
        _ => hex(bytes),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len().min(MAX_VALUE_SHOWN / 2) * 3);
    for (i, b) in bytes.iter().take(MAX_VALUE_SHOWN / 3).enumerate() {
        if i > 0 {
            out.push(if i % 16 == 0 { '\n' } else { ' ' });
        }
        let _ = write!(out, "{b:02x}");
    }
    if bytes.len() > MAX_VALUE_SHOWN / 3 {
        let _ = write!(out, "\n… {} more bytes", bytes.len() - MAX_VALUE_SHOWN / 3);
    }
    out
}

pub(super) fn shown(bytes: &[u8]) -> Value {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let pretty = serde_json::to_string_pretty(&json).unwrap_or_default();
        return Value::Json(cut(pretty));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::Text(cut(text.to_string())),
        Err(_) => Value::Hex(hex(bytes)),
    }
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_VALUE_SHOWN {
        let mut at = MAX_VALUE_SHOWN;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let rest = text.len() - at;
        text.truncate(at);
        text.push_str(&format!("\n… {rest} more bytes"));
    }
    text
}
