//! Upgrades keep data: today's build, started on what a released build left (made by
//! `scripts/upgrade-fixtures.sh`), finds every order, stock level, notification and record
//! still there, and the flow still works:
//! - `tests/fixtures/upgrade/embedded/`: the data directory of `openorder up` (three SQLite
//!   databases, the embedded broker's log, the operator token);
//! - `tests/fixtures/upgrade/postgres/`: each service's PostgreSQL database as `pg_dump`
//!   wrote it, restored into fresh databases (on a fresh broker: the broker's log is the
//!   embedded fixture's part).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support;
use crate::support::{BrokerKind, DbKind, Stack, StackOptions, UpPorts, UpProcess};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use sqlx::Connection;

fn fixture(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upgrade")
        .join(kind)
}

fn expected(kind: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(kind).join("expected.json")).unwrap())
        .unwrap()
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

/// The services at these addresses have every order, stock level and notification of
/// `expected`.
async fn finds_what_the_release_left(
    http: &reqwest::Client,
    expected: &Value,
    [order_url, inventory_url, notification_url]: [&str; 3],
) {
    let orders: BTreeMap<String, Value> =
        serde_json::from_value(expected["orders"].clone()).unwrap();
    for (id, status) in &orders {
        let order = get_json(http, format!("{order_url}/api/orders/{id}")).await;
        assert_eq!(&order["status"], status, "order {id}: {order}");
        assert!(!order["items"].as_array().unwrap().is_empty(), "{order}");
    }
    for (sku, available) in expected["stock"].as_object().unwrap() {
        let stock = get_json(http, format!("{inventory_url}/api/inventory/{sku}")).await;
        assert_eq!(&stock["available"], available, "{sku}: {stock}");
    }
    for id in expected["notifiedOrders"].as_array().unwrap() {
        let notes = get_json(
            http,
            format!("{notification_url}/api/notifications?orderId={id}"),
        )
        .await;
        assert!(!notes.as_array().unwrap().is_empty(), "order {id}: {notes}");
    }
}

/// The flow goes on: an operator sets stock, a new order is decided, takes it, and its id
/// goes on from the release's.
async fn a_new_order_goes_through(
    http: &reqwest::Client,
    expected: &Value,
    [order_url, inventory_url]: [&str; 2],
    token: Option<&str>,
) {
    let mut put = http.put(format!("{inventory_url}/api/inventory/FIXTURE-1"));
    if let Some(token) = token {
        put = put.bearer_auth(token);
    }
    let put = put
        .json(&serde_json::json!({"available": 70}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let three = serde_json::json!({"userId": 42, "items": [{"sku": "FIXTURE-1", "qty": 3}]});
    let id = support::post_order_at(http, order_url, &three).await;
    let newest = expected["orders"]
        .as_object()
        .unwrap()
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
        let order = get_json(http, format!("{order_url}/api/orders/{id}")).await;
        if order["status"] == "CONFIRMED" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new order was not confirmed in 60 s: {order}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stock = get_json(http, format!("{inventory_url}/api/inventory/FIXTURE-1")).await;
    assert_eq!(stock["available"], 67, "{stock}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todays_build_on_a_released_builds_data_finds_everything_and_goes_on_working() {
    let expected = expected("embedded");
    let data = support::temp_dir("upgrade");
    copy_dir(&fixture("embedded"), &data);
    let ports = UpPorts::free().expect("free ports");
    let up = UpProcess::start(&data, &ports).await;
    let http = reqwest::Client::new();
    // The operator token of the release still works.
    let token = std::fs::read_to_string(data.join("operator-token"))
        .unwrap()
        .trim()
        .to_string();

    finds_what_the_release_left(
        &http,
        &expected,
        [&up.order_url, &up.inventory_url, &up.notification_url],
    )
    .await;
    let bootstrap = format!("127.0.0.1:{}", ports.broker);
    assert_eq!(
        records_in(&bootstrap, "order.created", 3).await as u64,
        expected["orderCreatedRecords"].as_u64().unwrap(),
        "the broker's log kept every record"
    );
    a_new_order_goes_through(
        &http,
        &expected,
        [&up.order_url, &up.inventory_url],
        Some(&token),
    )
    .await;
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todays_build_on_a_released_builds_postgresql_databases_finds_everything_and_goes_on_working(
) {
    let expected = expected("postgres");
    let dir = support::temp_dir("upgrade-pg");
    let mut databases = Vec::new();
    for service in ["order", "inventory", "notification"] {
        let Some(url) = support::database_url(DbKind::Postgres, &dir, service).await else {
            return; // no PostgreSQL in this run
        };
        let dump =
            std::fs::read_to_string(fixture("postgres").join(format!("{service}.sql"))).unwrap();
        let mut connection = sqlx::PgConnection::connect(&url)
            .await
            .expect("the new database");
        sqlx::raw_sql(&dump)
            .execute(&mut connection)
            .await
            .unwrap_or_else(|err| panic!("restoring {service}.sql: {err}"));
        connection.close().await.unwrap();
        databases.push(url);
    }
    let options = StackOptions {
        databases: Some(databases.try_into().unwrap()),
        ..Default::default()
    };
    let stack = Stack::spawn(BrokerKind::Tansu, DbKind::Postgres, options)
        .await
        .expect("the embedded broker");
    finds_what_the_release_left(
        &stack.http,
        &expected,
        [
            &stack.order_url,
            &stack.inventory_url,
            &stack.notification_url,
        ],
    )
    .await;
    a_new_order_goes_through(
        &stack.http,
        &expected,
        [&stack.order_url, &stack.inventory_url],
        None, // the stack's services ask no operator token on loopback
    )
    .await;
    stack.stop().await;
}
