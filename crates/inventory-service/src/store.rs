//! inventory-service's database: stock per SKU, reservations per order, one decision per
//! order, at most one release per order, processed event ids, and the outbox. `CHECK (available >= 0)` backs the rule in
//! the database itself: whatever the code does, stock cannot go negative.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::Context;
use platform::db::{placeholders, value_rows, Backend, Database, Schema, Tx};
use serde::Deserialize;
use sqlx::Row;

pub const SCHEMA: Schema = Schema(&[
    "CREATE TABLE IF NOT EXISTS stock (
        sku TEXT PRIMARY KEY,
        available {int} NOT NULL CHECK (available >= 0),
        reserved {int} NOT NULL DEFAULT 0 CHECK (reserved >= 0),
        updated_at TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS reservations (
        order_id {int} NOT NULL,
        sku TEXT NOT NULL,
        qty {int} NOT NULL CHECK (qty > 0),
        created_at TEXT NOT NULL,
        PRIMARY KEY (order_id, sku)
    )",
    "CREATE TABLE IF NOT EXISTS decisions (
        order_id {int} PRIMARY KEY,
        outcome TEXT NOT NULL,
        event_id TEXT NOT NULL,
        decided_at TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS releases (
        order_id {int} PRIMARY KEY,
        items TEXT NOT NULL,
        event_id TEXT NOT NULL,
        released_at TEXT NOT NULL
    )",
    platform::dedupe::TABLE,
    platform::outbox::TABLE,
    platform::dedupe::DEAD_LETTERED_TABLE,
    FAULT_SWITCHES_TABLE,
    // What was applied under each event id, and dead-lettered under it (platform::dedupe).
    platform::dedupe::BODY_HASH_COLUMN,
    platform::dedupe::DEAD_LETTERED_BODY_HASH_COLUMN,
]);

/// Fault switches set with `PUT /admin/faults` (name `fail` or `flaky`): they outlive a
/// restart and win over the flags, which only give the value a switch never set has.
const FAULT_SWITCHES_TABLE: &str = "CREATE TABLE IF NOT EXISTS fault_switches (
    name TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    set_at TEXT NOT NULL
)";

/// The fault switches set through the API: (name, SKU).
pub async fn fault_switches(db: &Database) -> anyhow::Result<Vec<(String, String)>> {
    let rows = sqlx::query("SELECT name, sku FROM fault_switches ORDER BY name")
        .fetch_all(&db.pool)
        .await
        .context("Failed to read the fault switches")?;
    rows.iter()
        .map(|r| Ok((r.try_get("name")?, r.try_get("sku")?)))
        .collect::<Result<_, sqlx::Error>>()
        .context("Failed to decode a fault switch")
}

/// Stores the switches in `changes` (name, SKU), in one transaction.
pub async fn set_fault_switches(
    db: &Database,
    changes: &[(&str, &str)],
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let now = platform::now_text();
    for (name, sku) in changes {
        sqlx::query(
            "INSERT INTO fault_switches (name, sku, set_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET sku = excluded.sku, set_at = excluded.set_at",
        )
        .bind(*name)
        .bind(*sku)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

// One SKU's stock as the API shows it: in `contracts::api`, where the console reads it too.
pub use contracts::api::StockItem;

/// A line of the seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedLine {
    pub sku: String,
    pub available: i64,
}

/// The seed the project ships: a handful of SKUs, `ABC-001` in stock, `OUT-001` at zero.
pub const DEFAULT_SEED: &str = include_str!("../seed/stock.json");

/// Loads `seed` (JSON array of `{sku, available}`) if the stock table is empty (first start).
/// Returns how many SKUs were loaded.
pub async fn seed_if_empty(db: &Database, seed: &str) -> anyhow::Result<usize> {
    let lines: Vec<SeedLine> =
        serde_json::from_str(seed).context("Failed to parse the seed file")?;
    for line in &lines {
        contracts::values::Sku::parse(&line.sku)
            .map_err(|e| anyhow::anyhow!("seed SKU {:?} {e}", line.sku))?;
        anyhow::ensure!(
            line.available >= 0,
            "seed SKU {} has negative stock",
            line.sku
        );
    }
    let mut tx = db.begin().await?;
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM stock")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    if count > 0 {
        return Ok(0);
    }
    let now = platform::now_text();
    for line in &lines {
        sqlx::query(
            "INSERT INTO stock (sku, available, reserved, updated_at) VALUES ($1, $2, 0, $3)",
        )
        .bind(&line.sku)
        .bind(line.available)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(lines.len())
}

fn stock_item(row: &sqlx::any::AnyRow) -> Result<StockItem, sqlx::Error> {
    Ok(StockItem {
        sku: row.try_get("sku")?,
        available: row.try_get("available")?,
        reserved: row.try_get("reserved")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn list_stock(db: &Database) -> Result<Vec<StockItem>, sqlx::Error> {
    sqlx::query("SELECT sku, available, reserved, updated_at FROM stock ORDER BY sku")
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(stock_item)
        .collect()
}

pub async fn get_stock(db: &Database, sku: &str) -> Result<Option<StockItem>, sqlx::Error> {
    sqlx::query("SELECT sku, available, reserved, updated_at FROM stock WHERE sku = $1")
        .bind(sku)
        .fetch_optional(&db.pool)
        .await?
        .as_ref()
        .map(stock_item)
        .transpose()
}

/// Sets a SKU's available units (creating the SKU if new); reserved units are untouched.
pub async fn set_available(
    db: &Database,
    sku: &str,
    available: i64,
) -> Result<StockItem, sqlx::Error> {
    // Every write goes through a transaction, so it queues at the write gate.
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO stock (sku, available, reserved, updated_at) VALUES ($1, $2, 0, $3)
         ON CONFLICT (sku) DO UPDATE SET available = excluded.available, updated_at = excluded.updated_at",
    )
    .bind(sku)
    .bind(available)
    .bind(platform::now_text())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(get_stock(db, sku).await?.expect("the row was just written"))
}

/// The decision already taken for an order, if any.
pub async fn decision_of(tx: &mut Tx, order_id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT outcome FROM decisions WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|row| row.try_get("outcome"))
        .transpose()
}

/// The orders among `order_ids` that have a decision already.
pub async fn decided_among(tx: &mut Tx, order_ids: &[i64]) -> Result<HashSet<i64>, sqlx::Error> {
    let mut decided = HashSet::new();
    for chunk in platform::db::statement_chunks(order_ids, 1) {
        let sql = format!(
            "SELECT order_id FROM decisions WHERE order_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            decided.insert(row.try_get("order_id")?);
        }
    }
    Ok(decided)
}

/// Available units of `skus`, locking their rows on PostgreSQL (in SKU order, so two
/// instances locking overlapping orders cannot deadlock; `skus` must be sorted, as the
/// statements take them a piece at a time). SQLite has one writer at a time.
pub async fn available_of(
    tx: &mut Tx,
    backend: Backend,
    skus: &[&str],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let mut available = HashMap::with_capacity(skus.len());
    for chunk in platform::db::statement_chunks(skus, 1) {
        let sql = format!(
            "SELECT sku, available FROM stock WHERE sku IN ({}) ORDER BY sku{lock}",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for sku in chunk {
            query = query.bind(*sku);
        }
        for row in query.fetch_all(&mut **tx).await? {
            available.insert(row.try_get("sku")?, row.try_get("available")?);
        }
    }
    Ok(available)
}

/// PostgreSQL: locks (`FOR UPDATE`, in SKU order) the stock rows of `skus` and of the SKUs
/// reserved by the orders `cancelled`.
pub async fn lock_stock(
    tx: &mut Tx,
    skus: &BTreeSet<String>,
    cancelled: &[i64],
) -> Result<(), sqlx::Error> {
    if skus.is_empty() && cancelled.is_empty() {
        return Ok(());
    }
    // `IN ()` is not SQL: an empty list is given as one NULL, which matches nothing.
    let sku_list = placeholders(1, skus.len().max(1));
    let order_list = placeholders(skus.len().max(1) + 1, cancelled.len().max(1));
    let sql = format!(
        "SELECT sku FROM stock WHERE sku IN ({sku_list})
         OR sku IN (SELECT sku FROM reservations WHERE order_id IN ({order_list}))
         ORDER BY sku FOR UPDATE"
    );
    let mut query = sqlx::query(&sql);
    if skus.is_empty() {
        query = query.bind(None::<String>);
    }
    for sku in skus {
        query = query.bind(sku.as_str());
    }
    if cancelled.is_empty() {
        query = query.bind(None::<i64>);
    }
    for order_id in cancelled {
        query = query.bind(*order_id);
    }
    query.fetch_all(&mut **tx).await?;
    Ok(())
}

/// One order's reserved units of one SKU.
pub struct Reservation {
    pub order_id: i64,
    pub sku: String,
    pub qty: i64,
}

/// Moves the units of `reservations` from available to reserved (one UPDATE for every SKU,
/// the units of all its reservations at once) and records the reservations (one INSERT).
/// Returns the first SKU (in SKU order) that had fewer units available than taken: the
/// caller must then roll back, as the other SKUs were changed.
pub async fn reserve_all(
    tx: &mut Tx,
    reservations: &[Reservation],
) -> Result<Option<String>, sqlx::Error> {
    if reservations.is_empty() {
        return Ok(None);
    }
    let mut per_sku: BTreeMap<&str, i64> = BTreeMap::new();
    for r in reservations {
        *per_sku.entry(r.sku.as_str()).or_default() += r.qty;
    }
    let now = platform::now_text();
    let per_sku: Vec<(&str, i64)> = per_sku.into_iter().collect();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    for chunk in platform::db::statement_chunks(&per_sku, 2) {
        // `column1`/`column2`: the names both databases give a VALUES list's columns; the
        // casts type the parameters for PostgreSQL.
        let wanted: Vec<String> = (0..chunk.len())
            .map(|i| {
                format!(
                    "(CAST(${} AS TEXT), CAST(${} AS BIGINT))",
                    2 + 2 * i,
                    3 + 2 * i
                )
            })
            .collect();
        let sql = format!(
            "UPDATE stock SET available = available - wanted.column2,
                 reserved = reserved + wanted.column2, updated_at = $1
             FROM (VALUES {}) AS wanted
             WHERE stock.sku = wanted.column1 AND stock.available >= wanted.column2
             RETURNING sku",
            wanted.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(&now);
        for (sku, qty) in chunk {
            query = query.bind(*sku).bind(*qty);
        }
        for row in query.fetch_all(&mut **tx).await? {
            taken.insert(row.try_get("sku")?);
        }
    }
    if let Some((short, _)) = per_sku.iter().find(|(sku, _)| !taken.contains(*sku)) {
        return Ok(Some(short.to_string()));
    }
    for chunk in platform::db::statement_chunks(reservations, 4) {
        let sql = format!(
            "INSERT INTO reservations (order_id, sku, qty, created_at) VALUES {}",
            value_rows(chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for r in chunk {
            query = query.bind(r.order_id).bind(&r.sku).bind(r.qty).bind(&now);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(None)
}

/// An order's one decision: `RESERVED`, `REJECTED` or `CANCELLED` (cancelled before it came).
pub struct Decided {
    pub order_id: i64,
    pub outcome: &'static str,
    pub event_id: String,
}

/// Records the decisions, one statement for all.
pub async fn record_decisions(tx: &mut Tx, decisions: &[Decided]) -> Result<(), sqlx::Error> {
    let now = platform::now_text();
    for chunk in platform::db::statement_chunks(decisions, 4) {
        let sql = format!(
            "INSERT INTO decisions (order_id, outcome, event_id, decided_at) VALUES {}",
            value_rows(chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for d in chunk {
            query = query
                .bind(d.order_id)
                .bind(d.outcome)
                .bind(&d.event_id)
                .bind(&now);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Was this order's release already done?
pub async fn released(tx: &mut Tx, order_id: i64) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("SELECT order_id FROM releases WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// Gives an order's reserved stock back and deletes its reservations; returns what was given back.
pub async fn release_reservations(
    tx: &mut Tx,
    order_id: i64,
) -> Result<Vec<contracts::LineItem>, sqlx::Error> {
    let rows = sqlx::query("SELECT sku, qty FROM reservations WHERE order_id = $1 ORDER BY sku")
        .bind(order_id)
        .fetch_all(&mut **tx)
        .await?;
    let now = platform::now_text();
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let sku: String = row.try_get("sku")?;
        let qty: i64 = row.try_get("qty")?;
        sqlx::query(
            "UPDATE stock SET available = available + $1, reserved = reserved - $1, updated_at = $2 WHERE sku = $3",
        )
        .bind(qty)
        .bind(&now)
        .bind(&sku)
        .execute(&mut **tx)
        .await?;
        items.push(contracts::LineItem { sku, qty });
    }
    sqlx::query("DELETE FROM reservations WHERE order_id = $1")
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    Ok(items)
}

/// Records the one release of an order.
pub async fn record_release(
    tx: &mut Tx,
    order_id: i64,
    items: &[contracts::LineItem],
    event_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO releases (order_id, items, event_id, released_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(order_id)
    .bind(serde_json::to_string(items).expect("line items serialize"))
    .bind(event_id)
    .bind(platform::now_text())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
