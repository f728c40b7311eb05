//! Pruning what a service keeps only for deduplication or history, so that its database
//! stops growing: in small batches, oldest first, off the hot path (a task of its own,
//! every `--prune-every`), each batch its own short transaction.
//!
//! Windows and why they are safe:
//! - **Processed event ids and dead-letter marks** (`--retain-dedupe`, default 14 days):
//!   a mark only has to outlive every copy of its event that can still arrive. Copies come
//!   from the broker (redelivery after a crash or rebalance: at most the topic's retention,
//!   `--topic-retention`, 7 days) and from replays of dead letters (a replay carries the
//!   original event id with a higher `openorder-replay-count`; dead-letter topics are kept
//!   `--dead-letter-retention`, 14 days). A window as long as the longest of them covers
//!   both; keep it at or above your topics' `retention.ms`. Past it, a very late copy would be applied
//!   again, and every effect still guards itself (an order is decided once, a status only
//!   moves forward, a notification is recorded once per event while it is kept).
//! - **Idempotency keys** (`--retain-idempotency-keys`, default 24 hours, as payment APIs
//!   keep them): a retry with the same key after that is a new order.
//! - **Notifications, their deliveries and the order contacts they were routed by**
//!   (`--retain-notifications`, default 30 days).
//!
//! - **Orders** (`--retain-orders`): kept for ever unless set; then with their items, by the
//!   time they were placed, and inventory-service's reservations, decisions and releases of
//!   orders by the same age. Keep it above `--retain-dedupe`: an order's decision must
//!   outlive every copy of its `order.created` that can still arrive.
//!
//! Stock is the business record and is never pruned here.
//!
//! Each rule walks its table in an order that follows time (a time-ordered key: UUIDv7
//! event ids, autoincremented ids; or an indexed time column) and stops at the first batch
//! with nothing old, so a run costs a few index reads when there is nothing to do.

use std::time::Duration;

use clap::Args;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::db::Database;
use telemetry::metrics::Metrics;

/// How long each kind of row is kept, and how often pruning runs.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Retention")]
pub struct RetentionArgs {
    /// Processed event ids and dead-letter marks are kept this long (`14d`, `36h`, `90m`);
    /// keep it above the topics' retention (see the book's "Retention").
    #[arg(long, env = "OPENORDER_RETAIN_DEDUPE", default_value = "14d", value_parser = parse_age, hide_short_help = true)]
    pub retain_dedupe: Duration,
    /// Idempotency keys are kept this long; a retry with the same key later makes a new order.
    #[arg(long, env = "OPENORDER_RETAIN_IDEMPOTENCY_KEYS", default_value = "24h", value_parser = parse_age, hide_short_help = true)]
    pub retain_idempotency_keys: Duration,
    /// Notifications and their deliveries are kept this long.
    #[arg(long, env = "OPENORDER_RETAIN_NOTIFICATIONS", default_value = "30d", value_parser = parse_age, hide_short_help = true)]
    pub retain_notifications: Duration,
    /// Orders (with their items) are kept this long after they were placed; by default for
    /// ever: they are the business record. Set it well above the longest an order can stay
    /// pending.
    #[arg(long, env = "OPENORDER_RETAIN_ORDERS", value_parser = parse_age, hide_short_help = true)]
    pub retain_orders: Option<Duration>,
    /// How often pruning runs.
    #[arg(long, env = "OPENORDER_PRUNE_EVERY", default_value = "1m", value_parser = parse_age, hide_short_help = true)]
    pub prune_every: Duration,
}

impl Default for RetentionArgs {
    fn default() -> Self {
        Self {
            retain_dedupe: Duration::from_secs(14 * 86_400),
            retain_idempotency_keys: Duration::from_secs(86_400),
            retain_notifications: Duration::from_secs(30 * 86_400),
            retain_orders: None,
            prune_every: Duration::from_secs(60),
        }
    }
}

/// `14d`, `24h`, `90m`, `30s`, `500ms`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let at = text
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("{text:?} needs a unit: d, h, m, s or ms"))?;
    let (number, unit) = text.split_at(at);
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an age (say 14d, 24h or 90m)"))?;
    let seconds = match unit {
        "d" => value * 86_400.0,
        "h" => value * 3_600.0,
        "m" | "min" => value * 60.0,
        "s" => value,
        "ms" => value / 1000.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use d, h, m, s or ms)"
            ))
        }
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3650.0 * 86_400.0) {
        return Err(format!(
            "{text:?} must be more than 0 and at most ten years"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// How a table's rows are walked, oldest first.
#[derive(Clone, Copy, Debug)]
pub enum Walk {
    /// By a text key that sorts in time order (UUIDv7 event ids).
    TextKey,
    /// By an integer key that grows with time (an autoincremented id).
    IntKey,
    /// By the time column itself (it has an index), the key being anything.
    Time,
}

/// One kind of row to prune.
#[derive(Clone, Debug)]
pub struct Prune {
    pub table: &'static str,
    pub key: &'static str,
    /// RFC 3339 text (as [`telemetry::now_text`] writes it: text order is time order).
    pub time: &'static str,
    pub walk: Walk,
    pub keep: Duration,
    /// Tables whose rows point at this one's (`table`, `column`), deleted first.
    pub children: &'static [(&'static str, &'static str)],
}

/// Rows looked at per batch, and batches per run at most.
const BATCH: usize = 500;
const MAX_BATCHES: usize = 40;

impl Prune {
    /// Processed event ids (services that keep them in `processed_events`).
    pub fn processed_events(args: &RetentionArgs) -> Prune {
        Prune {
            table: "processed_events",
            key: "event_id",
            time: "processed_at",
            walk: Walk::TextKey,
            keep: args.retain_dedupe,
            children: &[],
        }
    }

    /// Marks of events already dead-lettered (every service).
    pub fn dead_lettered(args: &RetentionArgs) -> Prune {
        Prune {
            table: "dead_lettered",
            key: "event_id",
            time: "dead_lettered_at",
            walk: Walk::TextKey,
            keep: args.retain_dedupe,
            children: &[],
        }
    }

    /// Prunes what is older than the window; returns how many rows were deleted.
    pub async fn run(&self, db: &Database) -> Result<u64, sqlx::Error> {
        let cutoff = (chrono::Utc::now()
            - chrono::Duration::from_std(self.keep).unwrap_or(chrono::Duration::MAX))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let order = match self.walk {
            Walk::Time => self.time,
            _ => self.key,
        };
        let mut deleted = 0;
        let mut after: Option<Key> = None;
        for _ in 0..MAX_BATCHES {
            let from = if after.is_some() {
                format!("WHERE {order} > $1")
            } else {
                String::new()
            };
            let sql = format!(
                "SELECT {key} AS k, {time} AS t FROM {table} {from} ORDER BY {order} LIMIT {BATCH}",
                key = self.key,
                time = self.time,
                table = self.table,
            );
            let mut query = sqlx::query(&sql);
            if let Some(after) = &after {
                query = after.bind(query);
            }
            // Read and deleted in one transaction on the writer's connection: a read
            // connection of its own would hold a page cache (megabytes on SQLite) for a
            // query a minute.
            let mut tx = db.begin().await?;
            let rows = query.fetch_all(&mut *tx).await?;
            let mut old = Vec::new();
            let mut last = None;
            for row in &rows {
                let key = match self.walk {
                    Walk::IntKey => Key::Int(row.try_get("k")?),
                    _ => Key::Text(row.try_get("k")?),
                };
                let time: String = row.try_get("t")?;
                last = Some(match self.walk {
                    Walk::Time => Key::Text(time.clone()),
                    _ => key.clone(),
                });
                if time < cutoff {
                    old.push(key);
                }
            }
            if !old.is_empty() {
                deleted += self.delete(&mut tx, &old).await?;
            }
            tx.commit().await?;
            // A time-ordered walk: a batch with nothing old means nothing older follows.
            if rows.len() < BATCH || old.is_empty() {
                break;
            }
            after = last;
        }
        Ok(deleted)
    }

    async fn delete(&self, tx: &mut crate::db::Tx, keys: &[Key]) -> Result<u64, sqlx::Error> {
        let list = crate::db::placeholders(1, keys.len());
        for (child, column) in self.children {
            let sql = format!("DELETE FROM {child} WHERE {column} IN ({list})");
            let mut query = sqlx::query(&sql);
            for k in keys {
                query = k.bind(query);
            }
            query.execute(&mut **tx).await?;
        }
        let sql = format!("DELETE FROM {} WHERE {} IN ({list})", self.table, self.key);
        let mut query = sqlx::query(&sql);
        for k in keys {
            query = k.bind(query);
        }
        Ok(query.execute(&mut **tx).await?.rows_affected())
    }
}

/// A row's key (or, walking by time, a time), bound as its own type so indexes serve.
#[derive(Clone, Debug)]
enum Key {
    Text(String),
    Int(i64),
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl Key {
    fn bind<'q>(&self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        match self {
            Key::Text(t) => query.bind(t.clone()),
            Key::Int(n) => query.bind(*n),
        }
    }
}

/// Runs `rules` every `every` until `stop`, counting what it deletes in
/// `openorder_rows_pruned_total{table}`.
pub async fn prune_until(
    db: Database,
    rules: Vec<Prune>,
    every: Duration,
    metrics: Metrics,
    stop: CancellationToken,
) {
    loop {
        for rule in &rules {
            if stop.is_cancelled() {
                return;
            }
            match rule.run(&db).await {
                Ok(0) => {}
                Ok(n) => {
                    metrics.add(
                        &telemetry::catalogue::ROWS_PRUNED,
                        &[("table", rule.table)],
                        n,
                    );
                    tracing::debug!(table = rule.table, rows = n, "pruned");
                }
                Err(err) => {
                    tracing::warn!(table = rule.table, error = %err, "pruning failed; trying again later")
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests;
