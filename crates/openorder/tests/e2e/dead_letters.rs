//! Dead letters people can act on, on real brokers: list, show and replay over HTTP and the
//! CLI, the replay ledger, the replay cap, and dry runs that change nothing.

use std::time::Duration;

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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, all) = admin(
            stack,
            reqwest::Method::GET,
            &format!("/admin/dlt?topic={topic}"),
            None,
        )
        .await;
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
            "order {order_id} has {} dead letters, want {n}",
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
    // Replayed with the fault still on: it fails again and comes back with replay count 1.
    let first = replay(
        stack,
        json!({"topic": dlt_topic, "orderId": id, "maxReplays": 1}),
    )
    .await;
    assert_eq!(first[0]["outcome"], "replayed");
    let letters = dead_letters_of(stack, id, 2).await;
    let second = letters
        .iter()
        .find(|d| d["replayCount"] == 1)
        .expect("the dead letter of the replay");
    let capped = replay(
        stack,
        json!({"topic": dlt_topic, "partition": second["partition"], "offset": second["offset"], "maxReplays": 1}),
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
}

async fn dead_letters_can_be_acted_on(broker: BrokerKind, db: DbKind) {
    let Some(stack) = Stack::spawn(broker, db, StackOptions::default()).await else {
        eprintln!("skipped: {broker:?} with {db:?} (OPENORDER_TEST_SKIP_EXTERNAL=1)");
        return;
    };
    a_failed_order_replayed_after_the_fault_is_off_is_confirmed_once(&stack).await;
    the_replay_cap_refuses_a_record_replayed_too_often(&stack).await;
    a_dead_letter_without_a_key_is_found_and_replayed_by_the_order_id_in_its_value(&stack).await;
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
