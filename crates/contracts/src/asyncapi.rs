//! The AsyncAPI 3.0 document of OpenOrder's topics, generated from [`crate::topics::MAP`],
//! [`crate::headers`] and the JSON Schemas under `schemas/`: one channel per topic (its key,
//! headers and value), a `send` operation for its writer and a `receive` operation per
//! reader, Kafka bindings. The dead-letter topic's messages carry the original record with
//! Spring Kafka's `kafka_dlt-*` headers. `docs/api/asyncapi.json` is this document, kept
//! equal by a test.
//!
//! The event schemas are JSON Schema 2020-12 files; here they are AsyncAPI Schema objects
//! (JSON Schema draft-07 and more), which they also are once `$schema`, `$id` and `$defs`
//! are taken out (the `$defs` become component schemas of their own).

use serde_json::{json, Map, Value};

use crate::headers;
use crate::schemas::SCHEMAS;
use crate::topics::{self, Flow, Writer};

/// The Kafka bindings' version the document follows.
const KAFKA_BINDING: &str = "0.5.0";

/// `order.created.DLT` → `orderCreatedDlt`: a name usable as a component key.
fn id(topic: &str) -> String {
    topic
        .split(['.', '-'])
        .enumerate()
        .map(|(i, part)| {
            let lower = part.to_lowercase();
            let mut chars = lower.chars();
            match (i, chars.next()) {
                (0, Some(first)) => std::iter::once(first).chain(chars).collect(),
                (_, Some(first)) => first.to_uppercase().chain(chars).collect(),
                (_, None) => String::new(),
            }
        })
        .collect()
}

fn pascal(name: &str) -> String {
    let camel = id(name);
    let mut chars = camel.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A schema file as an AsyncAPI Schema object; its `$defs` go to `shared`.
fn schema_object(text: &str, shared: &mut Map<String, Value>) -> Value {
    let mut schema: Value = serde_json::from_str(text).expect("the schemas are JSON");
    let object = schema.as_object_mut().expect("a schema is an object");
    object.remove("$schema");
    object.remove("$id");
    if let Some(Value::Object(defs)) = object.remove("$defs") {
        for (name, def) in defs {
            shared.insert(name, def);
        }
    }
    rewrite_refs(&mut schema);
    schema
}

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref") {
                if let Some(name) = target.strip_prefix("#/$defs/") {
                    *target = format!("#/components/schemas/{name}");
                }
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

fn event_headers(topic: &str) -> Value {
    json!({
        "type": "object",
        "required": [headers::EVENT_ID, headers::EVENT_TYPE, headers::EVENT_VERSION],
        "properties": {
            headers::EVENT_ID: {"type": "string", "format": "uuid", "description": "The event's eventId: consumers dedupe by it."},
            headers::EVENT_TYPE: {"type": "string", "const": topic, "description": "The event type, the topic name without prefix."},
            headers::EVENT_VERSION: {"type": "string", "pattern": "^[1-9][0-9]*$", "description": "The value's schema version (1). Fields added are not a new version: readers ignore fields they do not know."},
            headers::CONTENT_TYPE: {"type": "string", "const": headers::JSON},
            headers::REPLAY_COUNT: {"type": "string", "pattern": "^[0-9]+$", "description": "How many times this record was replayed from a dead-letter topic (absent: never)."},
            headers::REPLAY_HISTORY: {"type": "string", "contentMediaType": "application/json", "description": "One per replay, oldest first: a JSON object {from, error, attempts, replayCount, by, at, edited} saying which dead letter it was replayed from and why that failed."},
            headers::EDITED: {"type": "string", "const": "true", "description": "On a record replayed with its value edited by a JSON merge patch."},
            headers::PATCH_SHA256: {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "With openorder-edited: the SHA-256 of the patch, as the replay ledger records it."},
        }
    })
}

fn dead_letter_headers() -> Value {
    let int = |bytes: u32, what: &str| json!({"type": "string", "contentEncoding": "binary", "description": format!("{what}: a {bytes}-byte big-endian integer, as Spring Kafka writes it.")});
    json!({
        "type": "object",
        "required": [headers::DLT_ORIGINAL_TOPIC, headers::DLT_ORIGINAL_PARTITION, headers::DLT_ORIGINAL_OFFSET,
                     headers::DLT_ORIGINAL_CONSUMER_GROUP, headers::DLT_EXCEPTION_FQCN, headers::DLT_EXCEPTION_MESSAGE],
        "properties": {
            headers::DLT_ORIGINAL_TOPIC: {"type": "string", "description": "The topic the record came from."},
            headers::DLT_ORIGINAL_PARTITION: int(4, "The partition it came from"),
            headers::DLT_ORIGINAL_OFFSET: int(8, "Its offset there"),
            headers::DLT_ORIGINAL_TIMESTAMP: int(8, "Its timestamp (ms since the epoch)"),
            headers::DLT_ORIGINAL_CONSUMER_GROUP: {"type": "string", "description": "The consumer group that gave up on it."},
            headers::DLT_EXCEPTION_FQCN: {"type": "string", "description": "The error's class: openorder.Permanent, openorder.Transient, openorder.Malformed, …"},
            headers::DLT_EXCEPTION_MESSAGE: {"type": "string", "description": "What failed and why."},
            headers::ATTEMPTS: {"type": "string", "pattern": "^[0-9]+$", "description": "How many times the consumer tried it."},
            headers::REPLAY_COUNT: {"type": "string", "pattern": "^[0-9]+$", "description": "How many times it was replayed already."},
            headers::FAILURE_KIND: {"type": "string", "enum": ["transient", "permanent"], "description": "How the consumer classified the failure: the automatic redrive policy takes transient ones."},
            headers::REPLAY_HISTORY: {"type": "string", "contentMediaType": "application/json", "description": "The record's replays before this failure, one header each, oldest first (a record replayed before that fails again goes to <topic>.PARKED, with them)."},
            headers::DLT_VALUE_OMITTED: {"type": "string", "description": "Present when the original value was left out (too large with these headers): why. The original is still at its position."},
            headers::DLT_ORIGINAL_VALUE_BYTES: {"type": "string", "pattern": "^[0-9]+$", "description": "With a value left out: its size in bytes."},
            headers::EVENT_ID: {"type": "string", "description": "The original's headers are kept."},
            headers::EVENT_TYPE: {"type": "string"},
            headers::EVENT_VERSION: {"type": "string"},
        }
    })
}

fn writer_and_readers(flow: &Flow) -> String {
    let writer = match flow.writer {
        Writer::Outbox(service) => format!("Written by {} through its transactional outbox", service.name()),
        Writer::DeadLetters => "Written by the consumers of the original topic, each record under the group that gave up on it".to_string(),
    };
    let readers: Vec<&str> = flow.readers.iter().map(|s| s.name()).collect();
    match readers.is_empty() {
        true => {
            format!("{writer}; read by no OpenOrder service (for operators and other systems).")
        }
        false => format!("{writer}; read by {}.", readers.join(" and ")),
    }
}

/// The document (topic names without a deployment's prefix).
pub fn document() -> Value {
    let mut schemas = Map::new();
    let mut messages = Map::new();
    let mut channels = Map::new();
    let mut operations = Map::new();
    for (topic, text) in SCHEMAS {
        let schema = schema_object(text, &mut schemas);
        schemas.insert(topic.to_string(), schema);
    }
    for flow in topics::MAP {
        let channel = id(flow.topic);
        let message = channel.clone();
        let original = flow.topic.strip_suffix(topics::DLT_SUFFIX);
        let (payload, headers, summary) = match original {
            Some(original) => (
                json!({"$ref": format!("#/components/schemas/{original}")}),
                dead_letter_headers(),
                format!("A record of {original} a consumer gave up on: the original key and value (unless too large), the original's headers, and why."),
            ),
            None => (
                json!({"$ref": format!("#/components/schemas/{}", flow.topic)}),
                event_headers(flow.topic),
                format!("The {} event.", flow.topic),
            ),
        };
        messages.insert(
            message.clone(),
            json!({
                "name": flow.topic,
                "title": flow.event,
                "summary": summary,
                "contentType": headers::JSON,
                "headers": headers,
                "payload": payload,
                "bindings": {"kafka": {
                    "key": {"type": "string", "pattern": "^[1-9][0-9]*$", "description": format!("The {} as a decimal string: one order's records stay in one partition, in order.", if original.is_some() { "original's key (orderId)" } else { flow.key })},
                    "bindingVersion": KAFKA_BINDING,
                }},
            }),
        );
        channels.insert(
            channel.clone(),
            json!({
                "address": flow.topic,
                "description": format!("{} A deployment may put a prefix in front of the name (--topic-prefix).", writer_and_readers(flow)),
                "messages": {message.clone(): {"$ref": format!("#/components/messages/{message}")}},
                "bindings": {"kafka": {"topic": flow.topic, "partitions": 3, "replicas": 1, "bindingVersion": KAFKA_BINDING}},
            }),
        );
        let channel_ref = json!({"$ref": format!("#/channels/{channel}")});
        let message_ref = json!({"$ref": format!("#/channels/{channel}/messages/{message}")});
        let writers: Vec<String> = match flow.writer {
            Writer::Outbox(service) => vec![service.name().to_string()],
            Writer::DeadLetters => original
                .and_then(topics::flow)
                .map(|f| f.readers.iter().map(|s| s.name().to_string()).collect())
                .unwrap_or_default(),
        };
        for writer in writers {
            operations.insert(
                format!("{}Sends{}", id(&writer), pascal(flow.topic)),
                json!({"action": "send", "channel": channel_ref, "messages": [message_ref], "summary": format!("{writer} writes {}.", flow.topic)}),
            );
        }
        for reader in flow.readers {
            operations.insert(
                format!("{}Receives{}", id(reader.name()), pascal(flow.topic)),
                json!({"action": "receive", "channel": channel_ref, "messages": [message_ref], "summary": format!("{} reads {} (group {}).", reader.name(), flow.topic, reader.name())}),
            );
        }
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "OpenOrder events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The topics OpenOrder's services talk through. Values are JSON; readers accept fields they do not know (tolerant readers); a change they could not ignore is a new event-version.",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": headers::JSON,
        "servers": {
            "embedded": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "The broker `openorder up` embeds."},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    })
}
