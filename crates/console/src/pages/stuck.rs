//! `/stuck`: the orders PENDING longer than order-service's `--stuck-after`, oldest first
//! (its `GET /admin/orders/stuck`), each linked to its timeline and its user's orders, with
//! how many are stuck in all (`GET /admin/orders/counts`). order-service lists the oldest
//! `limit` (at most 1,000) and says whether more are stuck: the page shows [`PAGE`] and
//! grows by as many (`?limit=`). order-service cannot know why an order waits; the console
//! says what it can see ([`Waiting`]): its `order.created` dead-lettered by
//! inventory-service, inventory-service away, or records of inventory-service's group not
//! yet read (lag).

use std::collections::{HashMap, HashSet};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use contracts::api::{OrderCounts, StuckPage};
use maud::{html, Markup};

use crate::session::Session;
use crate::Shared;

/// Stuck orders shown at first, and added by "show more".
pub const PAGE: i64 = 100;
/// Most order-service lists at once (its `MAX_STUCK_LIMIT`).
pub const MOST: i64 = 1000;

pub async fn list(
    State(console): State<Shared>,
    Extension(session): Extension<Session>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = q
        .get("limit")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(PAGE)
        .clamp(1, MOST);
    let token = session.token();
    let (stuck, counts) = tokio::join!(
        console.services.stuck_orders(limit, token),
        super::orders::order_counts(&console, token),
    );
    let body = match stuck {
        Ok(page) => {
            let waiting = Waiting::read(&console, token, &page).await;
            render(&page, counts.ok().as_ref(), limit, &waiting)
        }
        Err(err) => super::notice("error", &format!("{err:#}")),
    };
    super::page("Stuck orders", "/stuck", &session, body).into_response()
}

/// What the console can see of why stuck orders wait.
#[derive(Debug, Default)]
pub struct Waiting {
    /// Orders whose `order.created` inventory-service dead-lettered (its DLT, by order id).
    pub dead_lettered: HashSet<i64>,
    /// inventory-service answered its readiness check.
    pub inventory_ready: bool,
    /// Records inventory-service's consumer group has not read yet, over its partitions;
    /// None when its status did not answer.
    pub inventory_lag: Option<i64>,
}

impl Waiting {
    /// Asks inventory-service for the dead letters of the orders of `page` (one request,
    /// by their id range) and takes its readiness and lag from the overview's snapshot.
    async fn read(console: &Shared, token: Option<&str>, page: &StuckPage) -> Self {
        let ids: Vec<i64> = page.orders.iter().map(|o| o.order_id).collect();
        let mut waiting = Waiting::default();
        if let (Some(low), Some(high)) = (ids.iter().min(), ids.iter().max()) {
            let query = format!("originalTopic=order.created&orderIds={low}-{high}&limit={MOST}");
            if let Ok(letters) = console.services.dead_letters(&query, token).await {
                waiting.dead_lettered = letters.iter().filter_map(|l| l.order_id).collect();
            }
        }
        let snapshot = console.live.snapshot(console, token).await;
        if let Some(inventory) = snapshot
            .services
            .iter()
            .find(|s| s.name == "inventory-service")
        {
            waiting.inventory_ready = inventory.ready;
            waiting.inventory_lag = (inventory.ready || !inventory.lag.is_empty())
                .then(|| inventory.lag.iter().map(|(_, lag)| lag).sum());
        }
        waiting
    }

    /// Why order `id` waits, as far as the console can see.
    pub fn why(&self, id: Option<i64>) -> String {
        if id.is_some_and(|id| self.dead_lettered.contains(&id)) {
            return "its order.created was dead-lettered by inventory-service".to_string();
        }
        if !self.inventory_ready {
            return "inventory-service is not ready".to_string();
        }
        match self.inventory_lag {
            Some(lag) if lag > 0 => format!("inventory-service has {lag} records not yet read"),
            Some(_) => "read by inventory-service, no decision yet: being retried, or the decision is on its way".to_string(),
            None => "unknown: inventory-service's status did not answer".to_string(),
        }
    }
}

/// A page of `GET /admin/orders/stuck`, asked for with `limit`; `counts`,
/// `GET /admin/orders/counts` when it answered.
pub fn render(
    page: &StuckPage,
    counts: Option<&OrderCounts>,
    limit: i64,
    waiting: &Waiting,
) -> Markup {
    let after = i64::try_from(page.stuck_after_seconds)
        .ok()
        .map_or_else(|| "--stuck-after".to_string(), super::age);
    let orders = &page.orders;
    let has_more = page.has_more;
    let total = counts.map(|c| c.stuck);
    html! {
        p.small {
            "Orders PENDING longer than order-service's " code { "--stuck-after" } " ("
            (after) "), oldest first, each with why it waits as far as the console can see "
            "(inventory-service's dead letters, readiness and lag); the "
            a href="/" { "overview" } " has each consumer's lag and each outbox's backlog, and the "
            a href="/dead-letters" { "dead letters" } " page the failures."
        }
        @if let Some(n) = total {
            p #stuck-total { b { (n) } " stuck in all." }
        }
        @if orders.is_empty() {
            p.empty #no-stuck-orders {
                "No order is stuck: none has been PENDING longer than " (after) "."
            }
        } @else {
            table.stuck #stuck-orders {
                thead { tr { th { "order" } th { "user" } th.num { "age" } th { "placed" } th { "why it waits" } } }
                tbody {
                    @for o in orders.iter().take(MOST as usize) {
                        @let id = o.order_id;
                        @let user = o.user_id;
                        tr data-order=(id) {
                            td { a href=(format!("/orders/{id}")) { (id) } }
                            td { a href=(format!("/orders?userId={user}")) { (user) } }
                            td.num { (super::age(o.age_seconds)) }
                            td { (o.created_at) }
                            td.why { (waiting.why(Some(id))) }
                        }
                    }
                }
            }
        }
        @if has_more {
            @if limit < MOST {
                p { a.more href=(format!("/stuck?limit={}", (limit + PAGE).min(MOST))) { "Show more" } }
            } @else {
                p.small { "order-service lists at most " (MOST) " at once: these are the oldest." }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A page as order-service answers it.
    fn page(json: Value) -> StuckPage {
        serde_json::from_value(json).expect("a StuckPage")
    }

    #[test]
    fn stuck_orders_are_listed_as_order_service_sorts_them_with_links_and_ages() {
        let stuck = page(json!({
            "stuckAfterSeconds": 300,
            "orders": [
                {"orderId": 9, "userId": 42, "ageSeconds": 7_500, "createdAt": "2026-01-01T08:00:00.000Z"},
                {"orderId": 12, "userId": 43, "ageSeconds": 412, "createdAt": "2026-01-01T09:58:00.000Z"}
            ],
            "hasMore": true
        }));
        let counts = OrderCounts {
            counts: [("PENDING".to_string(), 250)].into(),
            stuck: 250,
            stuck_after_seconds: 300,
        };
        let html = render(&stuck, Some(&counts), 2, &Waiting::default()).into_string();
        let first = html.find("href=\"/orders/9\"").expect("order 9 linked");
        let second = html.find("href=\"/orders/12\"").expect("order 12 linked");
        assert!(first < second, "oldest first: {html}");
        assert!(html.contains("href=\"/orders?userId=42\""), "{html}");
        assert!(html.contains("2 h 5 min"), "{html}");
        assert!(html.contains("6 min 52 s"), "{html}");
        assert!(html.contains("(5 min)"), "the setting: {html}");
        assert!(html.contains("<b>250</b> stuck in all."), "{html}");
        assert!(html.contains("href=\"/stuck?limit=102\""), "{html}");
    }

    #[test]
    fn none_stuck_says_so_and_a_value_from_the_service_is_escaped() {
        let none = page(json!({"stuckAfterSeconds": 90, "orders": [], "hasMore": false}));
        let html = render(&none, None, PAGE, &Waiting::default()).into_string();
        assert!(
            html.contains("No order is stuck: none has been PENDING longer than 1 min 30 s."),
            "{html}"
        );
        assert!(!html.contains("Show more"), "{html}");
        let odd = page(json!({
            "stuckAfterSeconds": 90,
            "orders": [{"orderId": 1, "userId": 2, "ageSeconds": 100, "createdAt": "<b>x</b><script>"}],
            "hasMore": true
        }));
        let html = render(&odd, None, MOST, &Waiting::default()).into_string();
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("at most 1000 at once"), "{html}");
    }

    #[test]
    fn each_stuck_order_says_why_it_waits_as_far_as_the_console_can_see() {
        let mut waiting = Waiting {
            dead_lettered: HashSet::from([7]),
            inventory_ready: true,
            inventory_lag: Some(12),
        };
        assert_eq!(
            waiting.why(Some(7)),
            "its order.created was dead-lettered by inventory-service"
        );
        assert_eq!(
            waiting.why(Some(8)),
            "inventory-service has 12 records not yet read"
        );
        waiting.inventory_lag = Some(0);
        assert!(waiting
            .why(Some(8))
            .starts_with("read by inventory-service, no decision yet"));
        waiting.inventory_ready = false;
        assert_eq!(waiting.why(Some(8)), "inventory-service is not ready");
        let stuck = page(json!({
            "stuckAfterSeconds": 300,
            "orders": [{"orderId": 7, "userId": 1, "ageSeconds": 400, "createdAt": "x"}],
            "hasMore": false
        }));
        let html = render(&stuck, None, PAGE, &waiting).into_string();
        assert!(
            html.contains(
                "<td class=\"why\">its order.created was dead-lettered by inventory-service</td>"
            ),
            "{html}"
        );
    }
}
