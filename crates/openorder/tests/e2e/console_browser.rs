//! The console in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, which `scripts/test.sh` installs) over WebDriver, against `openorder
//! up`. An operator signs in, places an order with the form and sees its timeline fill in;
//! an order with `FAIL` is listed among the dead letters, its record's headers decoded; the
//! fault is switched off and the letter replayed from the page, and the timeline shows the
//! replay and CONFIRMED; a record whose value is `<script>` shows as text; the overview's
//! counters move without a reload, and its "Lag in time" charts draw inventory-service's
//! consumer and order-service's outbox as lines; the timeline shows the user's notification
//! preferences, the Orders page counts orders by state and the Stuck orders page lists none.
//! Each page is photographed on the way (`OPENORDER_TEST_WRITE_SCREENSHOTS=1` writes them to
//! `docs/console/`, as the README shows).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support;
use crate::support::webdriver::Browser;
use crate::support::{UpPorts, UpProcess};
use rdkafka::producer::{FutureProducer, FutureRecord};

fn screenshots() -> PathBuf {
    if std::env::var_os("OPENORDER_TEST_WRITE_SCREENSHOTS").is_some() {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/console"))
    } else {
        support::temp_dir("console-screenshots")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_follows_an_order_replays_its_dead_letter_and_watches_the_flow_in_a_browser() {
    let Some(chromium) = support::external("OPENORDER_TEST_CHROMIUM") else {
        return;
    };
    let Some(browser) = Browser::start(&chromium).await else {
        panic!(
            "no chromedriver: run the tests with scripts/test.sh, which installs chromium-driver"
        );
    };
    let shots = screenshots();
    let data = support::temp_dir("console-up");
    let ports = UpPorts::free().expect("free ports");
    // The overview's charts sampled often, so that they have lines soon.
    let every = [("OPENORDER_CONSOLE_HISTORY_EVERY", "500ms")];
    let up = UpProcess::start_with_env(&data, &ports, &every).await;
    let console = up.console_url.clone();
    let token = std::fs::read_to_string(data.join("operator-token"))
        .unwrap()
        .trim()
        .to_string();

    signs_in_with_the_token_up_made(&browser, &console, &token).await;
    sets_stock_for_fail(&browser, &shots).await;
    an_order_from_the_form_opens_its_timeline(&browser, &console, &shots).await;
    orders_are_counted_and_none_is_stuck(&browser, &console).await;
    let (failing, row) =
        a_failing_order_is_listed_among_the_dead_letters(&browser, &console, &shots).await;
    its_record_shows_its_headers_decoded(&browser, &row, &shots).await;
    a_replay_from_the_page_confirms_it(&browser, &console, &row, failing).await;
    markup_shows_as_text(&browser, &console, &ports, &shots).await;
    the_overview_moves_and_draws_its_charts(&browser, &console, &up, &shots).await;
    browser.quit().await;
    up.stop();
}

/// Every page asks to sign in first; the token of `up` lets the operator in.
async fn signs_in_with_the_token_up_made(browser: &Browser, console: &str, token: &str) {
    browser.open(&format!("{console}/stock")).await;
    assert!(browser.url().await.contains("/sign-in?next=%2Fstock"));
    browser.fill("input[name=token]", token).await;
    browser.click("#sign-in button").await;
    // The click answers before the browser has followed the sign-in's redirect.
    let url = browser.wait_url(|url| url.ends_with("/stock")).await;
    assert!(url.ends_with("/stock"), "{url}");
}

/// Stock for FAIL, so that its order is confirmed once replayed.
async fn sets_stock_for_fail(browser: &Browser, shots: &Path) {
    browser.fill("form.setstock input[name=sku]", "FAIL").await;
    browser
        .fill("form.setstock input[name=available]", "10")
        .await;
    browser.click("form.setstock button").await;
    browser
        .wait_text("tr[data-sku=FAIL]", false, |t| t.contains("10"))
        .await;
    browser.screenshot(&shots.join("stock.png")).await;
}

/// An order from the form opens its timeline, which fills in, its user's notification
/// preferences beside.
async fn an_order_from_the_form_opens_its_timeline(browser: &Browser, console: &str, shots: &Path) {
    browser.open(&format!("{console}/try")).await;
    browser.screenshot(&shots.join("try.png")).await;
    browser.click("#try button[type=submit]").await;
    browser.wait_url(|u| u.contains("/orders/")).await;
    browser
        .wait_text("ol.timeline", true, |t| {
            t.contains("order placed (order.created)")
                && t.contains("stock reserved (inventory.reserved)")
                && t.contains("CONFIRMED")
                && t.contains("notification:")
        })
        .await;
    browser.find("ol.timeline li.delivery").await;
    assert_eq!(browser.text("#order-status").await, "CONFIRMED");
    // Beside its notifications, its user's notification preferences: none set.
    let preferences = browser.text("#preferences").await;
    assert!(
        preferences.contains("None set: the defaults apply."),
        "{preferences}"
    );
    browser.screenshot(&shots.join("order.png")).await;
}

/// The Orders page counts orders by state; the Stuck orders page lists none.
async fn orders_are_counted_and_none_is_stuck(browser: &Browser, console: &str) {
    browser.open(&format!("{console}/orders")).await;
    let confirmed: i64 = browser
        .text("#order-counts [data-count='CONFIRMED']")
        .await
        .parse()
        .unwrap();
    assert!(confirmed >= 1, "{confirmed}");
    browser.open(&format!("{console}/stuck")).await;
    let none = browser.text("#no-stuck-orders").await;
    assert!(none.contains("No order is stuck"), "{none}");
}

/// An order with FAIL is dead-lettered, and listed; returns it and its row's selector.
async fn a_failing_order_is_listed_among_the_dead_letters(
    browser: &Browser,
    console: &str,
    shots: &Path,
) -> (i64, String) {
    browser.open(&format!("{console}/try")).await;
    browser.fill("#try input[aria-label='SKU 1']", "FAIL").await;
    browser
        .fill("#try input[aria-label='quantity 1']", "1")
        .await;
    browser.click("#try button[type=submit]").await;
    let failing: i64 = browser
        .wait_url(|u| u.contains("/orders/"))
        .await
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    browser.open(&format!("{console}/dead-letters")).await;
    let row = format!("tr[data-order='{failing}']");
    browser
        .wait_text(&row, true, |t| t.contains("order.created.DLT"))
        .await;
    browser.screenshot(&shots.join("dead-letters.png")).await;

    (failing, row)
}

/// Its record in the topic browser, headers decoded (binary integers as numbers).
async fn its_record_shows_its_headers_decoded(browser: &Browser, row: &str, shots: &Path) {
    browser.click(&format!("{row} td:nth-child(3) a")).await;
    let headers = browser.text("table.headers").await;
    let offset_line = headers
        .lines()
        .find(|l| l.starts_with("kafka_dlt-original-offset"))
        .unwrap_or_else(|| panic!("kafka_dlt-original-offset in {headers}"));
    offset_line
        .split_whitespace()
        .last()
        .unwrap()
        .parse::<i64>()
        .expect("the original offset shown as a number");
    browser.screenshot(&shots.join("record.png")).await;
}

/// Fault off, replay from the page: the timeline shows the replay and CONFIRMED.
async fn a_replay_from_the_page_confirms_it(
    browser: &Browser,
    console: &str,
    row: &str,
    failing: i64,
) {
    browser.open(&format!("{console}/dead-letters")).await;
    browser.click("form.faults button[value=off]").await;
    browser
        .wait_text("p.notice", false, |t| t.contains("Faults set"))
        .await;
    browser.click(&format!("{row} input[type=checkbox]")).await;
    browser.click("#replay button[value=replay]").await;
    browser
        .wait_text("#replay-outcome", false, |t| t.contains("replayed"))
        .await;
    browser.open(&format!("{console}/orders/{failing}")).await;
    let timeline = browser
        .wait_text("ol.timeline", true, |t| {
            t.contains("replay #1") && t.contains("CONFIRMED")
        })
        .await;
    assert!(timeline.contains("dead-lettered by"), "{timeline}");
}

/// A record whose value is markup shows as text (no script runs: an alert would fail
/// every later WebDriver call).
async fn markup_shows_as_text(browser: &Browser, console: &str, ports: &UpPorts, shots: &Path) {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{}", ports.broker))
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to("order.created")
                .key("evil")
                .payload("<script>alert(1)</script>"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    browser
        .open(&format!("{console}/topics/order.created?key=evil"))
        .await;
    assert_eq!(browser.text("pre.value").await, "<script>alert(1)</script>");
    browser
        .open(&format!("{console}/topics/order.created"))
        .await;
    browser.screenshot(&shots.join("topic.png")).await;
    browser.open(&format!("{console}/topics")).await;
    browser.screenshot(&shots.join("topics.png")).await;
}

/// The overview's counters move without a reload; "Lag in time" draws
/// inventory-service's consumer and order-service's outbox as lines (the page is drawn
/// again on each reload), the consumer's estimate beside its chart.
async fn the_overview_moves_and_draws_its_charts(
    browser: &Browser,
    console: &str,
    up: &UpProcess,
    shots: &Path,
) {
    browser.open(&format!("{console}/")).await;
    let records = "[data-live='topic:order.created:records']";
    let before: i64 = browser.text(records).await.parse().unwrap();
    let http = reqwest::Client::new();
    let placed = http
        .post(format!("{}/api/orders", up.order_url))
        .json(&serde_json::json!({"userId": 7, "items": [{"sku": "ABC-001", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 202);
    browser
        .wait_text(records, false, |t| {
            t.parse::<i64>().is_ok_and(|n| n > before)
        })
        .await;

    // "Lag in time": inventory-service's consumer and order-service's outbox drawn as lines
    // (the page is drawn again on each reload), the consumer's estimate beside its chart.
    let consumer = "svg[data-chart='consumer:inventory-order-events']";
    browser.wait_element(&format!("{consumer} polyline")).await;
    let outbox = "svg[data-chart='outbox:order-service']";
    browser.wait_element(&format!("{outbox} polyline")).await;
    browser.find(&format!("{consumer} title")).await;
    let charts = browser.text("#lag-in-time").await;
    assert!(
        ["caught up", "clears in", "growing by", "not draining"]
            .iter()
            .any(|estimate| charts.contains(estimate)),
        "{charts}"
    );
    browser.screenshot(&shots.join("overview.png")).await;
}
