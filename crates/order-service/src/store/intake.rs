//! Placing orders: each stored PENDING with its items and its `order.created` event, in a
//! transaction with idempotency keys, or on PostgreSQL as one statement of its own.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::Utc;
use contracts::Topics;
use platform::db::{value_rows, Database, Tx};
use platform::outbox::Outgoing;
use sqlx::Row;

use crate::domain::{OrderRequest, OrderStatus};

/// What a create request did.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// A new order.
    New(i64),
    /// The idempotency key was used before for the same request: that order.
    Replayed(i64),
    /// The idempotency key was used before for a different request.
    KeyReused,
}

/// The request as compared for idempotency: user and merged lines, in order.
fn fingerprint(request: &OrderRequest) -> String {
    let items: Vec<(&str, i64)> = request
        .items
        .iter()
        .map(|(s, q)| (s.as_str(), q.get()))
        .collect();
    let mut fingerprint = serde_json::json!({"userId": request.user_id.get(), "items": items});
    // Only when present, so keys stored before contacts existed still match their requests.
    if let Some(contact) = &request.contact {
        fingerprint["contact"] = serde_json::json!(contact);
    }
    fingerprint.to_string()
}

/// A request to create an order, with its idempotency key if it came with one.
pub struct NewOrder<'a> {
    pub request: &'a OrderRequest,
    pub idempotency_key: Option<&'a str>,
    /// The trace context of the request that placed it ([`platform::telemetry`]).
    pub trace: &'a [(String, String)],
}

/// Inserts each order as PENDING with its items and its `order.created` event in `tx`
/// (the caller commits; see [`crate::intake`]). With an idempotency key, a repeat of the
/// same request returns the first order instead, and writes nothing. Set-based: one INSERT
/// for all the orders of the batch ([`insert_orders`]), one for all their items and one for
/// all their events (each per [`platform::db::statement_chunks`] piece), plus what the
/// orders with an idempotency key need.
pub async fn create_orders_in(
    tx: &mut Tx,
    topics: &Topics,
    orders: &[NewOrder<'_>],
) -> Result<Vec<Created>, sqlx::Error> {
    let now = Utc::now();
    let now_text = platform::now_text();
    // What an earlier request with the same key created; None: a new order. A key given
    // earlier in this batch too is answered once that order has its id (`repeats`).
    let mut results: Vec<Option<Created>> = Vec::with_capacity(orders.len());
    let mut first_with_key: HashMap<&str, usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for (n, order) in orders.iter().enumerate() {
        let earlier = match order.idempotency_key {
            Some(key) => match first_with_key.get(key) {
                Some(&first) => {
                    repeats.push((n, first));
                    Some(Created::KeyReused) // replaced below
                }
                None => {
                    let earlier = claim_key(tx, key, order.request, &now_text).await?;
                    if earlier.is_none() {
                        first_with_key.insert(key, n);
                    }
                    earlier
                }
            },
            None => None,
        };
        results.push(earlier);
    }
    let new: Vec<&NewOrder<'_>> = orders
        .iter()
        .zip(&results)
        .filter(|(_, earlier)| earlier.is_none())
        .map(|(order, _)| order)
        .collect();
    let users: Vec<i64> = new.iter().map(|o| o.request.user_id.get()).collect();
    let mut ids = insert_orders(tx, &users, &now_text).await?.into_iter();
    let mut items: Vec<(i64, i64, &str, i64)> = Vec::new();
    let mut events = Vec::with_capacity(new.len());
    for (order, result) in orders.iter().zip(results.iter_mut()) {
        if result.is_some() {
            continue;
        }
        let order_id = ids
            .next()
            .ok_or_else(|| sqlx::Error::Protocol("fewer order ids than orders".into()))?;
        let request = order.request;
        for (line, (sku, qty)) in request.items.iter().enumerate() {
            items.push((order_id, line as i64, sku.as_str(), qty.get()));
        }
        if let Some(key) = order.idempotency_key {
            sqlx::query("UPDATE idempotency_keys SET order_id = $1 WHERE key = $2")
                .bind(order_id)
                .bind(key)
                .execute(&mut **tx)
                .await?;
        }
        let event = request.created(order_id, now);
        events.push(Outgoing::traced(
            &topics.order_created(),
            &event,
            order.trace.to_vec(),
        ));
        *result = Some(Created::New(order_id));
    }
    for chunk in platform::db::statement_chunks(&items, 4) {
        let sql = format!(
            "INSERT INTO order_items (order_id, line, sku, qty) VALUES {}",
            value_rows(chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (order_id, line, sku, qty) in chunk {
            query = query.bind(*order_id).bind(*line).bind(*sku).bind(*qty);
        }
        query.execute(&mut **tx).await?;
    }
    for (repeat, first) in repeats {
        results[repeat] = match results[first] {
            Some(Created::New(id))
                if fingerprint(orders[repeat].request) == fingerprint(orders[first].request) =>
            {
                Some(Created::Replayed(id))
            }
            _ => Some(Created::KeyReused),
        };
    }
    platform::outbox::enqueue_all(tx, &events).await?;
    Ok(results.into_iter().flatten().collect())
}

/// Most parameters one statement of [`create_orders_alone`] binds (PostgreSQL takes 65,535).
const MAX_STATEMENT_PARAMETERS: usize = 30_000;

/// Order ids drawn from the orders' sequence ahead of need, [`IdReserve::AHEAD`] more than a
/// batch asks for when it runs short, so that at light load an order costs no round trip
/// for its id. Ids rise within one process (a sequence only rises); a restart leaves the
/// unused ones as a gap, as a rolled-back insert does. Cheap to clone.
#[derive(Clone, Default)]
pub struct IdReserve(Arc<tokio::sync::Mutex<VecDeque<i64>>>);

impl IdReserve {
    /// How many ids are drawn beyond what a batch needs.
    pub const AHEAD: usize = 64;

    /// `n` ids, in rising order.
    pub async fn take(&self, db: &Database, n: usize) -> Result<Vec<i64>, sqlx::Error> {
        let mut ids = self.0.lock().await;
        if ids.len() < n {
            let more = n - ids.len() + Self::AHEAD;
            let mut drawn: Vec<i64> = db
                .observe(
                    sqlx::query(
                        "SELECT nextval(pg_get_serial_sequence('orders', 'id')) AS id FROM generate_series(1, $1)",
                    )
                    .bind(more as i64)
                    .fetch_all(&db.pool)
                    .await,
                )?
                .iter()
                .map(|row| row.try_get("id"))
                .collect::<Result<_, _>>()?;
            drawn.sort_unstable();
            ids.extend(drawn);
        }
        Ok(ids.drain(..n).collect())
    }
}

/// On PostgreSQL, [`create_orders_in`] for orders without an idempotency key, as one round
/// trip and one commit: the batch's ids from `ids` (drawn from the orders' sequence ahead
/// of need), then one statement (data-modifying `WITH` clauses) inserting the orders,
/// their items and their events, which the database commits as it ends: no BEGIN and
/// COMMIT round trips. None when the batch is too large for one statement (the caller
/// writes it in a transaction). The foreign key from items to orders holds: it is checked
/// as the statement ends, when both are in. `parent`: the span the transaction is traced in.
pub async fn create_orders_alone(
    db: &Database,
    ids: &IdReserve,
    topics: &Topics,
    orders: &[NewOrder<'_>],
    parent: Option<&tracing::Span>,
) -> Result<Option<Vec<Created>>, sqlx::Error> {
    debug_assert!(orders.iter().all(|o| o.idempotency_key.is_none()));
    let lines: usize = orders.iter().map(|o| o.request.items.len()).sum();
    if orders.is_empty() || 2 + orders.len() * 6 + lines * 4 > MAX_STATEMENT_PARAMETERS {
        return Ok(None);
    }
    let ids = ids.take(db, orders.len()).await?;
    let now = Utc::now();
    let now_text = platform::now_text();
    let events: Vec<Outgoing> = orders
        .iter()
        .zip(&ids)
        .map(|(order, id)| {
            Outgoing::traced(
                &topics.order_created(),
                &order.request.created(*id, now),
                order.trace.to_vec(),
            )
        })
        .collect();
    // $1 the status, $2 the time; then each row's own values, numbered on.
    let mut next = 3;
    let mut numbered = |n: usize| {
        let row: Vec<String> = (next..next + n).map(|i| format!("${i}")).collect();
        next += n;
        row.join(", ")
    };
    let order_rows: Vec<String> = orders
        .iter()
        .map(|_| format!("({}, $1, $2, $2)", numbered(2)))
        .collect();
    let item_rows: Vec<String> = (0..lines).map(|_| format!("({})", numbered(4))).collect();
    let event_rows: Vec<String> = events
        .iter()
        .map(|_| format!("({}, $2)", numbered(4)))
        .collect();
    let sql = format!(
        "WITH new_orders AS (INSERT INTO orders (id, user_id, status, created_at, updated_at) VALUES {}), \
         new_items AS (INSERT INTO order_items (order_id, line, sku, qty) VALUES {}) \
         INSERT INTO outbox ({}) VALUES {}",
        order_rows.join(", "),
        item_rows.join(", "),
        platform::outbox::COLUMNS,
        event_rows.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(OrderStatus::Pending.as_str())
        .bind(&now_text);
    for (order, id) in orders.iter().zip(&ids) {
        query = query.bind(*id).bind(order.request.user_id.get());
    }
    for (order, id) in orders.iter().zip(&ids) {
        for (line, (sku, qty)) in order.request.items.iter().enumerate() {
            query = query
                .bind(*id)
                .bind(line as i64)
                .bind(sku.as_str())
                .bind(qty.get());
        }
    }
    for event in &events {
        for value in event.values() {
            query = query.bind(value);
        }
    }
    db.execute_alone(query, parent, true).await?;
    Ok(Some(ids.into_iter().map(Created::New).collect()))
}

/// Inserts one PENDING order for each of `users`, in this order, and returns their ids in
/// the same order: one statement per [`platform::db::statement_chunks`] piece (one round
/// trip for a whole batch, where an INSERT each cost a round trip per order). The rows are
/// inserted in the order of their position in the batch (`ORDER BY` over the values), and
/// ids are drawn from a rising sequence as rows are inserted, so the ids sorted ascending
/// are the orders' ids in batch order (RETURNING itself promises no order).
async fn insert_orders(
    tx: &mut Tx,
    users: &[i64],
    now_text: &str,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut ids = Vec::with_capacity(users.len());
    let positions: Vec<(usize, i64)> = users.iter().copied().enumerate().collect();
    for chunk in platform::db::statement_chunks(&positions, 1) {
        let rows: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, (position, _))| format!("(${}, {position})", i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO orders (user_id, status, created_at, updated_at) \
             SELECT column1, $1, $2, $2 FROM (VALUES {}) AS batch ORDER BY column2 RETURNING id",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(OrderStatus::Pending.as_str())
            .bind(now_text);
        for (_, user) in chunk {
            query = query.bind(*user);
        }
        let mut chunk_ids: Vec<i64> = query
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        chunk_ids.sort_unstable();
        ids.extend(chunk_ids);
    }
    Ok(ids)
}

/// Claims an idempotency key for `request`. None if it is new (the caller creates the
/// order); else what the earlier request with this key created. Concurrent requests with
/// one key queue here, and on SQLite the insert takes the write lock.
async fn claim_key(
    tx: &mut Tx,
    key: &str,
    request: &OrderRequest,
    now_text: &str,
) -> Result<Option<Created>, sqlx::Error> {
    let fingerprint = fingerprint(request);
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (key, request, order_id, created_at) VALUES ($1, $2, 0, $3)
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(&fingerprint)
    .bind(now_text)
    .execute(&mut **tx)
    .await?;
    if claimed.rows_affected() == 1 {
        return Ok(None);
    }
    let row = sqlx::query("SELECT request, order_id FROM idempotency_keys WHERE key = $1")
        .bind(key)
        .fetch_one(&mut **tx)
        .await?;
    let earlier: String = row.try_get("request")?;
    Ok(Some(if earlier == fingerprint {
        Created::Replayed(row.try_get("order_id")?)
    } else {
        Created::KeyReused
    }))
}
