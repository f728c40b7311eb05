//! Dead letters people can act on, on real brokers: list, show and replay over HTTP and the
//! CLI, the replay ledger, the replay cap, and dry runs that change nothing; the redrive
//! workbench: an edited replay (a merge patch checked against the schema), bulk redrives by
//! filter (counted by a dry run, paced by a rate), the parking lot a replay that fails
//! again lands in, and the automatic redrive policy, which stops at its cap.

use std::time::Duration;

use crate::support;
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use serde_json::{json, Value};

async fn admin(
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = stack
        .http
        .request(method, format!("{}{path}", stack.inventory_url));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Switches the FAIL fault alone: a body naming one switch leaves the other as it is.
async fn set_faults(stack: &Stack, fail: &str) {
    let (status, faults) = admin(
        stack,
        reqwest::Method::PUT,
        "/admin/faults",
        Some(json!({"failSku": fail})),
    )
    .await;
    assert_eq!(status, 200, "{faults}");
    assert_eq!(faults, json!({"failSku": fail, "flakySku": "FLAKY"}));
    let (_, now) = admin(stack, reqwest::Method::GET, "/admin/faults", None).await;
    assert_eq!(now, faults);
}

async fn replay(stack: &Stack, body: Value) -> Vec<Value> {
    let (status, results) = admin(
        stack,
        reqwest::Method::POST,
        "/admin/dlt/replay",
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{results}");
    results.as_array().unwrap().clone()
}

/// Waits until `order_id` has `n` dead letters; returns their summaries.
async fn dead_letters_of(stack: &Stack, order_id: i64, n: usize) -> Vec<Value> {
    let topic = stack.topics().order_created_dlt();
    listed_of(stack, &format!("/admin/dlt?topic={topic}"), order_id, n).await
}

/// Waits until `order_id` has `n` records in `order.created`'s parking lot; returns their
/// summaries.
async fn parked_of(stack: &Stack, order_id: i64, n: usize) -> Vec<Value> {
    let topic = parked_topic(stack);
    listed_of(stack, &format!("/admin/dlt?topic={topic}"), order_id, n).await
}

/// `order.created.PARKED` behind the stack's prefix.
fn parked_topic(stack: &Stack) -> String {
    contracts::Topics::parked_of(&stack.topics().order_created())
}

/// Waits until the list at `path` has `n` entries of `order_id`; returns them.
async fn listed_of(stack: &Stack, path: &str, order_id: i64, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, all) = admin(stack, reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "{all}");
        let mine: Vec<Value> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["orderId"] == order_id)
            .cloned()
            .collect();
        if mine.len() >= n {
            return mine;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {order_id} has {} entries in {path}, want {n}",
            mine.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_failed_order_replayed_after_the_fault_is_off_is_confirmed_once(stack: &Stack) {
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

async fn the_replay_cap_refuses_a_record_replayed_too_often(stack: &Stack) {
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

async fn a_dead_letter_without_a_key_is_found_and_replayed_by_the_order_id_in_its_value(
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

/// The record of `order.created` that a replay sent for `order_id`: the last one keyed by it.
async fn replayed_record(stack: &Stack, order_id: i64, n: usize) -> support::DltRecord {
    let mut records = stack
        .records_with_key(
            &stack.topics().order_created(),
            &order_id.to_string(),
            Duration::from_secs(60),
            n,
        )
        .await;
    assert_eq!(records.len(), n, "order {order_id}'s records");
    records.pop().unwrap()
}

/// Waits until order `id` is `status`.
async fn order_becomes(stack: &Stack, id: i64, status: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stack.order(id).await["status"] != status {
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} not {status}: {}",
            stack.order(id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn an_edited_replay_of_an_order_whose_sku_was_wrong_confirms_it(stack: &Stack) {
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

async fn a_patch_that_breaks_the_schema_is_refused_and_sends_nothing(stack: &Stack) {
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
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(fields.contains(&"/value/items/0/sku"), "{problem}");
    assert!(fields.contains(&"/value/items/0/qty"), "{problem}");
    // Every error is listed, and a patch may not move the record to another order.
    let (status, problem) = refused(json!({"orderId": id + 1, "items": []})).await;
    assert_eq!(status, 422, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
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

    // Nothing was sent, nothing is in the ledger, the order is as it was.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let records = stack
        .records_with_key(
            &stack.topics().order_created(),
            &id.to_string(),
            Duration::from_secs(3),
            2,
        )
        .await;
    assert_eq!(records.len(), 1, "only the original");
    assert_eq!(dead_letters_of(stack, id, 1).await[0]["replayed"], 0);
    assert_eq!(stack.order(id).await["status"], "FAILED");
}

/// Produces `n` dead letters of class `class` to `order.created.DLT`, of orders
/// `first_order..first_order + n`, whose message says `note <i>`; their values are no
/// valid `order.created` (a replay of them fails and is parked).
async fn produce_dead_letters(stack: &Stack, class: &str, note: &str, first_order: i64, n: i64) {
    let dlt_topic = stack.topics().order_created_dlt();
    let original = stack.topics().order_created();
    for i in 0..n {
        let order_id = first_order + i;
        let value = json!({"orderId": order_id, "note": note}).to_string();
        let message = format!("{note} {i}");
        stack
            .produce_with(
                &dlt_topic,
                Some(&order_id.to_string()),
                value.as_bytes(),
                &[
                    ("kafka_dlt-original-topic", &original),
                    ("kafka_dlt-exception-fqcn", class),
                    ("kafka_dlt-exception-message", &message),
                ],
                &[],
            )
            .await;
    }
}

async fn redrive(stack: &Stack, body: Value) -> Value {
    let (status, report) = admin(
        stack,
        reqwest::Method::POST,
        "/admin/dlt/redrive",
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    report
}

async fn a_bulk_dry_run_counts_exactly_the_filtered_set(stack: &Stack) {
    let class = format!("openorder.BulkTest{}", rand::random_range(0..1_000_000u32));
    produce_dead_letters(stack, &class, "bulk", 990_000_001, 5).await;
    produce_dead_letters(stack, "openorder.OtherTest", "bulk", 990_000_101, 2).await;
    // Listed by the same filter once all are there.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, listed) = admin(
            stack,
            reqwest::Method::GET,
            &format!("/admin/dlt?class={class}&limit=1000"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{listed}");
        if listed.as_array().unwrap().len() == 5 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dry = redrive(stack, json!({"class": class, "dryRun": true})).await;
    assert_eq!(dry["matched"], 5, "{dry}");
    assert_eq!(dry["selected"], 5, "{dry}");
    assert_eq!(dry["wouldReplay"], 5, "{dry}");
    assert_eq!(dry["replayed"], 0, "{dry}");
    let mut ids: Vec<i64> = dry["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["outcome"], "would-replay", "{r}");
            r["orderId"].as_i64().unwrap()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, (990_000_001..=990_000_005).collect::<Vec<i64>>());
    // Each criterion narrows it.
    let narrowed = redrive(
        stack,
        json!({"class": class, "orderIds": "990000002-990000003", "dryRun": true}),
    )
    .await;
    assert_eq!(narrowed["matched"], 2, "{narrowed}");
    let one = redrive(
        stack,
        json!({"class": class, "match": "BULK 4", "dryRun": true}),
    )
    .await;
    assert_eq!(one["matched"], 1, "{one}");
    assert_eq!(one["results"][0]["orderId"], 990_000_005);
    let none = redrive(
        stack,
        json!({"class": class, "originalTopic": "order.cancelled", "dryRun": true}),
    )
    .await;
    assert_eq!(none["matched"], 0, "{none}");
    let later = redrive(
        stack,
        json!({"class": class, "since": "2099-01-01T00:00:00Z", "dryRun": true}),
    )
    .await;
    assert_eq!(later["matched"], 0, "{later}");
    let bounded = redrive(stack, json!({"class": class, "limit": 2, "dryRun": true})).await;
    assert_eq!(bounded["matched"], 5, "{bounded}");
    assert_eq!(bounded["selected"], 2, "{bounded}");
    assert_eq!(bounded["truncated"], true, "{bounded}");
    // Bad fields are named.
    let (status, problem) = admin(
        stack,
        reqwest::Method::POST,
        "/admin/dlt/redrive",
        Some(json!({"orderIds": "b-a", "since": "yesterday", "rate": 0, "limit": 1001})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    for field in ["/orderIds", "/since", "/rate", "/limit"] {
        assert!(fields.contains(&field), "{field}: {problem}");
    }
    // Nothing was sent.
    let (_, listed) = admin(
        stack,
        reqwest::Method::GET,
        &format!("/admin/dlt?class={class}"),
        None,
    )
    .await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["replayed"] == 0),
        "{listed}"
    );
}

async fn a_redrive_at_50_records_a_second_takes_no_less_than_the_rate_allows(stack: &Stack) {
    let n: i64 = 26;
    let class = format!("openorder.RateTest{}", rand::random_range(0..1_000_000u32));
    produce_dead_letters(stack, &class, "rate", 990_001_001, n).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while redrive(stack, json!({"class": class, "dryRun": true})).await["matched"] != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead letters did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = std::time::Instant::now();
    let report = redrive(stack, json!({"class": class, "rate": 50, "by": "test"})).await;
    let took = started.elapsed();
    assert_eq!(report["replayed"], n, "{report}");
    let least = Duration::from_secs_f64((n - 1) as f64 / 50.0);
    assert!(
        took >= least,
        "{n} records at 50/s took {took:?}, less than {least:?}"
    );
    assert!(
        report["elapsedMs"].as_u64().unwrap() >= least.as_millis() as u64,
        "{report}"
    );
    // Each is in the ledger: the same redrive again sends nothing.
    let again = redrive(stack, json!({"class": class, "rate": 50})).await;
    assert_eq!(again["replayed"], 0, "{again}");
    assert_eq!(again["matched"], n, "{again}");
}

async fn a_replay_that_fails_again_lands_in_the_parking_lot_not_the_dlt(stack: &Stack) {
    let dlt_topic = stack.topics().order_created_dlt();
    let id = stack.post_order(7, &[("FAIL", 1)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "FAILED");
    let letter = dead_letters_of(stack, id, 1).await.remove(0);
    assert_eq!(letter["failureKind"], "transient", "{letter}");
    assert_eq!(
        letter["errorClass"], "openorder.SimulatedFailure",
        "{letter}"
    );
    assert_eq!(letter["parked"], false);
    // Replayed with the fault still on: it fails again, and is parked.
    let done = replay(
        stack,
        json!({"topic": dlt_topic, "partition": letter["partition"], "offset": letter["offset"], "by": "test"}),
    )
    .await;
    assert_eq!(done[0]["outcome"], "replayed");
    let parked = parked_of(stack, id, 1).await.remove(0);
    assert_eq!(parked["parked"], true, "{parked}");
    assert_eq!(parked["replayCount"], 1, "{parked}");
    assert_eq!(parked["attempts"], 3, "{parked}");
    assert_eq!(parked["history"].as_array().unwrap().len(), 1, "{parked}");
    let step = &parked["history"][0];
    assert_eq!(
        step["from"],
        format!("{dlt_topic}/{}/{}", letter["partition"], letter["offset"])
    );
    assert_eq!(step["by"], "test");
    assert_eq!(step["attempts"], 3);
    assert!(
        step["error"].as_str().unwrap().contains("SimulatedFailure"),
        "{step}"
    );
    // Listed apart: the parking lots with `parked=true`, not among the dead letters.
    let (status, lot) = admin(
        stack,
        reqwest::Method::GET,
        &format!("/admin/dlt?parked=true&orderIds={id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{lot}");
    assert!(
        lot.as_array().unwrap().iter().any(|d| d["orderId"] == id),
        "{lot}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        dead_letters_of(stack, id, 1).await.len(),
        1,
        "not back in the DLT"
    );
    assert_eq!(stack.order(id).await["status"], "FAILED");

    // Redriven deliberately from the parking lot, with the fault off, the order is confirmed.
    set_faults(stack, "").await;
    let again = replay(
        stack,
        json!({"topic": parked_topic(stack), "partition": parked["partition"], "offset": parked["offset"], "by": "test"}),
    )
    .await;
    assert_eq!(again[0]["outcome"], "replayed", "{again:?}");
    assert_eq!(again[0]["replayCount"], 2);
    assert_eq!(again[0]["targetTopic"], stack.topics().order_created());
    order_becomes(stack, id, "CONFIRMED").await;
    set_faults(stack, "FAIL").await;
}

async fn the_cli_lists_and_shows_the_same_dead_letters(stack: &Stack) {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_openorder"))
            .arg("dlt")
            .args(args)
            .args(["--bootstrap-servers", &stack.broker.bootstrap])
            .args(["--topic-prefix", stack.topics().prefix()])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let listed: Vec<Value> = serde_json::from_str(&run(&["list", "--json"])).unwrap();
    assert!(listed.len() >= 3, "{listed:?}");
    let first = &listed[0];
    let table = run(&["list"]);
    assert!(table.contains("SimulatedFailure"), "{table}");
    let shown: Value = serde_json::from_str(&run(&[
        "show",
        first["topic"].as_str().unwrap(),
        &format!("{}:{}", first["partition"], first["offset"]),
    ]))
    .unwrap();
    assert_eq!(shown["summary"]["orderId"], first["orderId"]);
    let dry = run(&[
        "replay",
        first["topic"].as_str().unwrap(),
        "--all",
        "--dry-run",
    ]);
    assert!(dry.contains("0 replayed"), "{dry}");

    // The parking lots, and a filter, over the CLI as over HTTP.
    let parked: Vec<Value> = serde_json::from_str(&run(&["list", "--parked", "--json"])).unwrap();
    assert!(!parked.is_empty(), "earlier replays were parked");
    assert!(parked.iter().all(|d| d["parked"] == true), "{parked:?}");
    let simulated: Vec<Value> = serde_json::from_str(&run(&[
        "list",
        "--json",
        "--class",
        "openorder.SimulatedFailure",
    ]))
    .unwrap();
    assert!(!simulated.is_empty());
    assert!(
        simulated
            .iter()
            .all(|d| d["errorClass"] == "openorder.SimulatedFailure"),
        "{simulated:?}"
    );
    let bulk = run(&[
        "replay",
        "--class",
        "openorder.SimulatedFailure",
        "--match",
        "fault injection",
        "--dry-run",
    ]);
    assert!(
        bulk.contains(&format!("{} matched", simulated.len())),
        "{bulk}"
    );
    // An edit that breaks the schema fails, saying where, and sends nothing.
    let letter = &simulated[0];
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_openorder"))
        .args(["dlt", "replay", letter["topic"].as_str().unwrap()])
        .args([
            "--offset",
            &format!("{}:{}", letter["partition"], letter["offset"]),
        ])
        .args(["--patch", r#"{"items":[{"sku":"not a sku!","qty":1}]}"#])
        .args(["--bootstrap-servers", &stack.broker.bootstrap])
        .args(["--topic-prefix", stack.topics().prefix()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("/items/0/sku"), "{said}");
}

async fn dead_letters_can_be_acted_on(broker: BrokerKind, db: DbKind) {
    let Some(stack) = Stack::spawn(broker, db, StackOptions::default()).await else {
        eprintln!("skipped: {broker:?} with {db:?} (OPENORDER_TEST_SKIP_EXTERNAL=1)");
        return;
    };
    a_failed_order_replayed_after_the_fault_is_off_is_confirmed_once(&stack).await;
    the_replay_cap_refuses_a_record_replayed_too_often(&stack).await;
    a_dead_letter_without_a_key_is_found_and_replayed_by_the_order_id_in_its_value(&stack).await;
    an_edited_replay_of_an_order_whose_sku_was_wrong_confirms_it(&stack).await;
    a_patch_that_breaks_the_schema_is_refused_and_sends_nothing(&stack).await;
    a_bulk_dry_run_counts_exactly_the_filtered_set(&stack).await;
    a_redrive_at_50_records_a_second_takes_no_less_than_the_rate_allows(&stack).await;
    a_replay_that_fails_again_lands_in_the_parking_lot_not_the_dlt(&stack).await;
    the_cli_lists_and_shows_the_same_dead_letters(&stack).await;
    stack.stop().await;
}

crate::backends!(dead_letters_can_be_acted_on {
    dead_letters_can_be_acted_on_with_tansu_and_sqlite => (Tansu, Sqlite),
    dead_letters_can_be_acted_on_with_apache_kafka_and_postgres => (Kafka, Postgres),
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_request_must_say_which_dead_letters() {
    let stack = Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, StackOptions::default())
        .await
        .expect("the embedded broker needs nothing external");
    let topic = stack.topics().order_created_dlt();
    let (status, problem) = admin(
        &stack,
        reqwest::Method::POST,
        "/admin/dlt/replay",
        Some(json!({"topic": topic})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let (status, _) = admin(
        &stack,
        reqwest::Method::POST,
        "/admin/dlt/replay",
        Some(json!({"topic": "order.created", "all": true})),
    )
    .await;
    assert_eq!(status, 422, "only DLT topics replay");
    let (status, _) = admin(
        &stack,
        reqwest::Method::POST,
        "/admin/dlt/replay",
        Some(json!({"topic": topic, "partition": 0, "offset": 99})),
    )
    .await;
    assert_eq!(status, 404);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_api_reads_only_this_deployments_dead_letter_topics_and_bounds_a_list() {
    let stack = Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, StackOptions::default())
        .await
        .expect("the embedded broker needs nothing external");
    let topics = stack.topics();
    let id = stack.post_order(42, &[("FAIL", 1)]).await;
    dead_letters_of(&stack, id, 1).await;
    let get = |path: String| {
        let stack = &stack;
        async move { admin(stack, reqwest::Method::GET, &path, None).await }
    };
    // Not a dead-letter topic, or another deployment's: refused, nothing read.
    for topic in [
        topics.order_created(),
        "order.created.DLT".to_string(),
        format!("{}.DLT", topics.prefix()),
    ] {
        let (status, problem) = get(format!("/admin/dlt?topic={topic}")).await;
        assert_eq!(status, 422, "{topic}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "topic", "{problem}");
        let (status, _) = get(format!("/admin/dlt/{topic}/0/0")).await;
        assert_eq!(status, 404, "{topic}");
    }
    let (status, problem) = admin(
        &stack,
        reqwest::Method::POST,
        "/admin/dlt/replay",
        Some(json!({"topic": topics.order_created(), "all": true})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    // A list is bounded: limit 1 answers one; 0 and past the cap are refused.
    let dlt = topics.order_created_dlt();
    let (status, one) = get(format!("/admin/dlt?topic={dlt}&limit=1")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one.as_array().unwrap().len(), 1);
    for limit in ["0", "1001", "x"] {
        let (status, problem) = get(format!("/admin/dlt?topic={dlt}&limit={limit}")).await;
        assert_eq!(status, 400, "{limit}: {problem}");
    }
    // One dead letter shown by its position; a position past the end is 404.
    let (status, shown) = get(format!(
        "/admin/dlt/{dlt}/{}/{}",
        one[0]["partition"], one[0]["offset"]
    ))
    .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["summary"]["orderId"], id);
    let (status, _) = get(format!("/admin/dlt/{dlt}/0/999999")).await;
    assert_eq!(status, 404);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automatic_redrive_policy_redrives_transient_failures_and_stops_at_its_cap() {
    let options = StackOptions {
        auto_redrive: inventory_service::AutoRedriveArgs {
            auto_redrive: true,
            auto_redrive_after: Duration::from_secs(1),
            auto_redrive_max_replays: 2,
            auto_redrive_per_minute: 60,
            auto_redrive_classes: Vec::new(),
        },
        ..Default::default()
    };
    let stack = Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, options)
        .await
        .expect("the embedded broker needs nothing external");
    let id = stack.post_order(8, &[("FAIL", 1)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "FAILED");
    // Redriven from the DLT (it fails again: parked, count 1), then from the parking lot
    // (parked again, count 2), then no more: 2 is the cap.
    let parked = parked_of(&stack, id, 2).await;
    let mut counts: Vec<i64> = parked
        .iter()
        .map(|d| d["replayCount"].as_i64().unwrap())
        .collect();
    counts.sort();
    assert_eq!(counts, [1, 2], "{parked:?}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let parked = parked_of(&stack, id, 2).await;
    assert_eq!(parked.len(), 2, "stopped at the cap: {parked:?}");
    let last = parked.iter().find(|d| d["replayCount"] == 2).unwrap();
    assert_eq!(last["replayed"], 0, "the last one waits for a person");
    let history = last["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{last}");
    assert!(history.iter().all(|h| h["by"] == "auto-redrive"), "{last}");
    assert_eq!(dead_letters_of(&stack, id, 1).await.len(), 1);
    let redriven = format!(
        "openorder_records_auto_redriven_total{{topic=\"{}\"}}",
        stack.topics().order_created()
    );
    assert_eq!(stack.metric(&stack.inventory_url, &redriven).await, 2);
    // A permanent failure is not redriven.
    let value = json!({"orderId": 990_002_001, "note": "undecodable"}).to_string();
    stack
        .produce_with(
            &stack.topics().order_created(),
            Some("990002001"),
            value.as_bytes(),
            &[],
            &[],
        )
        .await;
    let letters = dead_letters_of(&stack, 990_002_001, 1).await;
    assert_eq!(letters[0]["failureKind"], "permanent", "{letters:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        dead_letters_of(&stack, 990_002_001, 1).await[0]["replayed"],
        0
    );
    stack.stop().await;
}
