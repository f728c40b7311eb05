//! order-service's database: orders, their items, processed event ids, and the outbox.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::Utc;
use contracts::lifecycle::{self, Trigger};
use contracts::{LineItem, Shortage, Topics};
use platform::db::{placeholders, value_rows, Database, Schema, Tx};
use platform::outbox::Outgoing;
use sqlx::Row;

use crate::domain::{OrderRequest, OrderStatus};
use crate::waits::Waits;

pub const SCHEMA: Schema = Schema(&[
    "CREATE TABLE IF NOT EXISTS orders (
        id {id},
        user_id {int} NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        shortages TEXT,
        error TEXT,
        released_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, id)",
    "CREATE TABLE IF NOT EXISTS order_items (
        order_id {int} NOT NULL REFERENCES orders (id),
        line {int} NOT NULL,
        sku TEXT NOT NULL,
        qty {int} NOT NULL,
        PRIMARY KEY (order_id, line)
    )",
    "CREATE TABLE IF NOT EXISTS idempotency_keys (
        key TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        order_id {int} NOT NULL,
        created_at TEXT NOT NULL
    )",
    platform::dedupe::TABLE,
    platform::outbox::TABLE,
    platform::dedupe::DEAD_LETTERED_TABLE,
    // For pruning keys by age (platform::retention).
    "CREATE INDEX IF NOT EXISTS idempotency_keys_by_time ON idempotency_keys (created_at)",
    // What was applied under each event id, and dead-lettered under it (platform::dedupe).
    platform::dedupe::BODY_HASH_COLUMN,
    platform::dedupe::DEAD_LETTERED_BODY_HASH_COLUMN,
    // PENDING orders by age, for the stuck-order gauges, `/admin/orders/stuck` and expiry
    // ([`crate::stuck`]): a partial index holds only the orders in flight, so it stays
    // small, and those reads cost a few index pages whatever the table's size. (Queries
    // must say `status = 'PENDING'` literally for SQLite to use it.)
    "CREATE INDEX IF NOT EXISTS orders_pending_by_age ON orders (created_at) WHERE status = 'PENDING'",
]);

/// `reason` of an order cancelled because it stayed PENDING past `--expire-pending-after`.
pub const TIMEOUT: &str = "TIMEOUT";

// An order as the API shows it: in `contracts::api`, where the console reads it too.
pub use contracts::api::OrderView;

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

const ORDER_COLUMNS: &str =
    "id, user_id, status, reason, shortages, error, released_at, created_at, updated_at";

fn order_view(row: &sqlx::any::AnyRow, items: Vec<LineItem>) -> Result<OrderView, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let shortages: Option<String> = row.try_get("shortages")?;
    Ok(OrderView {
        order_id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown status {status}").into()))?,
        items,
        reason: row.try_get("reason")?,
        shortages: shortages
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| sqlx::Error::Decode(e.into()))?,
        error: row.try_get("error")?,
        released_at: row.try_get("released_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn items_of(
    db: &Database,
    order_ids: &[i64],
) -> Result<HashMap<i64, Vec<LineItem>>, sqlx::Error> {
    let mut out: HashMap<i64, Vec<LineItem>> = HashMap::new();
    if order_ids.is_empty() {
        return Ok(out);
    }
    // Ids are integers from our own database, so inlining them is safe.
    let ids = order_ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rows = sqlx::query(&format!(
        "SELECT order_id, sku, qty FROM order_items WHERE order_id IN ({ids}) ORDER BY order_id, line"
    ))
    .fetch_all(&db.pool)
    .await?;
    for row in rows {
        out.entry(row.try_get("order_id")?)
            .or_default()
            .push(LineItem {
                sku: row.try_get("sku")?,
                qty: row.try_get("qty")?,
            });
    }
    Ok(out)
}

pub async fn get_order(db: &Database, order_id: i64) -> Result<Option<OrderView>, sqlx::Error> {
    let Some(row) = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
        .bind(order_id)
        .fetch_optional(&db.pool)
        .await?
    else {
        return Ok(None);
    };
    let mut items = items_of(db, &[order_id]).await?;
    order_view(&row, items.remove(&order_id).unwrap_or_default()).map(Some)
}

/// One page of a user's orders, newest first; `size + 1` rows are read to know if more follow.
pub async fn list_orders(
    db: &Database,
    user_id: i64,
    page: i64,
    size: i64,
) -> Result<(Vec<OrderView>, bool), sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(user_id)
    .bind(size + 1)
    .bind(page * size)
    .fetch_all(&db.pool)
    .await?;
    let has_more = rows.len() as i64 > size;
    let rows = &rows[..rows.len().min(size as usize)];
    let ids: Vec<i64> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut items = items_of(db, &ids).await?;
    let orders = rows
        .iter()
        .zip(&ids)
        .map(|(row, id)| order_view(row, items.remove(id).unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    Ok((orders, has_more))
}

/// What an event says happened to an order, and what it tells about it.
pub struct Outcome {
    /// What moves the order, and from which statuses ([`lifecycle::sources`]).
    pub trigger: Trigger,
    pub reason: Option<String>,
    pub shortages: Option<Vec<Shortage>>,
    pub error: Option<String>,
}

impl Outcome {
    /// `trigger`, with no reason, shortages or error.
    pub fn of(trigger: Trigger) -> Self {
        Self {
            trigger,
            reason: None,
            shortages: None,
            error: None,
        }
    }

    /// The status the trigger moves an order to ([`lifecycle::target`]).
    pub fn status(&self) -> OrderStatus {
        lifecycle::target(self.trigger)
    }
}

/// Moves an order as `outcome` says if the lifecycle's table allows it; returns the status
/// it has now (None for an order this database does not know). One conditional UPDATE in
/// the usual case; the status is read only when the update did not apply (a late or
/// repeated event). Whoever waits for the order hears of the move at the commit ([`Waits`]).
pub async fn apply_outcome(
    tx: &mut Tx,
    order_id: i64,
    outcome: &Outcome,
    waits: &Waits,
) -> Result<Option<OrderStatus>, sqlx::Error> {
    if apply_outcome_to(tx, &[order_id], outcome, waits)
        .await?
        .contains(&order_id)
    {
        return Ok(Some(outcome.status()));
    }
    status_of(tx, order_id).await
}

/// Moves each of `order_ids` as `outcome` says where the lifecycle's table allows it, in
/// one conditional UPDATE (of the orders in a status the trigger moves from); returns the
/// orders it moved, whose waiters hear of it at the commit ([`Waits::announce`]).
pub async fn apply_outcome_to(
    tx: &mut Tx,
    order_ids: &[i64],
    outcome: &Outcome,
    waits: &Waits,
) -> Result<HashSet<i64>, sqlx::Error> {
    if order_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let shortages = outcome
        .shortages
        .as_ref()
        .map(|s| serde_json::to_string(s).expect("shortages serialize"));
    let sources = status_list(&lifecycle::sources(outcome.trigger));
    let now = platform::now_text();
    let mut moved = HashSet::with_capacity(order_ids.len());
    let mut created_at: Vec<String> = Vec::with_capacity(order_ids.len());
    for chunk in platform::db::statement_chunks(order_ids, 1) {
        let sql = format!(
            "UPDATE orders SET status = $1, reason = $2, shortages = $3, error = $4, updated_at = $5
             WHERE id IN ({}) AND status IN ({sources}) RETURNING id, created_at",
            placeholders(6, chunk.len())
        );
        let mut query = sqlx::query(&sql)
            .bind(outcome.status().as_str())
            .bind(outcome.reason.clone())
            .bind(shortages.clone())
            .bind(outcome.error.clone())
            .bind(&now);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            moved.insert(row.try_get("id")?);
            created_at.push(row.try_get("created_at")?);
        }
    }
    let told: Vec<i64> = moved.iter().copied().collect();
    waits.announce(tx, &told).await?;
    // The decisions an order waits for, not its cancellation.
    let decided = [
        OrderStatus::Confirmed,
        OrderStatus::Rejected,
        OrderStatus::Failed,
    ];
    if decided.contains(&outcome.status()) {
        waits.time_decisions(tx, outcome.status(), created_at);
    }
    Ok(moved)
}

/// An order's status; None for an order this database does not know.
pub async fn status_of(tx: &mut Tx, order_id: i64) -> Result<Option<OrderStatus>, sqlx::Error> {
    let Some(row) = sqlx::query("SELECT status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    let current: String = row.try_get("status")?;
    OrderStatus::parse(&current)
        .map(Some)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown status {current}").into()))
}

/// `'A', 'B'` for SQL: the names are our own constants, so inlining them is safe. With no
/// status, `''`: `IN ('')` matches nothing.
fn status_list(statuses: &[OrderStatus]) -> String {
    if statuses.is_empty() {
        return "''".to_string();
    }
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a cancel request found.
pub enum CancelOutcome {
    /// The order is now CANCELLED and `order.cancelled` is in the outbox.
    Cancelled(OrderView),
    /// It already was CANCELLED: nothing changed.
    AlreadyCancelled(OrderView),
    /// Its status does not allow cancelling.
    NotCancellable(OrderStatus),
    NotFound,
}

/// Cancels an order if its status allows, with its `order.cancelled` event, in one transaction.
/// The conditional update comes first, so SQLite takes its write lock at the start.
/// Cancels `order_id`; when `owner` is given, only if it is that user's order (another's
/// is [`CancelOutcome::NotFound`]).
pub async fn cancel_order(
    db: &Database,
    topics: &Topics,
    order_id: i64,
    owner: Option<i64>,
    waits: &Waits,
) -> Result<CancelOutcome, sqlx::Error> {
    let cancelled = lifecycle::target(Trigger::Cancel);
    let sources = status_list(&lifecycle::sources(Trigger::Cancel));
    let owned = if owner.is_some() {
        " AND user_id = $4"
    } else {
        ""
    };
    let mut tx = db.begin().await?;
    let sql = format!(
        "UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status IN ({sources}){owned} RETURNING user_id"
    );
    let mut update = sqlx::query(&sql)
        .bind(cancelled.as_str())
        .bind(platform::now_text())
        .bind(order_id);
    if let Some(owner) = owner {
        update = update.bind(owner);
    }
    let updated = update.fetch_optional(&mut *tx).await?;
    let Some(row) = updated else {
        tx.rollback().await?;
        let order = get_order(db, order_id).await?;
        return Ok(
            match order.filter(|o| owner.is_none_or(|u| u == o.user_id)) {
                None => CancelOutcome::NotFound,
                Some(order) if order.status == cancelled => CancelOutcome::AlreadyCancelled(order),
                Some(order) => CancelOutcome::NotCancellable(order.status),
            },
        );
    };
    let event = crate::domain::cancelled(order_id, row.try_get("user_id")?);
    platform::outbox::enqueue(&mut tx, &topics.order_cancelled(), &event).await?;
    waits.announce(&mut tx, &[order_id]).await?;
    tx.commit().await?;
    let order = get_order(db, order_id)
        .await?
        .expect("the order was just updated");
    Ok(CancelOutcome::Cancelled(order))
}

/// Notes that inventory gave a cancelled order's stock back.
pub async fn mark_released(tx: &mut Tx, order_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orders SET released_at = $1 WHERE id = $2 AND released_at IS NULL")
        .bind(platform::now_text())
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// `CREATE INDEX … WHERE status = 'PENDING'` ([`SCHEMA`]) serves only queries that say so.
const PENDING: &str = "'PENDING'";

/// Cancels, with the reason [`TIMEOUT`], up to `limit` orders PENDING since before
/// `cutoff` (RFC 3339 text, as `created_at` is kept), oldest first, as the lifecycle's
/// [`Trigger::Expired`] moves them, each with its `order.cancelled` event, in one
/// transaction; returns the orders it expired. Instances that expire at once each move an
/// order at most once: the UPDATE is conditional, and only the rows it moved get events.
pub async fn expire_pending(
    db: &Database,
    topics: &Topics,
    cutoff: &str,
    limit: i64,
    waits: &Waits,
) -> Result<Vec<i64>, sqlx::Error> {
    debug_assert_eq!(format!("'{}'", OrderStatus::Pending.as_str()), PENDING);
    let sources = status_list(&lifecycle::sources(Trigger::Expired));
    let sql = format!(
        "UPDATE orders SET status = $1, reason = $2, updated_at = $3
         WHERE id IN (SELECT id FROM orders WHERE status = {PENDING} AND created_at < $4 ORDER BY created_at LIMIT $5)
           AND status IN ({sources})
         RETURNING id, user_id"
    );
    let mut tx = db.begin().await?;
    let rows = sqlx::query(&sql)
        .bind(lifecycle::target(Trigger::Expired).as_str())
        .bind(TIMEOUT)
        .bind(platform::now_text())
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok(Vec::new());
    }
    let mut expired = Vec::with_capacity(rows.len());
    let mut events = Vec::with_capacity(rows.len());
    let topic = topics.order_cancelled();
    for row in &rows {
        let order_id: i64 = row.try_get("id")?;
        let event = crate::domain::cancelled(order_id, row.try_get("user_id")?);
        events.push(Outgoing::new(&topic, &event));
        expired.push(order_id);
    }
    platform::outbox::enqueue_all(&mut tx, &events).await?;
    waits.announce(&mut tx, &expired).await?;
    tx.commit().await?;
    Ok(expired)
}

/// The PENDING orders: how many were placed before `cutoff` (stuck), and when the oldest
/// was placed (None: none is PENDING). One read of the partial index.
pub async fn pending_summary(
    db: &Database,
    cutoff: &str,
) -> Result<(i64, Option<String>), sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT COUNT(CASE WHEN created_at < $1 THEN 1 END) AS stuck, MIN(created_at) AS oldest
         FROM orders WHERE status = {PENDING}"
    ))
    .bind(cutoff)
    .fetch_one(&db.pool)
    .await?;
    Ok((row.try_get("stuck")?, row.try_get("oldest")?))
}

/// How many orders are in each status of the lifecycle, every one of
/// [`OrderStatus::ALL`] in its order (0 when no order is in it), and how many PENDING ones
/// were placed before `cutoff` (stuck, as [`pending_summary`] counts them). One statement,
/// `GROUP BY status`, the same on SQLite and PostgreSQL; it reads the whole table (no index
/// holds every status), so it is for an operator's page, not for polling. A status this
/// version does not know is an error, as when an order is read ([`get_order`]).
pub async fn count_by_status(
    db: &Database,
    cutoff: &str,
) -> Result<(Vec<(OrderStatus, i64)>, i64), sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT status, COUNT(*) AS orders,
                COUNT(CASE WHEN status = {PENDING} AND created_at < $1 THEN 1 END) AS stuck
         FROM orders GROUP BY status"
    ))
    .bind(cutoff)
    .fetch_all(&db.pool)
    .await?;
    let mut counts: Vec<(OrderStatus, i64)> = OrderStatus::ALL
        .into_iter()
        .map(|status| (status, 0))
        .collect();
    let mut stuck = 0;
    for row in &rows {
        let status: String = row.try_get("status")?;
        let status = OrderStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown status {status}").into()))?;
        let orders: i64 = row.try_get("orders")?;
        if let Some((_, count)) = counts.iter_mut().find(|(s, _)| *s == status) {
            *count += orders;
        }
        let stuck_here: i64 = row.try_get("stuck")?;
        stuck += stuck_here;
    }
    Ok((counts, stuck))
}

// An order PENDING longer than `--stuck-after`, as `/admin/orders/stuck` lists it: in
// `contracts::api`, where the console reads it too.
pub use contracts::api::StuckOrder;

/// Whole seconds from `created_at` (RFC 3339) to now; 0 if it does not parse.
pub fn age_seconds(created_at: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(created_at)
        .map(|at| (Utc::now() - at.with_timezone(&Utc)).num_seconds().max(0))
        .unwrap_or(0)
}

/// Up to `limit` orders PENDING since before `cutoff`, oldest first, and whether more are.
pub async fn stuck_orders(
    db: &Database,
    cutoff: &str,
    limit: i64,
) -> Result<(Vec<StuckOrder>, bool), sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT id, user_id, created_at FROM orders
         WHERE status = {PENDING} AND created_at < $1 ORDER BY created_at, id LIMIT $2"
    ))
    .bind(cutoff)
    .bind(limit + 1)
    .fetch_all(&db.pool)
    .await?;
    let has_more = rows.len() as i64 > limit;
    let orders = rows
        .iter()
        .take(limit as usize)
        .map(|row| -> Result<StuckOrder, sqlx::Error> {
            let created_at: String = row.try_get("created_at")?;
            Ok(StuckOrder {
                order_id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                age_seconds: age_seconds(&created_at),
                created_at,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((orders, has_more))
}
