//! Reading orders as the API shows them: one order, or a page of a user's.

use std::collections::HashMap;

use contracts::LineItem;
use platform::db::Database;
use sqlx::Row;

use super::{parse_status, OrderView};

const ORDER_COLUMNS: &str =
    "id, user_id, status, reason, shortages, error, released_at, created_at, updated_at";

fn order_view(row: &sqlx::any::AnyRow, items: Vec<LineItem>) -> Result<OrderView, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let shortages: Option<String> = row.try_get("shortages")?;
    Ok(OrderView {
        order_id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        status: parse_status(&status)?,
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
