//! Upgrades keep data: today's build, started on the data directory a released build left
//! (`tests/fixtures/upgrade/embedded/`, made by `scripts/upgrade-fixtures.sh`: its three
//! SQLite databases, the embedded broker's log and the operator token), finds every order,
//! stock level, notification and record still there, and the flow still works.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use support::{UpPorts, UpProcess};

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/upgrade/embedded"
    ))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

async fn get_json(http: &reqwest::Client, url: String) -> Value {
    let response = http.get(&url).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// How many records partition by partition `topic` holds from offset 0 (read, not counted
/// from watermarks).
async fn records_in(bootstrap: &str, topic: &str, partitions: i32) -> usize {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "upgrade-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let (mut records, mut ends) = (0, 0);
    while ends < partitions {
        match tokio::time::timeout(Duration::from_secs(20), consumer.recv()).await {
            Ok(Ok(_)) => records += 1,
            Ok(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => ends += 1,
            Ok(Err(err)) => panic!("reading {topic}: {err}"),
            Err(_) => panic!("{topic}: only {records} records and {ends} ends within 20 s"),
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todays_build_on_a_released_builds_data_finds_everything_and_goes_on_working() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap())
            .unwrap();
    let data = support::temp_dir("upgrade");
    copy_dir(fixture(), &data);
    let ports = UpPorts::free();
    let up = UpProcess::start(&data, &ports).await;
    let http = reqwest::Client::new();
    let token = std::fs::read_to_string(data.join("operator-token"))
        .unwrap()
        .trim()
        .to_string();

    let orders: BTreeMap<String, Value> =
        serde_json::from_value(expected["orders"].clone()).unwrap();
    for (id, status) in &orders {
        let order = get_json(&http, format!("{}/api/orders/{id}", up.order_url)).await;
        assert_eq!(&order["status"], status, "order {id}: {order}");
        assert!(!order["items"].as_array().unwrap().is_empty(), "{order}");
    }
    for (sku, available) in expected["stock"].as_object().unwrap() {
        let stock = get_json(&http, format!("{}/api/inventory/{sku}", up.inventory_url)).await;
        assert_eq!(&stock["available"], available, "{sku}: {stock}");
    }
    for id in expected["notifiedOrders"].as_array().unwrap() {
        let notes = get_json(
            &http,
            format!("{}/api/notifications?orderId={id}", up.notification_url),
        )
        .await;
        assert!(!notes.as_array().unwrap().is_empty(), "order {id}: {notes}");
    }
    let bootstrap = format!("127.0.0.1:{}", ports.broker);
    assert_eq!(
        records_in(&bootstrap, "order.created", 3).await as u64,
        expected["orderCreatedRecords"].as_u64().unwrap(),
        "the broker's log kept every record"
    );

    // The operator token of the release still works, and the flow goes on: a new order is
    // decided, takes the stock the release left, and ids go on from the release's.
    let put = http
        .put(format!("{}/api/inventory/FIXTURE-1", up.inventory_url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"available": 70}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let response = http
        .post(format!("{}/api/orders", up.order_url))
        .json(&serde_json::json!({"userId": 42, "items": [{"sku": "FIXTURE-1", "qty": 3}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["orderId"]
        .as_i64()
        .unwrap();
    let newest = orders
        .keys()
        .map(|k| k.parse::<i64>().unwrap())
        .max()
        .unwrap();
    assert!(
        id > newest,
        "a new order id {id} after the release's {newest}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let order = get_json(&http, format!("{}/api/orders/{id}", up.order_url)).await;
        if order["status"] == "CONFIRMED" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new order was not confirmed in 60 s: {order}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stock = get_json(
        &http,
        format!("{}/api/inventory/FIXTURE-1", up.inventory_url),
    )
    .await;
    assert_eq!(stock["available"], 67, "{stock}");
    up.stop();
}
