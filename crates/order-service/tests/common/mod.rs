//! What order-service's tests share: a SQLite database with its schema, the API over it
//! through the router (no socket, no broker), requests answered as status, headers and
//! JSON, an order placed straight through the store, and the records its consumers read.

// Each test file uses its own part of these.
#![allow(dead_code)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use chrono::Utc;
use contracts::events::ReservedStatus;
use contracts::{Event, InventoryReserved, LineItem, Topics};
use order_service::domain::{CreateOrderBody, ItemBody, OrderRequest};
use order_service::intake::Intake;
use order_service::routes::{routes, AppState};
use order_service::store::{self, Created, NewOrder};
use order_service::waits::Waits;
use platform::auth::Auth;
use platform::consumer::Record;
use platform::db::Database;
use serde_json::Value;
use tower::ServiceExt;

/// A new SQLite database with order-service's schema, in a directory of its own whose
/// name starts `oo-{name}-`.
pub async fn database(name: &str) -> Database {
    let dir = std::env::temp_dir().join(format!("oo-{name}-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/order.db", dir.display());
    Database::connect(&url, 4, &store::SCHEMA)
        .await
        .expect("SQLite opens")
}

/// The API over `db`, with no authentication configured: its intake queues up to `queue`
/// orders, `waits` holds the waiting requests, and `stuck_after` is `--stuck-after`.
pub fn router(
    db: &Database,
    topics: &Topics,
    queue: usize,
    waits: Waits,
    stuck_after: Duration,
) -> Router {
    platform::http::app(Auth::unconfigured().apply(routes(AppState {
        db: db.clone(),
        webhooks: contracts::destinations::Destinations::public_only(),
        topics: topics.clone(),
        intake: Intake::start(db.clone(), topics.clone(), queue, Default::default()),
        waits,
        stuck_after,
    })))
}

/// `request` answered by `router`: its status, headers and JSON body (null if none).
pub async fn send(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

/// A new PENDING order of user 7 for one `ABC-001`, created through the store in a
/// transaction of its own; its id.
pub async fn create_order(db: &Database, topics: &Topics) -> i64 {
    let request = OrderRequest::try_from(CreateOrderBody {
        user_id: 7,
        items: vec![ItemBody {
            sku: "ABC-001".into(),
            qty: 1,
        }],
        contact: None,
    })
    .expect("a valid request");
    let mut tx = db.begin().await.unwrap();
    let created = store::create_orders_in(
        &mut tx,
        topics,
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

/// Inventory's reservation of the order [`create_order`] places.
pub fn reserved(order_id: i64) -> InventoryReserved {
    InventoryReserved {
        event_id: contracts::new_event_id(),
        order_id,
        status: ReservedStatus::Reserved,
        items: vec![LineItem {
            sku: "ABC-001".into(),
            qty: 1,
        }],
        timestamp: Utc::now(),
    }
}

/// `event`'s record, as the consumer hands it over.
pub fn record<E: Event>(event: &E) -> Record {
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

/// A dead letter of `order.created` holding `value`, from the consumer `group`, at
/// `offset`, with `key` if any.
pub fn dead_letter(key: Option<&str>, value: Value, group: &str, offset: i64) -> Record {
    Record {
        topic: "order.created.DLT".into(),
        partition: 0,
        offset,
        timestamp: None,
        key: key.map(|k| k.as_bytes().to_vec()),
        payload: Some(value.to_string().into_bytes()),
        headers: vec![
            (
                contracts::headers::DLT_ORIGINAL_CONSUMER_GROUP.into(),
                Some(group.as_bytes().to_vec()),
            ),
            (
                contracts::headers::DLT_EXCEPTION_FQCN.into(),
                Some(b"openorder.SimulatedFailure".to_vec()),
            ),
        ],
    }
}
