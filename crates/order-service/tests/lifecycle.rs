//! The lifecycle's table against what order-service does, on a real SQLite database: an
//! order is put in each status, each trigger is applied through the code that applies it
//! in production (the consumers' handlers, as their router calls them, and the API's
//! cancel), and the status the order ends in is the one the table says.

use chrono::Utc;
use contracts::events::{RejectedStatus, ReservedStatus};
use contracts::lifecycle::{self, OrderStatus, Trigger};
use contracts::{
    Event, InventoryRejected, InventoryReserved, LineItem, OrderCreated, RejectionReason, Shortage,
    Topics,
};
use order_service::domain::{CreateOrderBody, ItemBody, OrderRequest};
use order_service::on_inventory_rejected::OnInventoryRejected;
use order_service::on_inventory_reserved::OnInventoryReserved;
use order_service::on_order_created_dead_letter::OnOrderCreatedDeadLetter;
use order_service::store::{self, Created, NewOrder};
use order_service::waits::Waits;
use platform::consumer::{Handler, Record};
use platform::db::Database;
use platform::router::Router;

struct TestApp {
    db: Database,
    topics: Topics,
    /// order-service's consumers of inventory's answers and of dead letters, in one router.
    consumer: Router,
    waits: Waits,
}

async fn spawn_app() -> TestApp {
    let dir = std::env::temp_dir().join(format!("oo-lifecycle-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/order.db", dir.display());
    let db = Database::connect(&url, 4, &store::SCHEMA)
        .await
        .expect("SQLite opens");
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

/// `event`'s record, as the consumer hands it over.
fn record<E: Event>(event: &E) -> Record {
    Record {
        topic: E::TYPE.into(),
        partition: 0,
        offset: event.order_id(),
        timestamp: None,
        key: Some(event.order_id().to_string().into_bytes()),
        payload: Some(serde_json::to_vec(event).unwrap()),
        headers: vec![(
            contracts::headers::EVENT_ID.into(),
            Some(event.event_id().to_string().into_bytes()),
        )],
    }
}

impl TestApp {
    /// A new order, put in `status` as if the moves to it had happened.
    async fn order_in(&self, status: OrderStatus) -> i64 {
        let request = OrderRequest::try_from(CreateOrderBody {
            user_id: 7,
            items: vec![ItemBody {
                sku: "ABC-001".into(),
                qty: 1,
            }],
            contact: None,
        })
        .expect("a valid request");
        let mut tx = self.db.begin().await.unwrap();
        let created = store::create_orders_in(
            &mut tx,
            &self.topics,
            &[NewOrder {
                request: &request,
                idempotency_key: None,
                trace: &[],
            }],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let order_id = match created.as_slice() {
            [Created::New(id)] => *id,
            other => panic!("a new order, not {other:?}"),
        };
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
            Trigger::Reserved => record(&InventoryReserved {
                event_id: contracts::new_event_id(),
                order_id,
                status: ReservedStatus::Reserved,
                items: vec![LineItem {
                    sku: "ABC-001".into(),
                    qty: 1,
                }],
                timestamp: Utc::now(),
            }),
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
            Trigger::DeadLettered => Record {
                topic: self.topics.order_created_dlt(),
                partition: 0,
                offset: order_id,
                timestamp: None,
                key: Some(order_id.to_string().into_bytes()),
                payload: Some(
                    serde_json::json!({"orderId": order_id})
                        .to_string()
                        .into_bytes(),
                ),
                headers: vec![
                    (
                        contracts::headers::DLT_ORIGINAL_CONSUMER_GROUP.into(),
                        Some(
                            self.topics
                                .group(order_service::INVENTORY_GROUP)
                                .into_bytes(),
                        ),
                    ),
                    (
                        contracts::headers::DLT_EXCEPTION_FQCN.into(),
                        Some(b"openorder.SimulatedFailure".to_vec()),
                    ),
                ],
            },
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
