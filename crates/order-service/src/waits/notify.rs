//! PostgreSQL's side of telling waiters: the payloads of `pg_notify` on [`CHANNEL`], and
//! the one task per instance that listens on it ([`listen`]).

use std::time::Duration;

use platform::CancellationToken;
use sqlx::postgres::PgListener;

use super::{Waits, CHANNEL};

/// Longest payload sent in one notification (PostgreSQL refuses 8,000 bytes and more):
/// more ids are sent in several.
pub(super) const MAX_PAYLOAD: usize = 7_000;

/// `order_ids` as notification payloads: comma-separated, each under [`MAX_PAYLOAD`].
pub(super) fn payloads(order_ids: &[i64]) -> Vec<String> {
    let mut out = Vec::new();
    let mut payload = String::new();
    for order_id in order_ids {
        let id = order_id.to_string();
        if !payload.is_empty() && payload.len() + 1 + id.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut payload));
        }
        if !payload.is_empty() {
            payload.push(',');
        }
        payload.push_str(&id);
    }
    if !payload.is_empty() {
        out.push(payload);
    }
    out
}

/// The order ids of a payload; what does not parse is skipped.
pub(super) fn order_ids_of(payload: &str) -> Vec<i64> {
    payload
        .split(',')
        .filter_map(|id| id.trim().parse().ok())
        .collect()
}

/// A listener of [`CHANNEL`] at `url`.
async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// First wait after the listener failed to connect; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// PostgreSQL only: listens on [`CHANNEL`] at `url` until `stop`, waking this process's
/// watchers of the orders each notification names. Whenever it (re)connects it wakes every
/// watcher, since notifications sent while it was away are lost.
pub async fn listen(waits: Waits, url: String, stop: CancellationToken) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            connected = connect(&url) => connected,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for order changes; waiting requests hear of other instances' decisions only at their deadline until it can");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if backoff != FIRST_BACKOFF {
            tracing::info!("listening for order changes again");
        }
        backoff = FIRST_BACKOFF;
        // Anything told while no one listened was missed: every waiter looks again.
        waits.tell_everyone();
        loop {
            let received = tokio::select! {
                () = stop.cancelled() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => waits.tell(&order_ids_of(notification.payload())),
                // The connection was lost and made again: what came meanwhile is lost.
                Ok(None) => {
                    tracing::info!(
                        "the connection listening for order changes was lost and made again"
                    );
                    waits.tell_everyone();
                }
                Err(err) => {
                    tracing::warn!(error = %err, "listening for order changes failed; connecting again");
                    waits.tell_everyone();
                    break;
                }
            }
        }
    }
}
