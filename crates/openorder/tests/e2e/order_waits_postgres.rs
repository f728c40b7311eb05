//! Waiting for an order's decision across order-service instances on PostgreSQL: two
//! instances (each its own pool, notifier and listener) on one database; a decision taken
//! by one wakes the other's waiter through `pg_notify`, sent in the decision's transaction.

use std::time::Duration;

use crate::support;
use crate::support::DbKind;
use contracts::lifecycle::{OrderStatus, Trigger};
use contracts::Topics;
use order_service::domain::{CreateOrderBody, ItemBody, OrderRequest};
use order_service::store::{self, Created, NewOrder, Outcome};
use order_service::waits::{self, Waits, Woke};
use platform::db::Database;
use platform::CancellationToken;
use tokio::time::Instant;

/// One order-service instance's part in this: its pool and its notifier.
struct Instance {
    db: Database,
    waits: Waits,
}

impl Instance {
    async fn start(url: &str, stop: &CancellationToken) -> Self {
        let db = Database::connect(url, 2, &store::SCHEMA)
            .await
            .expect("PostgreSQL reachable");
        let waits = Waits::new(8, stop.clone(), platform::metrics::Metrics::default());
        // Its listener wakes every waiter once it listens: a probe says when.
        let mut probe = waits.admit().unwrap().watch(0);
        tokio::spawn(waits::listen(waits.clone(), url.to_string(), stop.clone()));
        let woke = probe
            .next(Some(Instant::now() + Duration::from_secs(30)))
            .await;
        assert_eq!(woke, Woke::Told, "the listener listens");
        Self { db, waits }
    }

    async fn new_order(&self) -> i64 {
        let request = OrderRequest::try_from(CreateOrderBody {
            user_id: 7,
            items: vec![ItemBody {
                sku: "ABC-001".into(),
                qty: 1,
            }],
            contact: None,
        })
        .unwrap();
        let mut tx = self.db.begin().await.unwrap();
        let created = store::create_orders_in(
            &mut tx,
            &Topics::default(),
            &[NewOrder {
                request: &request,
                idempotency_key: None,
                trace: &[],
            }],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        match created.as_slice() {
            [Created::New(id)] => *id,
            other => panic!("a new order, not {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_on_one_instance_hears_a_decision_taken_on_another() {
    let dir = support::temp_dir("waits-postgres");
    let Some(url) = support::database_url(DbKind::Postgres, &dir, "order-service").await else {
        return;
    };
    let stop = CancellationToken::new();
    let a = Instance::start(&url, &stop).await;
    let b = Instance::start(&url, &stop).await;

    let order_id = b.new_order().await;
    let mut watcher = a.waits.admit().unwrap().watch(order_id);
    let soon = || Some(Instant::now() + Duration::from_millis(300));
    assert_eq!(watcher.next(soon()).await, Woke::TimedOut, "nothing yet");

    // A decision rolled back tells no one.
    let mut tx = b.db.begin().await.unwrap();
    store::apply_outcome(&mut tx, order_id, &Outcome::of(Trigger::Reserved), &b.waits)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(watcher.next(soon()).await, Woke::TimedOut, "rolled back");

    // Committed on B, heard on A.
    let mut tx = b.db.begin().await.unwrap();
    store::apply_outcome(&mut tx, order_id, &Outcome::of(Trigger::Reserved), &b.waits)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let woke = watcher
        .next(Some(Instant::now() + Duration::from_secs(10)))
        .await;
    assert_eq!(woke, Woke::Told, "B's decision reached A's waiter");
    let order = store::get_order(&a.db, order_id).await.unwrap().unwrap();
    assert_eq!(order.status, OrderStatus::Confirmed);

    stop.cancel();
    assert_eq!(watcher.next(None).await, Woke::Stopping);
}
