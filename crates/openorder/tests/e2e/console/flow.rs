//! The console's flow on a real stack, on both brokers: topics and a page of records by
//! key, an order's timeline, the lifecycle's picture, an untrusted value escaped, a dead
//! letter listed with its headers decoded, forms refused without their token or from
//! another site, a dry run that changes nothing and a replay from the page, the redrive
//! workbench, and the overview with its charts.

use std::time::Duration;

use super::{titles, Answer, Browser};
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use axum::http::StatusCode;
use serde_json::Value;

async fn the_console_shows_the_flow_and_acts_on_dead_letters(broker: BrokerKind) {
    let Some(stack) = Stack::spawn(broker, DbKind::Sqlite, StackOptions::default()).await else {
        return;
    };
    let mut browser = Browser::new(&stack, Vec::new()).await;
    stack.set_stock("FAIL", 10).await;
    an_order_that_goes_through_shows_its_record_and_timeline(&stack, &mut browser).await;
    an_untrusted_value_shows_as_text(&stack, &mut browser).await;
    let (failing, letter, page) =
        a_failed_order_is_listed_among_the_dead_letters(&stack, &mut browser).await;
    // A POST without the form's token, or from another site, is refused.
    let csrf = page.csrf();
    let position = format!(
        "{}:{}:{}",
        letter["topic"].as_str().unwrap(),
        letter["partition"],
        letter["offset"]
    );
    forms_without_their_token_or_from_another_site_are_refused(&mut browser, &csrf, &position)
        .await;
    a_dry_run_changes_nothing_and_a_replay_is_sent(&stack, &mut browser, &csrf, &position, failing)
        .await;
    the_redrive_workbench_previews_and_refuses_a_bad_edit(&mut browser, &csrf, &letter, failing)
        .await;
    let timeline = browser
        .wait_json(&format!("/api/orders/{failing}/timeline"), |t| {
            t["order"]["status"] == "CONFIRMED"
                && titles(t).iter().any(|n| n.contains("inventory.reserved"))
        })
        .await;
    let names = titles(&timeline);
    assert!(
        names.iter().any(|n| n.starts_with("dead-lettered by")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.contains("replay #1")), "{names:?}");
    the_overview_sees_every_service_ready_and_draws_its_charts(&mut browser).await;
    stack.stop().await;
}

/// An order that goes through: its record, by key, and its timeline; the Orders page
/// draws the lifecycle.
async fn an_order_that_goes_through_shows_its_record_and_timeline(
    stack: &Stack,
    browser: &mut Browser,
) {
    let topics = stack.topics();
    let created = topics.order_created();
    let id = stack.post_order(42, &[("ABC-001", 1)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "CONFIRMED");
    stack.wait_notifications(id).await;
    let listed = browser.get("/api/topics").await.json();
    let topic = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == created)
        .unwrap_or_else(|| panic!("{created} in {listed}"));
    assert!(topic["records"].as_i64().unwrap() >= 1, "{topic}");
    let page = browser
        .get(&format!("/api/topics/{created}/records?key={id}"))
        .await
        .json();
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{page}");
    assert_eq!(records[0]["key"], id.to_string());
    assert_eq!(records[0]["eventType"], contracts::topics::ORDER_CREATED);
    assert_eq!(records[0]["value"]["kind"], "json");
    let timeline = browser
        .wait_json(&format!("/api/orders/{id}/timeline"), |t| {
            t["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "notification")
        })
        .await;
    assert_eq!(timeline["order"]["status"], "CONFIRMED");
    let names = titles(&timeline);
    let at = |s: &str| {
        names
            .iter()
            .position(|t| t.contains(s))
            .unwrap_or_else(|| panic!("{s} in {names:?}"))
    };
    assert!(at("order.created") < at("inventory.reserved"), "{names:?}");
    let reserved = &timeline["entries"][at("inventory.reserved")];
    assert_eq!(reserved["status"], "CONFIRMED");
    assert_eq!(
        reserved["record"]["topic"],
        topics.name(contracts::topics::INVENTORY_RESERVED)
    );
    let html = browser.get(&format!("/orders/{id}")).await;
    assert_eq!(html.status, StatusCode::OK);
    html.assert_shows("stock reserved (inventory.reserved)");
    // The Orders page draws the lifecycle from the table, as the table generates it.
    let orders = browser.get("/orders").await;
    assert_eq!(orders.status, StatusCode::OK);
    assert!(
        orders.body.contains(&contracts::lifecycle::svg()),
        "the Orders page shows contracts::lifecycle::svg()"
    );
}

/// A record whose value is markup shows as text.
async fn an_untrusted_value_shows_as_text(stack: &Stack, browser: &mut Browser) {
    let created = stack.topics().order_created();
    stack
        .produce_raw(&created, "evil", b"<script>alert(1)</script>", &[])
        .await;
    let html = browser.get(&format!("/topics/{created}?key=evil")).await;
    assert_eq!(html.status, StatusCode::OK);
    html.assert_shows("&lt;script&gt;alert(1)&lt;/script&gt;");
    html.assert_lacks("<script>alert(1)");
}

/// An order with FAIL is dead-lettered; the page lists it with its headers decoded.
/// Returns the order, its dead letter (as the records API shows it) and the page.
async fn a_failed_order_is_listed_among_the_dead_letters(
    stack: &Stack,
    browser: &mut Browser,
) -> (i64, Value, Answer) {
    let dlt = stack.topics().order_created_dlt();
    let failing = stack.post_order(42, &[("FAIL", 1)]).await;
    let letters = browser
        .wait_json(&format!("/api/topics/{dlt}/records?key={failing}"), |p| {
            !p["records"].as_array().unwrap().is_empty()
        })
        .await;
    let letter = letters["records"][0].clone();
    let header = |name: &str| {
        letter["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {letter}"))["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    header(contracts::headers::DLT_ORIGINAL_OFFSET)
        .parse::<i64>()
        .expect("the original offset as a number");
    let page = browser.get("/dead-letters").await;
    page.assert_shows(&format!("href=\"/orders/{failing}\""));
    (failing, letter, page)
}

/// A POST without the form's token, or from another site, is refused.
async fn forms_without_their_token_or_from_another_site_are_refused(
    browser: &mut Browser,
    csrf: &str,
    position: &str,
) {
    let refused = browser
        .post(
            "/dead-letters/replay",
            &[("csrf", "wrong"), ("pick", position), ("mode", "replay")],
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let refused = browser
        .post(
            "/dead-letters/replay",
            &[("csrf", csrf), ("pick", position), ("mode", "replay")],
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
}

/// Fault off, a dry run of the dead letter at `position` changes nothing, a replay of it
/// is sent.
async fn a_dry_run_changes_nothing_and_a_replay_is_sent(
    stack: &Stack,
    browser: &mut Browser,
    csrf: &str,
    position: &str,
    failing: i64,
) {
    let off = browser
        .post(
            "/dead-letters/faults",
            &[("csrf", csrf), ("set", "off")],
            Some("http://console.test"),
        )
        .await;
    off.assert_shows("Faults set");
    let dry = browser
        .post(
            "/dead-letters/replay",
            &[
                ("csrf", csrf),
                ("which", "picked"),
                ("pick", position),
                ("mode", "dry-run"),
            ],
            None,
        )
        .await;
    dry.assert_shows("would-replay");
    // Had the dry run written the record again, it would have confirmed the order by the
    // time sentinels behind it on its partition are through inventory- and order-service.
    stack.decision_sentinel(&failing.to_string()).await;
    assert_eq!(stack.order(failing).await["status"], "FAILED");
    let done = browser
        .post(
            "/dead-letters/replay",
            &[
                ("csrf", csrf),
                ("which", "picked"),
                ("pick", position),
                ("mode", "replay"),
            ],
            None,
        )
        .await;
    done.assert_shows(">replayed<");
}

/// The redrive workbench: the parking lot's tab, the filter, a preview that counts what
/// it matches, and an edit the schema refuses, its errors beside the patch, escaped.
async fn the_redrive_workbench_previews_and_refuses_a_bad_edit(
    browser: &mut Browser,
    csrf: &str,
    letter: &Value,
    failing: i64,
) {
    let lot = browser.get("/dead-letters?view=parked").await;
    assert_eq!(lot.status, StatusCode::OK);
    lot.assert_shows("Parking lot");
    let filtered = browser
        .get("/dead-letters?class=openorder.SimulatedFailure&match=fault+injection")
        .await;
    assert!(
        filtered
            .body
            .contains(&format!("href=\"/orders/{failing}\"")),
        "{}",
        filtered.body
    );
    let other = browser
        .get("/dead-letters?class=openorder.NoSuchClass")
        .await;
    other.assert_shows("No dead letters match.");
    let preview = browser
        .post(
            "/dead-letters/redrive",
            &[
                ("csrf", csrf),
                ("class", "openorder.SimulatedFailure"),
                ("match", "fault injection"),
                ("mode", "dry-run"),
            ],
            None,
        )
        .await;
    preview.assert_shows("1 matched");
    let (topic, partition, offset) = (
        letter["topic"].as_str().unwrap(),
        letter["partition"].to_string(),
        letter["offset"].to_string(),
    );
    let edit = browser
        .get(&format!(
            "/dead-letters/edit?topic={topic}&partition={partition}&offset={offset}"
        ))
        .await;
    assert_eq!(edit.status, StatusCode::OK);
    edit.assert_shows("<textarea");
    let refused = browser
        .post(
            "/dead-letters/edit",
            &[
                ("csrf", csrf),
                ("topic", topic),
                ("partition", &partition),
                ("offset", &offset),
                ("patch", r#"{"items":[{"sku":"<b>bad</b>","qty":1}]}"#),
                ("mode", "replay"),
            ],
            None,
        )
        .await;
    refused.assert_shows("/value/items/0/sku");
    refused.assert_shows("Nothing was sent.");
    refused.assert_lacks("<b>bad</b>");
    let forged = browser
        .post(
            "/dead-letters/edit",
            &[
                ("csrf", "wrong"),
                ("topic", topic),
                ("partition", &partition),
                ("offset", &offset),
                ("patch", "{}"),
                ("mode", "replay"),
            ],
            None,
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
}

/// The overview sees every service ready and the topic's records; its charts draw
/// inventory-service's consumer of order.created and order-service's outbox as lines, the
/// consumer's estimate beside; the samples as JSON.
async fn the_overview_sees_every_service_ready_and_draws_its_charts(browser: &mut Browser) {
    let overview = browser.get("/api/overview").await.json();
    assert!(
        overview["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["ready"] == true),
        "{overview}"
    );
    assert!(overview["deadLetters"].as_i64().unwrap() >= 1, "{overview}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page = browser.get("/").await;
        assert_eq!(page.status, StatusCode::OK);
        let consumer = chart(&page.body, "consumer:inventory-order-events");
        let outbox = chart(&page.body, "outbox:order-service");
        if consumer.is_some_and(|c| c.contains("<polyline"))
            && outbox.is_some_and(|c| c.contains("<polyline"))
        {
            page.assert_shows("Lag in time");
            assert!(
                ["caught up", "clears in", "growing by", "not draining"]
                    .iter()
                    .any(|estimate| page.body.contains(estimate)),
                "{}",
                page.body
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no lines in the overview's charts in 60 s: {}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let history = browser.get("/api/history").await.json();
    assert_eq!(history["everyMs"], 500, "{history}");
    let samples = history["samples"].as_array().unwrap();
    assert!(samples.len() >= 2, "{history}");
    let latest = &samples[samples.len() - 1];
    assert!(latest["atMs"].as_i64().unwrap() > 0, "{latest}");
    assert!(
        latest["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "order-service" && s["gauges"]["outboxRows"].is_number()),
        "{latest}"
    );
}

/// The overview's chart `id` (its `<svg data-chart="…">` to its `</svg>`), if it has one.
fn chart<'a>(page: &'a str, id: &str) -> Option<&'a str> {
    let start = page.find(&format!("data-chart=\"{id}\""))?;
    let end = start + page[start..].find("</svg>")?;
    Some(&page[start..end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_on_the_embedded_broker_shows_the_flow_and_acts_on_dead_letters() {
    the_console_shows_the_flow_and_acts_on_dead_letters(BrokerKind::Tansu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_on_kafka_shows_the_flow_and_acts_on_dead_letters() {
    the_console_shows_the_flow_and_acts_on_dead_letters(BrokerKind::Kafka).await;
}
