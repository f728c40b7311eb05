//! Deciding a batch of orders at once must have the effect of deciding them one by one:
//! run against a real SQLite database through the handler the consumer loop calls.

use chrono::Utc;
use contracts::{headers, LineItem, OrderCreated, Topics};
use inventory_service::faults::{FaultConfig, Faults};
use inventory_service::store;
use platform::consumer::{Handler, Record};
use platform::db::{Backend, Database};
use sqlx::Row;
use uuid::Uuid;

fn order_created(event_id: Uuid, order_id: i64, sku: &str, qty: i64) -> Record {
    let event = OrderCreated {
        event_id,
        order_id,
        user_id: 1,
        items: vec![LineItem {
            sku: sku.into(),
            qty,
        }],
        created_at: Utc::now(),
        contact: None,
    };
    Record {
        topic: "order.created".into(),
        partition: 0,
        offset: order_id,
        timestamp: None,
        key: Some(order_id.to_string().into_bytes()),
        payload: Some(serde_json::to_vec(&event).unwrap()),
        headers: vec![(
            headers::EVENT_ID.into(),
            Some(event_id.to_string().into_bytes()),
        )],
    }
}

async fn database() -> Database {
    let dir = std::env::temp_dir().join(format!("oo-batch-{}", Uuid::new_v4()));
    let url = format!("sqlite://{}/inventory.db", dir.display());
    let db = Database::connect(&url, 2, &store::SCHEMA).await.unwrap();
    store::seed_if_empty(
        &db,
        r#"[{"sku": "A", "available": 5}, {"sku": "B", "available": 1}]"#,
    )
    .await
    .unwrap();
    db
}

/// inventory-service's consumer, as the loop calls it, with fault injection off.
fn consumer_without_faults() -> platform::router::Router<inventory_service::stock_locks::StockLocks>
{
    inventory_service::consumer(
        &Topics::default(),
        Backend::Sqlite,
        Faults::new(FaultConfig {
            fail_sku: String::new(),
            flaky_sku: String::new(),
        }),
    )
}

#[tokio::test]
async fn a_batch_reserves_in_order_until_stock_runs_out_and_a_copy_within_it_counts_once() {
    let db = database().await;
    let handler = consumer_without_faults();
    let copied = Uuid::new_v4();
    let batch = [
        order_created(Uuid::new_v4(), 1, "A", 2),
        order_created(copied, 2, "A", 2),
        order_created(copied, 2, "A", 2), // the same event again: applied once
        order_created(Uuid::new_v4(), 3, "A", 2), // 1 left: rejected
        order_created(Uuid::new_v4(), 4, "A", 1), // fits in what is left
        order_created(Uuid::new_v4(), 5, "B", 1),
        order_created(Uuid::new_v4(), 6, "NOPE", 1), // unknown SKU
    ];
    let mut tx = db.begin().await.unwrap();
    handler.apply(&mut tx, &batch, 1).await.unwrap();
    tx.commit().await.unwrap();

    let a = store::get_stock(&db, "A").await.unwrap().unwrap();
    assert_eq!((a.available, a.reserved), (0, 5));
    let b = store::get_stock(&db, "B").await.unwrap().unwrap();
    assert_eq!((b.available, b.reserved), (0, 1));

    let decisions: Vec<(i64, String)> =
        sqlx::query("SELECT order_id, outcome FROM decisions ORDER BY order_id")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("order_id"), r.get("outcome")))
            .collect();
    let expected = [
        (1, "RESERVED"),
        (2, "RESERVED"),
        (3, "REJECTED"),
        (4, "RESERVED"),
        (5, "RESERVED"),
        (6, "REJECTED"),
    ];
    assert_eq!(
        decisions,
        expected.map(|(id, o)| (id, o.to_string())).to_vec()
    );

    // One event per decision, in the batch's order (the relay publishes in id order).
    let events: Vec<(String, String)> =
        sqlx::query("SELECT topic, record_key FROM outbox ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("topic"), r.get("record_key")))
            .collect();
    let topics: Vec<(&str, &str)> = events
        .iter()
        .map(|(t, k)| (t.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        topics,
        [
            ("inventory.reserved", "1"),
            ("inventory.reserved", "2"),
            ("inventory.rejected", "3"),
            ("inventory.reserved", "4"),
            ("inventory.reserved", "5"),
            ("inventory.rejected", "6"),
        ]
    );

    // The whole batch again (a redelivery): nothing changes.
    let mut tx = db.begin().await.unwrap();
    handler.apply(&mut tx, &batch, 1).await.unwrap();
    tx.commit().await.unwrap();
    let a = store::get_stock(&db, "A").await.unwrap().unwrap();
    assert_eq!((a.available, a.reserved), (0, 5));
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 6);
}

#[tokio::test]
async fn a_newer_producers_order_with_fields_this_build_does_not_know_is_decided_not_dead_lettered()
{
    let db = database().await;
    let handler = consumer_without_faults();
    let mut record = order_created(Uuid::new_v4(), 9, "A", 1);
    let mut value: serde_json::Value =
        serde_json::from_slice(record.payload.as_deref().unwrap()).unwrap();
    value["giftWrap"] = serde_json::json!({"paper": "blue"});
    value["items"][0]["note"] = serde_json::json!("fragile");
    record.payload = Some(serde_json::to_vec(&value).unwrap());
    record
        .headers
        .push((headers::EVENT_VERSION.into(), Some(b"1".to_vec())));
    let mut tx = db.begin().await.unwrap();
    handler.apply(&mut tx, &[record], 1).await.unwrap();
    tx.commit().await.unwrap();
    let a = store::get_stock(&db, "A").await.unwrap().unwrap();
    assert_eq!((a.available, a.reserved), (4, 1), "reserved like any order");
    // And what inventory publishes says its own version.
    let headers: String = sqlx::query("SELECT headers FROM outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get("headers");
    let headers: serde_json::Value = serde_json::from_str(&headers).unwrap();
    assert_eq!(headers[headers::EVENT_VERSION], "1");
}
