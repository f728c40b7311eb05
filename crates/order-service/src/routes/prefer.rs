//! The `Prefer: wait=N` preference (RFC 7240): reading it, waiting for an order's decision
//! within it, and marking the answer that honoured it.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use platform::db::Database;
use platform::http::Problem;
use tokio::time::Instant;

use crate::domain::OrderStatus;
use crate::store::{self, OrderView};
use crate::waits::{TooManyWaiters, Watcher, Woke, MAX_WAIT_SECONDS};

/// `Preference-Applied`, the header that says a preference was honoured (RFC 7240).
const PREFERENCE_APPLIED: &str = "preference-applied";

/// The `wait` preference of a request's `Prefer` headers (RFC 7240), in seconds, cut to
/// [`MAX_WAIT_SECONDS`]. None when there is none, or when the first one is malformed
/// (not `wait=<digits>`): a preference a server cannot read is ignored, as RFC 7240 says;
/// only the first `wait` counts (its section 2). Other preferences are ignored.
pub fn requested_wait(headers: &HeaderMap) -> Option<u64> {
    for value in headers.get_all(header::HeaderName::from_static("prefer")) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for preference in split_unquoted(value, ',') {
            let head = split_unquoted(preference, ';')[0];
            let (name, word) = match head.split_once('=') {
                Some((name, word)) => (name.trim(), Some(word.trim())),
                None => (head.trim(), None),
            };
            if !name.eq_ignore_ascii_case("wait") {
                continue;
            }
            let word = word?;
            let digits = word
                .strip_prefix('"')
                .and_then(|w| w.strip_suffix('"'))
                .unwrap_or(word);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // More digits than a u64 holds: a very long wait, so the longest.
            let seconds = digits.parse::<u64>().unwrap_or(u64::MAX);
            return Some(seconds.min(MAX_WAIT_SECONDS));
        }
    }
    None
}

/// `text` split at each `separator` outside a quoted string (at least one part).
fn split_unquoted(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (at, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..at]);
            start = at + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Marks the answer to a request that asked to wait: `Preference-Applied: wait=N` (the
/// wait honoured, after the cut), and the time it waited, which request timing leaves out
/// ([`platform::http::Waited`]).
pub(super) fn applied(response: &mut Response, wait: u64, started: Instant) {
    response.headers_mut().insert(
        header::HeaderName::from_static(PREFERENCE_APPLIED),
        HeaderValue::from_str(&format!("wait={wait}")).expect("digits are a header value"),
    );
    response
        .extensions_mut()
        .insert(platform::http::Waited(started.elapsed()));
}

/// 503 with `Retry-After: 1`: as many requests wait for orders as this instance lets
/// (`--max-order-waiters`); nothing was done.
pub(super) fn too_many_waiters(refused: TooManyWaiters) -> Problem {
    tracing::debug!("wait refused: {refused}");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too-many-waiters",
        "Too many requests waiting",
        format!(
            "{} requests already wait for orders here (--max-order-waiters); nothing was done: retry in a second, or without Prefer: wait",
            refused.limit
        ),
    )
    .retry_after(1)
}

/// Reads the order once `watcher` watches it (a decision committed before is seen, one
/// committed after wakes the watcher), then once each time it is woken, until the order
/// is no longer PENDING, `deadline` passes or the service stops: the order as last read
/// (None once it is gone).
pub(super) async fn wait_for_decision(
    db: &Database,
    mut watcher: Watcher,
    deadline: Instant,
) -> Result<Option<OrderView>, sqlx::Error> {
    loop {
        let order = store::get_order(db, watcher.order_id()).await?;
        if order
            .as_ref()
            .is_none_or(|o| o.status != OrderStatus::Pending)
        {
            return Ok(order);
        }
        match watcher.next(Some(deadline)).await {
            Woke::Told => {}
            Woke::TimedOut | Woke::Stopping => return Ok(order),
        }
    }
}

#[cfg(test)]
mod tests;
