//! A batch of new orders written together (as the intake's group commit writes them: in a
//! transaction with `store::create_orders_in`, or on PostgreSQL as one statement with
//! `store::create_orders_alone`) gives each order its own id, items and `order.created`,
//! in the batch's order, on real SQLite and PostgreSQL.

use contracts::Topics;
use order_service::domain::{CreateOrderBody, ItemBody, OrderRequest};
use order_service::store::{self, Created, NewOrder};
use platform::db::Database;
use sqlx::Row;

/// Order `n` of the batch: user 100 + n, with n + 1 lines.
fn request(n: i64) -> OrderRequest {
    OrderRequest::try_from(CreateOrderBody {
        user_id: 100 + n,
        items: (0..=n)
            .map(|line| ItemBody {
                sku: format!("SKU-{line:03}"),
                qty: line + 1,
            })
            .collect(),
        contact: None,
    })
    .expect("a valid request")
}

/// Each of `created` is a new order of its own with the user, items and event of the
/// batch's order at its position (order n: user 100 + n, n + 1 lines).
async fn check_batch(db: &Database, created: &[Created]) {
    let mut seen = std::collections::HashSet::new();
    for (n, created) in created.iter().enumerate() {
        let Created::New(id) = created else {
            panic!("order {n} of the batch is new, not {created:?}");
        };
        assert!(seen.insert(*id), "id {id} given twice");
        let user: i64 = sqlx::query("SELECT user_id FROM orders WHERE id = $1")
            .bind(*id)
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .try_get("user_id")
            .unwrap();
        assert_eq!(user, 100 + n as i64, "order {id} is batch order {n}'s");
        let lines: i64 = sqlx::query("SELECT COUNT(*) AS n FROM order_items WHERE order_id = $1")
            .bind(*id)
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(lines, n as i64 + 1, "order {id}'s items");
        let payload: String = sqlx::query("SELECT payload FROM outbox WHERE record_key = $1")
            .bind(id.to_string())
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .try_get("payload")
            .unwrap();
        let event: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(event["orderId"], serde_json::json!(id));
        assert_eq!(event["userId"], serde_json::json!(100 + n as i64));
    }
}

async fn each_order_of_a_batch_gets_its_own_id_items_and_event(db: Database) {
    let topics = Topics::default();
    let requests: Vec<OrderRequest> = (0..9).map(request).collect();
    let orders: Vec<NewOrder> = requests
        .iter()
        .enumerate()
        .map(|(n, request)| NewOrder {
            request,
            // Two of them with an idempotency key, in the middle of the batch.
            idempotency_key: match n {
                3 => Some("key-a"),
                6 => Some("key-b"),
                _ => None,
            },
            trace: &[],
        })
        .collect();
    let mut tx = db.begin().await.unwrap();
    let created = store::create_orders_in(&mut tx, &topics, &orders)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(created.len(), requests.len());
    check_batch(&db, &created).await;
    // A repeat of a keyed request answers the order the key made.
    let mut tx = db.begin().await.unwrap();
    let again = store::create_orders_in(&mut tx, &topics, &orders[3..4])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let Created::New(first) = created[3] else {
        unreachable!()
    };
    assert!(matches!(again.as_slice(), [Created::Replayed(id)] if *id == first));
}

#[tokio::test]
async fn each_order_of_a_batch_gets_its_own_id_items_and_event_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("oo-intake-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/order.db", dir.display());
    let db = Database::connect(&url, 4, &store::SCHEMA).await.unwrap();
    each_order_of_a_batch_gets_its_own_id_items_and_event(db).await;
}

#[tokio::test]
async fn each_order_of_a_batch_gets_its_own_id_items_and_event_on_postgres() {
    let Some(db) = postgres().await else {
        return;
    };
    each_order_of_a_batch_gets_its_own_id_items_and_event(db).await;
}

#[tokio::test]
async fn a_batch_written_as_one_statement_gives_each_order_its_own_id_items_and_event_on_postgres()
{
    let Some(db) = postgres().await else {
        return;
    };
    let requests: Vec<OrderRequest> = (0..9).map(request).collect();
    let orders: Vec<NewOrder> = requests
        .iter()
        .map(|request| NewOrder {
            request,
            idempotency_key: None,
            trace: &[],
        })
        .collect();
    let created = store::create_orders_alone(
        &db,
        &store::IdReserve::default(),
        &Topics::default(),
        &orders,
        None,
    )
    .await
    .unwrap()
    .expect("nine orders fit one statement");
    assert_eq!(created.len(), requests.len());
    check_batch(&db, &created).await;
}

#[tokio::test]
async fn ids_drawn_ahead_serve_the_next_batches_in_rising_order_without_another_draw_on_postgres() {
    let Some(db) = postgres().await else {
        return;
    };
    let reserve = store::IdReserve::default();
    let first = reserve.take(&db, 3).await.unwrap();
    let second = reserve.take(&db, 2).await.unwrap();
    let all: Vec<i64> = first.iter().chain(&second).copied().collect();
    assert!(all.windows(2).all(|w| w[0] < w[1]), "ids rise: {all:?}");
    let drawn: i64 = sqlx::query("SELECT last_value FROM orders_id_seq")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(
        drawn,
        first[0] + 3 + store::IdReserve::AHEAD as i64 - 1,
        "one draw served both batches"
    );
    // A batch larger than what is left draws again, and still rises.
    let third = reserve
        .take(&db, store::IdReserve::AHEAD + 5)
        .await
        .unwrap();
    assert!(third[0] > second[1] && third.windows(2).all(|w| w[0] < w[1]));
}

/// A database of its own on the test server; None when external servers are skipped.
async fn postgres() -> Option<Database> {
    let Ok(base) = std::env::var("OPENORDER_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("OPENORDER_TEST_SKIP_EXTERNAL").is_some(),
            "OPENORDER_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh (or set OPENORDER_TEST_SKIP_EXTERNAL=1)"
        );
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("intake_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::AnyPool::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    Some(Database::connect(&url, 4, &store::SCHEMA).await.unwrap())
}
