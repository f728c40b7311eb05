//! The JSON Schema of each event (`schemas/<topic>.schema.json`, JSON Schema 2020-12), by
//! topic, and a check of a value against it: what an edited dead letter must pass before it
//! is replayed ([`validate`]). The AsyncAPI document ([`crate::asyncapi`]) is made from the
//! same files, and the golden files are checked against them, so the three cannot drift.

use serde_json::Value;

use crate::topics;

/// Each event's schema file, by topic (without prefix).
pub const SCHEMAS: &[(&str, &str)] = &[
    (
        topics::ORDER_CREATED,
        include_str!("../schemas/order.created.schema.json"),
    ),
    (
        topics::INVENTORY_RESERVED,
        include_str!("../schemas/inventory.reserved.schema.json"),
    ),
    (
        topics::INVENTORY_REJECTED,
        include_str!("../schemas/inventory.rejected.schema.json"),
    ),
    (
        topics::ORDER_CANCELLED,
        include_str!("../schemas/order.cancelled.schema.json"),
    ),
    (
        topics::INVENTORY_RELEASED,
        include_str!("../schemas/inventory.released.schema.json"),
    ),
    (
        topics::NOTIFICATION_FAILED,
        include_str!("../schemas/notification.failed.schema.json"),
    ),
];

/// The schema of `topic`'s event (the topic without prefix), as text.
pub fn schema_text(topic: &str) -> Option<&'static str> {
    SCHEMAS.iter().find(|(t, _)| *t == topic).map(|(_, s)| *s)
}

/// The schema of `topic`'s event (the topic without prefix).
pub fn schema(topic: &str) -> Option<Value> {
    schema_text(topic).map(|text| serde_json::from_str(text).expect("the schemas are JSON"))
}

/// One way a value breaks its schema: where (a JSON pointer into the value, `""` for the
/// value itself) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError {
    pub pointer: String,
    pub message: String,
}

/// Checks `value` against the schema of `topic`'s event (the topic without prefix), formats
/// included (`uuid`, `date-time`, `email`, `uri`): None when the contract has no schema for
/// that topic; else every error, none when the value is valid.
pub fn validate(topic: &str, value: &Value) -> Option<Vec<SchemaError>> {
    let schema = schema(topic)?;
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the shipped schemas compile");
    let errors = validator
        .iter_errors(value)
        .map(|e| SchemaError {
            pointer: e.instance_path().as_str().to_string(),
            message: e.to_string(),
        })
        .collect();
    Some(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Value {
        serde_json::from_str(include_str!("../tests/golden/order.created.json")).unwrap()
    }

    #[test]
    fn every_event_topic_has_its_schema() {
        for flow in topics::MAP {
            if flow.writer != topics::Writer::DeadLetters {
                assert!(schema(flow.topic).is_some(), "{}", flow.topic);
            }
        }
        assert!(schema("order.created.DLT").is_none());
    }

    #[test]
    fn a_valid_event_passes_and_a_broken_one_is_told_where() {
        assert_eq!(validate(topics::ORDER_CREATED, &order()), Some(vec![]));
        let mut bad = order();
        bad["items"][0]["sku"] = "not a sku!".into();
        bad["createdAt"] = "yesterday".into();
        let errors = validate(topics::ORDER_CREATED, &bad).unwrap();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert!(pointers.contains(&"/items/0/sku"), "{errors:?}");
        assert!(
            pointers.contains(&"/createdAt"),
            "formats are checked: {errors:?}"
        );
    }

    #[test]
    fn a_topic_without_a_schema_is_none() {
        assert_eq!(validate("no.such.topic", &order()), None);
    }
}
