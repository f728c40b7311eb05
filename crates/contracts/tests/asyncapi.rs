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
