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
    let copied = order_created(Uuid::new_v4(), 2, "A", 2);
    let batch = [
        order_created(Uuid::new_v4(), 1, "A", 2),
        copied.clone(),
        copied.clone(), // the same record again: applied once
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

/// Applies `records` as one batch in a transaction of its own: committed when the handler
/// took them, rolled back (as the consumer loop does) when it refused them.
async fn apply(db: &Database, records: &[Record]) -> Result<(), platform::consumer::HandleError> {
    let handler = consumer_without_faults();
    let mut tx = db.begin().await.unwrap();
    match handler.apply(&mut tx, records, 1).await {
        Ok(()) => {
            tx.commit().await.unwrap();
            Ok(())
        }
        Err(err) => {
            tx.rollback().await.unwrap();
            Err(err)
        }
    }
}

async fn decisions(db: &Database) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM decisions")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get("n")
}

#[tokio::test]
async fn an_event_id_applied_before_with_another_body_is_refused_as_reused_and_the_same_body_again_is_a_duplicate(
) {
    let db = database().await;
    let event_id = Uuid::new_v4();
    let first = order_created(event_id, 1, "A", 2);
    apply(&db, std::slice::from_ref(&first)).await.unwrap();
    // A redelivery: the same bytes under the same id. Nothing again, and no error.
    apply(&db, std::slice::from_ref(&first)).await.unwrap();
    let a = store::get_stock(&db, "A").await.unwrap().unwrap();
    assert_eq!((a.available, a.reserved), (3, 2));

    // Another body under the id (other items): refused for good, naming the id.
    let reused = order_created(event_id, 1, "A", 3);
    let err = apply(&db, std::slice::from_ref(&reused)).await.unwrap_err();
    assert_eq!(err.kind, platform::consumer::FailureKind::Permanent);
    assert_eq!(err.class, "openorder.EventIdReused");
    assert!(
        err.message.contains(&format!(
            "event id {event_id} was applied before with a different body"
        )),
        "{}",
        err.message
    );
    // In a batch it fails the batch (whose records the loop then applies one by one).
    let fresh = order_created(Uuid::new_v4(), 2, "B", 1);
    let err = apply(&db, &[fresh.clone(), reused]).await.unwrap_err();
    assert_eq!(err.class, "openorder.EventIdReused");
    // Within one batch too: the same id twice with different bodies.
    let twin = order_created(fresh_id(&fresh), 2, "B", 2);
    let err = apply(&db, &[fresh.clone(), twin]).await.unwrap_err();
    assert_eq!(err.class, "openorder.EventIdReused");

    let a = store::get_stock(&db, "A").await.unwrap().unwrap();
    assert_eq!((a.available, a.reserved), (3, 2), "nothing more reserved");
    let b = store::get_stock(&db, "B").await.unwrap().unwrap();
    assert_eq!(
        (b.available, b.reserved),
        (1, 0),
        "the refused batches left nothing"
    );
    assert_eq!(decisions(&db).await, 1);
}

/// The event id a record of [`order_created`] carries.
fn fresh_id(record: &Record) -> Uuid {
    let event: OrderCreated = serde_json::from_slice(record.payload.as_deref().unwrap()).unwrap();
    event.event_id
}

#[tokio::test]
async fn an_event_id_marked_before_fingerprints_were_kept_counts_as_a_duplicate() {
    let db = database().await;
    let event_id = Uuid::new_v4();
    // A mark from a build that kept no fingerprint: body_hash NULL.
    sqlx::query("INSERT INTO processed_events (event_id, processed_at) VALUES ($1, $2)")
        .bind(event_id.to_string())
        .bind(platform::now_text())
        .execute(&db.pool)
        .await
        .unwrap();
    apply(&db, &[order_created(event_id, 1, "A", 2)])
        .await
        .unwrap();
    let a = store::get_stock(&db, "A").await.unwrap().unwrap();
    assert_eq!(
        (a.available, a.reserved),
        (5, 0),
        "a duplicate: nothing applied"
    );
    assert_eq!(decisions(&db).await, 0);
}

#[tokio::test]
async fn a_record_keyed_by_another_order_or_by_nothing_is_refused_as_a_key_mismatch_naming_both() {
    let db = database().await;
    let mut other_key = order_created(Uuid::new_v4(), 1, "A", 2);
    other_key.key = Some(b"2".to_vec());
    let err = apply(&db, &[other_key]).await.unwrap_err();
    assert_eq!(err.kind, platform::consumer::FailureKind::Permanent);
    assert_eq!(err.class, "openorder.KeyMismatch");
    assert!(
        err.message.contains("\"2\"") && err.message.contains("orderId 1"),
        "{}",
        err.message
    );
    let mut keyless = order_created(Uuid::new_v4(), 1, "A", 2);
    keyless.key = None;
    let err = apply(&db, &[keyless]).await.unwrap_err();
    assert_eq!(err.class, "openorder.KeyMismatch");
    assert!(err.message.contains("no key"), "{}", err.message);

    let a = store::get_stock(&db, "A").await.unwrap().unwrap();
    assert_eq!((a.available, a.reserved), (5, 0), "neither was applied");
    assert_eq!(decisions(&db).await, 0);
    // Keyed right, the same order is decided.
    apply(&db, &[order_created(Uuid::new_v4(), 1, "A", 2)])
        .await
        .unwrap();
    assert_eq!(decisions(&db).await, 1);
}
