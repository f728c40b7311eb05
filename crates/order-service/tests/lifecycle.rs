//! The lifecycle's table against what order-service does, on a real SQLite database: an
//! order is put in each status, each trigger is applied through the code that applies it
//! in production (the consumers' handlers, as their router calls them, and the API's
//! cancel), and the status the order ends in is the one the table says.

mod common;

use chrono::Utc;
use contracts::events::RejectedStatus;
use contracts::lifecycle::{self, OrderStatus, Trigger};
use contracts::{
    InventoryRejected, InventoryReserved, OrderCreated, RejectionReason, Shortage, Topics,
};
use order_service::on_inventory_rejected::OnInventoryRejected;
use order_service::on_inventory_reserved::OnInventoryReserved;
use order_service::on_order_created_dead_letter::OnOrderCreatedDeadLetter;
use order_service::store;
use order_service::waits::Waits;
use platform::consumer::Handler;
use platform::db::Database;
use platform::router::Router;

use common::{create_order, dead_letter, record, reserved};

struct TestApp {
    db: Database,
    topics: Topics,
    /// order-service's consumers of inventory's answers and of dead letters, in one router.
    consumer: Router,
    waits: Waits,
}

async fn spawn_app() -> TestApp {
    let db = common::database("lifecycle").await;
    let topics = Topics::default();
    let waits = Waits::new(16, Default::default(), Default::default());
    let consumer = Router::new(contracts::Service::Order, &topics)
        .on::<InventoryReserved, _>(OnInventoryReserved {
            waits: waits.clone(),
        })
        .on::<InventoryRejected, _>(OnInventoryRejected {
            waits: waits.clone(),
        })
        .on_dead_letters::<OrderCreated, _>(OnOrderCreatedDeadLetter {
            inventory_group: topics.group(order_service::INVENTORY_GROUP),
            waits: waits.clone(),
        });
    TestApp {
        db,
        topics,
        consumer,
        waits,
    }
}

impl TestApp {
    /// A new order, put in `status` as if the moves to it had happened.
    async fn order_in(&self, status: OrderStatus) -> i64 {
        let order_id = create_order(&self.db, &self.topics).await;
        sqlx::query("UPDATE orders SET status = $1 WHERE id = $2")
            .bind(status.as_str())
            .bind(order_id)
            .execute(&self.db.pool)
            .await
            .unwrap();
        order_id
    }

    /// Applies `trigger` to `order_id` as order-service does in production.
    async fn apply(&self, order_id: i64, trigger: Trigger) {
        let record = match trigger {
            Trigger::Reserved => record(&reserved(order_id)),
            Trigger::Rejected => record(&InventoryRejected {
                event_id: contracts::new_event_id(),
                order_id,
                status: RejectedStatus::Rejected,
                reason: RejectionReason::OutOfStock,
                shortages: vec![Shortage {
                    sku: "ABC-001".into(),
                    requested: 1,
                    available: 0,
                }],
                timestamp: Utc::now(),
            }),
            // A dead letter of the inventory group (another group's moves nothing: see
            // tests/dead_letters.rs), identified by its position: one per order here.
            Trigger::DeadLettered => dead_letter(
                Some(&order_id.to_string()),
                serde_json::json!({"orderId": order_id}),
                &self.topics.group(order_service::INVENTORY_GROUP),
                order_id,
            ),
            Trigger::Cancel => {
                store::cancel_order(&self.db, &self.topics, order_id, None, &self.waits)
                    .await
                    .unwrap();
                return;
            }
            // What the periodic task does past `--expire-pending-after`: here with a
            // deadline that every order has passed (orders of earlier steps included,
            // whose statuses were checked already).
            Trigger::Expired => {
                let cutoff = (Utc::now() + chrono::Duration::seconds(60))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                store::expire_pending(&self.db, &self.topics, &cutoff, 1_000, &self.waits)
                    .await
                    .unwrap();
                return;
            }
        };
        let mut tx = self.db.begin().await.unwrap();
        self.consumer
            .apply(&mut tx, std::slice::from_ref(&record), 1)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    async fn status(&self, order_id: i64) -> OrderStatus {
        store::get_order(&self.db, order_id)
            .await
            .unwrap()
            .expect("the order exists")
            .status
    }
}

#[tokio::test]
async fn every_status_and_trigger_ends_where_the_lifecycle_table_says() {
    let app = spawn_app().await;
    for from in OrderStatus::ALL {
        for trigger in Trigger::ALL {
            let order_id = app.order_in(from).await;
            app.apply(order_id, trigger).await;
            let expected = lifecycle::next(from, trigger).unwrap_or(from);
            assert_eq!(
                app.status(order_id).await,
                expected,
                "an order {} on {trigger:?}",
                from.as_str()
            );
        }
    }
}

#[tokio::test]
async fn an_order_in_a_terminal_status_stays_there_whatever_comes_after() {
    let app = spawn_app().await;
    for &status in lifecycle::TERMINAL {
        let order_id = app.order_in(status).await;
        for trigger in Trigger::ALL {
            app.apply(order_id, trigger).await;
            assert_eq!(
                app.status(order_id).await,
                status,
                "{} after {trigger:?}",
                status.as_str()
            );
        }
    }
}
