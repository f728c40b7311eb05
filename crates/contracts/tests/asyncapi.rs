//! The AsyncAPI document: the committed one is the generated one (so a contract change shows
//! in review), it names every topic of the map with its writers and readers, and every
//! reference in it resolves.

use contracts::asyncapi::document;
use contracts::topics::MAP;
use serde_json::Value;

fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api/asyncapi.json")
}

#[test]
fn the_committed_asyncapi_document_is_the_generated_one() {
    let generated = serde_json::to_string_pretty(&document()).unwrap() + "\n";
    let path = committed_path();
    if std::env::var("OPENORDER_TEST_WRITE_API_DOCS").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/api/asyncapi.json differs from the generated document: review the change and run \
         `OPENORDER_TEST_WRITE_API_DOCS=1 cargo test -p contracts --test asyncapi` to write it"
    );
}

#[test]
fn every_topic_of_the_map_is_a_channel_with_an_operation_per_writer_and_reader() {
    let doc = document();
    let channels = doc["channels"].as_object().unwrap();
    assert_eq!(channels.len(), MAP.len());
    let operations = doc["operations"].as_object().unwrap();
    for flow in MAP {
        let (name, channel) = channels
            .iter()
            .find(|(_, c)| c["address"] == flow.topic)
            .unwrap_or_else(|| panic!("no channel for {}", flow.topic));
        let of_channel: Vec<&Value> = operations
            .values()
            .filter(|op| op["channel"]["$ref"] == format!("#/channels/{name}"))
            .collect();
        let receives = of_channel
            .iter()
            .filter(|op| op["action"] == "receive")
            .count();
        assert_eq!(receives, flow.readers.len(), "{}", flow.topic);
        assert!(
            of_channel.iter().any(|op| op["action"] == "send"),
            "{} has a writer",
            flow.topic
        );
        assert_eq!(channel["bindings"]["kafka"]["topic"], flow.topic);
    }
    let dlt = &doc["components"]["messages"]["orderCreatedDlt"];
    assert!(
        dlt["headers"]["properties"]["kafka_dlt-original-offset"]["description"]
            .as_str()
            .unwrap()
            .contains("8-byte big-endian")
    );
}

fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.push(target);
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_in_the_document_resolves() {
    let doc = document();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20, "{}", all.len());
    for target in all {
        let pointer = target.strip_prefix('#').expect("local references only");
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }
}

/// The schema the document gives for the messages of the channel at `address`: the
/// message's payload `$ref`, resolved against the whole document (so the references inside
/// it resolve too).
fn payload_schema_of(doc: &Value, address: &str) -> Value {
    let (_, channel) = doc["channels"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, c)| c["address"] == address)
        .unwrap_or_else(|| panic!("no channel at {address}"));
    let message_ref = channel["messages"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()["$ref"]
        .as_str()
        .unwrap();
    let message = message_ref.trim_start_matches("#/components/messages/");
    let payload_ref = doc["components"]["messages"][message]["payload"]["$ref"].clone();
    assert!(
        payload_ref.is_string(),
        "{message}'s payload is a reference"
    );
    let mut schema = doc.clone();
    schema["$ref"] = payload_ref;
    schema
}

#[test]
fn every_golden_event_validates_against_the_schema_its_channel_gives() {
    let doc = document();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        // `order.created.with-contact.json` is an `order.created`.
        let event_type = MAP
            .iter()
            .map(|t| t.topic)
            .filter(|t| name.starts_with(&format!("{t}.")))
            .max_by_key(|t| t.len())
            .unwrap_or_else(|| panic!("{name} names no topic of the map"));
        let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let schema = payload_schema_of(&doc, event_type);
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&event)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        // And the schema is not one that takes anything: a required field taken away fails.
        let mut broken = event.clone();
        broken.as_object_mut().unwrap().remove("orderId");
        assert!(
            !validator.is_valid(&broken),
            "{name} without orderId is refused"
        );
        checked += 1;
    }
    assert!(checked >= 6, "golden files checked: {checked}");
}
