//! Restarts: an order accepted while the broker is down is confirmed when it returns, and
//! `openorder up` stopped and started again keeps its orders, stock, notifications, operator
//! token, switched-off faults and broker data (nothing is notified again).

use std::path::Path;
use std::time::Duration;

use crate::support;
use crate::support::{BrokerKind, DbKind, Stack, StackOptions, UpPorts, UpProcess};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_accepted_while_the_broker_is_down_is_confirmed_when_it_returns() {
    let mut stack = Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, StackOptions::default())
        .await
        .expect("the embedded broker needs nothing external");
    let warm = stack.post_order(42, &[("ABC-001", 1)]).await;
    assert_eq!(stack.settled_order(warm).await["status"], "CONFIRMED");

    stack.broker.kill();
    let ready = stack
        .http
        .get(format!("{}/health/ready", stack.order_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "not ready without a broker");
    let id = stack.post_order(42, &[("ABC-001", 2)]).await;
    // No sentinel can pass a broker that is gone, so this one wait is bounded by time: a
    // GET that waits for the order's decision (`Prefer: wait`) answers at once if it is
    // decided, and still PENDING after 2 s.
    let waited: serde_json::Value = stack
        .http
        .get(format!("{}/api/orders/{id}", stack.order_url))
        .header("prefer", "wait=2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(waited["status"], "PENDING", "{waited}");

    stack.broker.restart().await;
    let order = stack.settled_order(id).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(stack.wait_notifications(id).await.len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_up_keeps_orders_stock_notifications_and_broker_data() {
    let data_dir = support::temp_dir("up");
    let ports = UpPorts::free().expect("free ports");
    let http = reqwest::Client::new();

    let up = UpProcess::start(&data_dir, &ports).await;
    let two = json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 2}]});
    let id = support::post_order_at(&http, &up.order_url, &two).await;
    settled_and_notified(&http, &up, id).await;
    let token = operator_routes_need_the_token_up_made(&http, &up, &data_dir).await;
    up.stop();

    let up = UpProcess::start(&data_dir, &ports).await;
    kept_across_the_restart(&http, &up, id, &data_dir, &token).await;
    nothing_is_notified_again(&http, &up, &ports, id).await;
    up.stop();
}

/// GETs `url`'s JSON.
async fn get(http: &reqwest::Client, url: String) -> Value {
    support::json_of(http.get(url)).await
}

/// Settled before the stop: CONFIRMED in order-service and notified.
async fn settled_and_notified(http: &reqwest::Client, up: &UpProcess, id: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let order = get(http, format!("{}/api/orders/{id}", up.order_url)).await;
        let notes = get(
            http,
            format!("{}/api/notifications?orderId={id}", up.notification_url),
        )
        .await;
        if order["status"] == "CONFIRMED" && !notes.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} not settled in 60 s: {order}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Operator routes need the token `up` made in its data directory (readable by its owner
/// only): refused without it or with another, and the FAIL fault switched off with it.
/// Returns the token.
async fn operator_routes_need_the_token_up_made(
    http: &reqwest::Client,
    up: &UpProcess,
    data_dir: &Path,
) -> String {
    let token_file = data_dir.join("operator-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the token file is private: {mode:o}");
    let switch_off = || {
        http.put(format!("{}/admin/faults", up.inventory_url))
            .json(&json!({"failSku": ""}))
    };
    let refused = switch_off().send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let refused = switch_off()
        .bearer_auth("oo_not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let switched = switch_off().bearer_auth(&token).send().await.unwrap();
    assert_eq!(switched.status(), 200);
    token
}

/// After the restart: the order still CONFIRMED, the token the same, the fault still off,
/// the stock as the order left it.
async fn kept_across_the_restart(
    http: &reqwest::Client,
    up: &UpProcess,
    id: i64,
    data_dir: &Path,
    token: &str,
) {
    let order = get(http, format!("{}/api/orders/{id}", up.order_url)).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(
        std::fs::read_to_string(data_dir.join("operator-token"))
            .unwrap()
            .trim(),
        token,
        "the token is kept across restarts"
    );
    let faults: Value = support::json_of(
        http.get(format!("{}/admin/faults", up.inventory_url))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(faults, json!({"failSku": "", "flakySku": "FLAKY"}));
    let stock = get(http, format!("{}/api/inventory/ABC-001", up.inventory_url)).await;
    assert_eq!(
        (stock["available"].as_i64(), stock["reserved"].as_i64()),
        (Some(98), Some(2))
    );
}

/// The broker kept its data and the consumer offsets: nothing is re-notified. And the
/// restarted system still takes orders: placed until one shares the first order's
/// partition (of as many as `up` makes), that one is a sentinel. notification-service
/// reads a partition of inventory.reserved in order, so once it has told the sentinel, a
/// replay of the first order's event would have been read before it.
async fn nothing_is_notified_again(
    http: &reqwest::Client,
    up: &UpProcess,
    ports: &UpPorts,
    id: i64,
) {
    let partitions =
        platform::kafka::KafkaArgs::with_defaults(&format!("127.0.0.1:{}", ports.broker), "")
            .topic_partitions;
    let partition = support::java_partition(id.to_string().as_bytes(), partitions);
    let one = json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 1}]});
    let mut later = Vec::new();
    let sentinel = loop {
        let next = support::post_order_at(http, &up.order_url, &one).await;
        later.push(next);
        if support::java_partition(next.to_string().as_bytes(), partitions) == partition {
            break next;
        }
        assert!(
            later.len() < 50,
            "none of {later:?} is on partition {partition} of {partitions}"
        );
    };
    let second = later[0];
    assert!(second > id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for next in &later {
        loop {
            let order = get(http, format!("{}/api/orders/{next}", up.order_url)).await;
            if order["status"] == "CONFIRMED" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {next} after the restart not confirmed: {order}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    loop {
        let told = get(
            http,
            format!(
                "{}/api/notifications?orderId={sentinel}",
                up.notification_url
            ),
        )
        .await;
        if !told.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sentinel order {sentinel} was not notified"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let notes = get(
        http,
        format!("{}/api/notifications?orderId={id}", up.notification_url),
    )
    .await;
    assert_eq!(notes.as_array().unwrap().len(), 1, "{notes}");
}
