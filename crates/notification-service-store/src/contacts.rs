//! Whom to reach: who placed each order and the contact it carried (`order_contacts`, also
//! the lock that routing takes), and the defaults users register (`user_contacts`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use contracts::Contact;
use platform::db::{placeholders, value_rows, Database, Tx};
use serde::Serialize;
use sqlx::Row;

/// Who placed an order and the contact it carried, once `order.created` has been seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderContact {
    pub user_id: i64,
    pub contact: Contact,
}

/// Locks the orders' projection rows (creating placeholders), in order id order, and
/// returns what is known of each (None: its `order.created` was not seen yet). Every
/// transaction that routes an order's notifications takes this lock first.
pub async fn lock_orders(
    tx: &mut Tx,
    order_ids: &BTreeSet<i64>,
) -> Result<HashMap<i64, Option<OrderContact>>, sqlx::Error> {
    let now = platform::now_text();
    let ids: Vec<i64> = order_ids.iter().copied().collect();
    let mut known = HashMap::with_capacity(ids.len());
    for chunk in platform::db::statement_chunks(&ids, 3) {
        let sql = format!(
            "INSERT INTO order_contacts (order_id, known, updated_at) VALUES {}
             ON CONFLICT (order_id) DO UPDATE SET order_id = excluded.order_id
             RETURNING order_id, user_id, email, webhook_url, phone, known",
            value_rows(chunk.len(), 3)
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id).bind(0_i64).bind(&now);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let order = match row.try_get::<i64, _>("known")? {
                0 => None,
                _ => Some(OrderContact {
                    user_id: row.try_get("user_id")?,
                    contact: Contact {
                        email: row.try_get("email")?,
                        webhook_url: row.try_get("webhook_url")?,
                        phone: row.try_get("phone")?,
                    },
                }),
            };
            known.insert(row.try_get("order_id")?, order);
        }
    }
    Ok(known)
}

/// Records (or re-records, identically) who placed each order and its contact, locking
/// the rows in order id order; one statement.
pub async fn record_orders(
    tx: &mut Tx,
    orders: &BTreeMap<i64, OrderContact>,
) -> Result<(), sqlx::Error> {
    let now = platform::now_text();
    let orders: Vec<_> = orders.iter().collect();
    for chunk in platform::db::statement_chunks(&orders, 7) {
        let sql = format!(
            "INSERT INTO order_contacts (order_id, user_id, email, webhook_url, phone, known, updated_at)
             VALUES {}
             ON CONFLICT (order_id) DO UPDATE SET user_id = excluded.user_id, email = excluded.email,
                 webhook_url = excluded.webhook_url, phone = excluded.phone, known = 1,
                 updated_at = excluded.updated_at",
            value_rows(chunk.len(), 7)
        );
        let mut query = sqlx::query(&sql);
        for (order_id, order) in chunk {
            query = query
                .bind(**order_id)
                .bind(order.user_id)
                .bind(order.contact.email.as_deref())
                .bind(order.contact.webhook_url.as_deref())
                .bind(order.contact.phone.as_deref())
                .bind(1_i64)
                .bind(&now);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The registered contacts of `user_ids`, by user.
pub async fn user_contacts(
    tx: &mut Tx,
    user_ids: &BTreeSet<i64>,
) -> Result<HashMap<i64, Contact>, sqlx::Error> {
    let user_ids: Vec<i64> = user_ids.iter().copied().collect();
    let mut contacts = HashMap::new();
    for chunk in platform::db::statement_chunks(&user_ids, 1) {
        let sql = format!(
            "SELECT user_id, email, webhook_url, phone FROM user_contacts WHERE user_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let contact = Contact {
                email: row.try_get("email")?,
                webhook_url: row.try_get("webhook_url")?,
                phone: row.try_get("phone")?,
            };
            contacts.insert(row.try_get("user_id")?, contact);
        }
    }
    Ok(contacts)
}

/// The contact a user registered, if any.
pub async fn user_contact(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    user_id: i64,
) -> Result<Option<UserContact>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT user_id, email, webhook_url, phone, updated_at FROM user_contacts WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(executor)
    .await?;
    row.map(|row| {
        Ok(UserContact {
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            webhook_url: row.try_get("webhook_url")?,
            phone: row.try_get("phone")?,
            updated_at: row.try_get("updated_at")?,
        })
    })
    .transpose()
}

/// A user's registered defaults, as `GET/PUT /api/users/{userId}/contact` show them.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserContact {
    pub user_id: i64,
    pub email: Option<String>,
    pub webhook_url: Option<String>,
    pub phone: Option<String>,
    pub updated_at: String,
}

/// Sets (replaces) a user's defaults.
pub async fn put_user_contact(
    db: &Database,
    user_id: i64,
    contact: &Contact,
) -> Result<UserContact, sqlx::Error> {
    let now = platform::now_text();
    // Every write goes through a transaction, so it queues at the write gate.
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO user_contacts (user_id, email, webhook_url, phone, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, webhook_url = excluded.webhook_url,
             phone = excluded.phone, updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(contact.email.as_deref())
    .bind(contact.webhook_url.as_deref())
    .bind(contact.phone.as_deref())
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(UserContact {
        user_id,
        email: contact.email.clone(),
        webhook_url: contact.webhook_url.clone(),
        phone: contact.phone.clone(),
        updated_at: now,
    })
}
