//! Many dead letters at a time, and where they go: bulk redrives by filter (counted
//! exactly by a dry run, paced by a rate), the parking lot a replay that fails again lands
//! in (and is redriven from deliberately), and the CLI's list, show and replay.

use std::time::Duration;

use super::{
    admin, dead_letters_of, dry_redrive, error_fields, order_becomes, parked_of, parked_topic,
    produce_dead_letters, redrive, replay, set_faults,
};
use crate::support::Stack;
use serde_json::{json, Value};

pub(super) async fn a_bulk_dry_run_counts_exactly_the_filtered_set(stack: &Stack) {
    let class = format!("openorder.BulkTest{}", rand::random_range(0..1_000_000u32));
    produce_dead_letters(stack, &class, "bulk", 990_000_001, 5).await;
    produce_dead_letters(stack, "openorder.OtherTest", "bulk", 990_000_101, 2).await;
    listed_by_class(stack, &class, 5).await;
    let dry = dry_redrive(stack, json!({"class": class})).await;
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
    let narrowed = dry_redrive(
        stack,
        json!({"class": class, "orderIds": "990000002-990000003"}),
    )
    .await;
    assert_eq!(narrowed["matched"], 2, "{narrowed}");
    let one = dry_redrive(stack, json!({"class": class, "match": "BULK 4"})).await;
    assert_eq!(one["matched"], 1, "{one}");
    assert_eq!(one["results"][0]["orderId"], 990_000_005);
    let none = dry_redrive(
        stack,
        json!({"class": class, "originalTopic": "order.cancelled"}),
    )
    .await;
    assert_eq!(none["matched"], 0, "{none}");
    let later = dry_redrive(
        stack,
        json!({"class": class, "since": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(later["matched"], 0, "{later}");
    let bounded = dry_redrive(stack, json!({"class": class, "limit": 2})).await;
    assert_eq!(bounded["matched"], 5, "{bounded}");
    assert_eq!(bounded["selected"], 2, "{bounded}");
    assert_eq!(bounded["truncated"], true, "{bounded}");
    bad_redrive_fields_are_named_and_nothing_was_sent(stack, &class).await;
}

pub(super) async fn a_redrive_at_50_records_a_second_takes_no_less_than_the_rate_allows(
    stack: &Stack,
) {
    let n: i64 = 26;
    let class = format!("openorder.RateTest{}", rand::random_range(0..1_000_000u32));
    produce_dead_letters(stack, &class, "rate", 990_001_001, n).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while dry_redrive(stack, json!({"class": class})).await["matched"] != n {
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

pub(super) async fn a_replay_that_fails_again_lands_in_the_parking_lot_not_the_dlt(stack: &Stack) {
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
    // Its replay is finished once inventory-service is past a sentinel behind it: a dead
    // letter of it would be in the DLT by then.
    stack.order_created_sentinel(&id.to_string()).await;
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

pub(super) async fn the_cli_lists_and_shows_the_same_dead_letters(stack: &Stack) {
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

/// Waits until the dead letters of class `class` listed are `n` (all there); the same
/// filter as the bulk redrive's.
async fn listed_by_class(stack: &Stack, class: &str, n: usize) {
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
        if listed.as_array().unwrap().len() == n {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A redrive with bad fields is refused, each named; nothing of class `class` was sent by
/// the dry runs before.
async fn bad_redrive_fields_are_named_and_nothing_was_sent(stack: &Stack, class: &str) {
    // Bad fields are named.
    let (status, problem) = admin(
        stack,
        reqwest::Method::POST,
        "/admin/dlt/redrive",
        Some(json!({"orderIds": "b-a", "since": "yesterday", "rate": 0, "limit": 1001})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let fields = error_fields(&problem);
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
