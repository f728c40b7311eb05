//! One dead letter at a time: replayed once the fault is off (a dry run first, which
//! changes nothing; the ledger remembers), refused past the replay cap, found by the order
//! id in its value when it has no key, and edited by a merge patch checked against the
//! schema (one that breaks it sends nothing).

use std::time::Duration;

use super::{
    admin, dead_letters_of, error_fields, order_becomes, parked_of, parked_topic, replay,
    replayed_record, set_faults,
};
use crate::support::Stack;
use serde_json::{json, Value};

pub(super) async fn a_failed_order_replayed_after_the_fault_is_off_is_confirmed_once(
    stack: &Stack,
) {
    let dlt_topic = stack.topics().order_created_dlt();
    stack.set_stock("FAIL", 5).await;
    let id = stack.post_order(3, &[("FAIL", 2)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "FAILED");
    let letters = dead_letters_of(stack, id, 1).await;
    assert_eq!(letters[0]["attempts"], 3);
    assert_eq!(letters[0]["originalTopic"], stack.topics().order_created());
    assert_eq!(
        letters[0]["partition"], letters[0]["originalPartition"],
        "a dead letter keeps its record's partition"
    );
    assert_eq!(letters[0]["replayed"], 0);
    let (partition, offset) = (
        letters[0]["partition"].as_i64().unwrap(),
        letters[0]["offset"].as_i64().unwrap(),
    );
    let (status, detail) = admin(
        stack,
        reqwest::Method::GET,
        &format!("/admin/dlt/{dlt_topic}/{partition}/{offset}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(detail["value"]["orderId"], id, "value shown as JSON");
    assert_eq!(
        detail["headers"]["kafka_dlt-original-partition"].as_i64(),
        letters[0]["originalPartition"].as_i64()
    );

    // A dry run says what it would do and does nothing.
    let dry = replay(
        stack,
        json!({"topic": dlt_topic, "orderId": id, "dryRun": true}),
    )
    .await;
    assert_eq!(dry.len(), 1);
    assert_eq!(dry[0]["outcome"], "would-replay");
    set_faults(stack, "").await;
    // Had the dry run written the record again, it would be done (reserved by
    // inventory-service, the order confirmed by order-service) once sentinels behind it on
    // its partition are through both.
    stack.decision_sentinel(&id.to_string()).await;
    assert_eq!(
        stack.order(id).await["status"],
        "FAILED",
        "a dry run changes nothing"
    );
    assert_eq!(stack.stock("FAIL").await["available"], 5);

    let done = replay(
        stack,
        json!({"topic": dlt_topic, "orderId": id, "by": "test"}),
    )
    .await;
    assert_eq!(done[0]["outcome"], "replayed");
    assert_eq!(done[0]["replayCount"], 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stack.order(id).await["status"] != "CONFIRMED" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replayed order not confirmed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stack.stock("FAIL").await["available"], 3);

    // The ledger remembers: the list shows the replay, and the same replay again does nothing.
    let letters = dead_letters_of(stack, id, 1).await;
    assert_eq!(letters[0]["replayed"], 1, "{letters:?}");
    let again = replay(stack, json!({"topic": dlt_topic, "orderId": id})).await;
    assert_eq!(again[0]["outcome"], "already-replayed");
    // A copy written anyway would be done once inventory-service is past a sentinel behind it.
    stack.order_created_sentinel(&id.to_string()).await;
    assert_eq!(stack.stock("FAIL").await["available"], 3, "reserved once");
    set_faults(stack, "FAIL").await;
}

pub(super) async fn the_replay_cap_refuses_a_record_replayed_too_often(stack: &Stack) {
    let dlt_topic = stack.topics().order_created_dlt();
    let id = stack.post_order(3, &[("FAIL", 1)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "FAILED");
    dead_letters_of(stack, id, 1).await;
    // Replayed with the fault still on: it fails again and is parked with replay count 1.
    let first = replay(
        stack,
        json!({"topic": dlt_topic, "orderId": id, "maxReplays": 1}),
    )
    .await;
    assert_eq!(first[0]["outcome"], "replayed");
    let parked = parked_of(stack, id, 1).await;
    let second = parked
        .iter()
        .find(|d| d["replayCount"] == 1)
        .expect("the parked record of the replay");
    let capped = replay(
        stack,
        json!({"topic": parked_topic(stack), "partition": second["partition"], "offset": second["offset"], "maxReplays": 1}),
    )
    .await;
    assert_eq!(capped[0]["outcome"], "over-cap");
    assert_eq!(capped[0]["replayCount"], 2);

    let replayed = format!(
        "openorder_records_replayed_total{{topic=\"{}\"}}",
        stack.topics().order_created()
    );
    assert_eq!(stack.metric(&stack.inventory_url, &replayed).await, 2);
}

pub(super) async fn a_dead_letter_without_a_key_is_found_and_replayed_by_the_order_id_in_its_value(
    stack: &Stack,
) {
    let dlt_topic = stack.topics().order_created_dlt();
    let original = stack.topics().order_created();
    let order_id = 987_654_321;
    let value = json!({"orderId": order_id, "note": "produced without a key"}).to_string();
    stack
        .produce_with(
            &dlt_topic,
            None,
            value.as_bytes(),
            &[
                ("kafka_dlt-original-topic", &original),
                ("kafka_dlt-exception-fqcn", "openorder.UndecodableRecord"),
            ],
            &[],
        )
        .await;
    let letters = dead_letters_of(stack, order_id, 1).await;
    assert_eq!(letters[0]["key"], Value::Null);
    let done = replay(
        stack,
        json!({"topic": dlt_topic, "orderId": order_id, "by": "test"}),
    )
    .await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["outcome"], "replayed");
    assert_eq!(done[0]["targetTopic"], original);
}

pub(super) async fn an_edited_replay_of_an_order_whose_sku_was_wrong_confirms_it(stack: &Stack) {
    let dlt_topic = stack.topics().order_created_dlt();
    stack.set_stock("ABC-002", 50).await;
    let id = stack.post_order(5, &[("FAIL", 2)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "FAILED");
    let letter = dead_letters_of(stack, id, 1).await.remove(0);
    let patch = json!({"items": [{"sku": "ABC-002", "qty": 2}]});
    let position = json!({"topic": dlt_topic, "partition": letter["partition"], "offset": letter["offset"], "by": "test"});

    // A dry run checks the edit and sends nothing.
    let mut dry = position.clone();
    dry["patch"] = patch.clone();
    dry["dryRun"] = json!(true);
    let previewed = replay(stack, dry).await;
    assert_eq!(previewed[0]["outcome"], "would-replay", "{previewed:?}");
    assert_eq!(previewed[0]["edited"], true);

    let mut edited = position.clone();
    edited["patch"] = patch.clone();
    let done = replay(stack, edited).await;
    assert_eq!(done[0]["outcome"], "replayed", "{done:?}");
    assert_eq!(done[0]["edited"], true);
    order_becomes(stack, id, "CONFIRMED").await;
    assert_eq!(stack.stock("ABC-002").await["available"], 48);

    // The record sent carries the edit, its patch's hash and its history.
    let sent = replayed_record(stack, id, 2).await;
    let value: Value = serde_json::from_slice(&sent.payload).unwrap();
    assert_eq!(value["items"], patch["items"]);
    assert_eq!(value["orderId"], id);
    assert_eq!(
        sent.header_text("openorder-edited").as_deref(),
        Some("true")
    );
    let hash = sent.header_text("openorder-patch-sha256").unwrap();
    assert_eq!(hash.len(), 64, "{hash}");
    let step: Value =
        serde_json::from_str(&sent.header_text("openorder-replay-history").unwrap()).unwrap();
    assert_eq!(step["by"], "test");
    assert_eq!(step["edited"], true);
    assert_eq!(
        step["from"],
        format!("{dlt_topic}/{}/{}", letter["partition"], letter["offset"])
    );

    // The dead letter stays where it was; the ledger has who, when and the patch.
    let letters = dead_letters_of(stack, id, 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["replayed"], 1);
    let ledger = stack
        .records_with_key(
            &stack.topics().group("openorder.dlt-replays"),
            &format!("{dlt_topic}/{}/{}", letter["partition"], letter["offset"]),
            Duration::from_secs(30),
            1,
        )
        .await;
    let entry: Value = serde_json::from_slice(&ledger[0].payload).unwrap();
    assert_eq!(entry["by"], "test");
    assert_eq!(entry["edited"], true);
    assert_eq!(entry["patch"], patch);
    assert_eq!(entry["patchSha256"], hash);
    assert!(
        entry["at"].as_str().is_some_and(|at| !at.is_empty()),
        "{entry}"
    );
}

pub(super) async fn a_patch_that_breaks_the_schema_is_refused_and_sends_nothing(stack: &Stack) {
    let dlt_topic = stack.topics().order_created_dlt();
    let id = stack.post_order(6, &[("FAIL", 1)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "FAILED");
    let letter = dead_letters_of(stack, id, 1).await.remove(0);
    let refused = |patch: Value| {
        let body = json!({"topic": dlt_topic, "partition": letter["partition"], "offset": letter["offset"], "patch": patch});
        async move {
            admin(
                stack,
                reqwest::Method::POST,
                "/admin/dlt/replay",
                Some(body),
            )
            .await
        }
    };
    let (status, problem) = refused(json!({"items": [{"sku": "not a sku!", "qty": 0}]})).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["type"], "/problems/invalid-edit", "{problem}");
    let fields = error_fields(&problem);
    assert!(fields.contains(&"/value/items/0/sku"), "{problem}");
    assert!(fields.contains(&"/value/items/0/qty"), "{problem}");
    // Every error is listed, and a patch may not move the record to another order.
    let (status, problem) = refused(json!({"orderId": id + 1, "items": []})).await;
    assert_eq!(status, 422, "{problem}");
    let fields = error_fields(&problem);
    assert!(fields.contains(&"/value/orderId"), "{problem}");
    assert!(fields.contains(&"/value/items"), "{problem}");
    // A patch edits one dead letter, named by its position.
    let (status, problem) = admin(
        stack,
        reqwest::Method::POST,
        "/admin/dlt/replay",
        Some(json!({"topic": dlt_topic, "orderId": id, "patch": {"userId": 7}})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "/patch", "{problem}");

    // Nothing was sent, nothing is in the ledger, the order is as it was. Each refusal was
    // answered, and a replay answers once its record is delivered: one sent for any of
    // them is on order.created by now, read to its end.
    let records = stack
        .records_with_key_to_end(&stack.topics().order_created(), &id.to_string())
        .await;
    assert_eq!(records.len(), 1, "only the original");
    assert_eq!(dead_letters_of(stack, id, 1).await[0]["replayed"], 0);
    assert_eq!(stack.order(id).await["status"], "FAILED");
}
