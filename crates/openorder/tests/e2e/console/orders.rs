//! Orders counted by state and the stuck ones listed, oldest first (order-service's counts
//! on SQLite and PostgreSQL), and a user's notification preferences shown beside their
//! notifications.

use std::time::Duration;

use super::Browser;
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use axum::http::StatusCode;
use serde_json::Value;

/// A stack whose databases the test opens too: their URLs, order-service's first.
async fn stack_with_databases(broker: BrokerKind, db: DbKind) -> Option<(Stack, [String; 3])> {
    let dir = crate::support::temp_dir("console-databases");
    let mut urls = Vec::new();
    for service in ["order", "inventory", "notification"] {
        urls.push(crate::support::database_url(db, &dir, service).await?);
    }
    let urls: [String; 3] = urls.try_into().ok()?;
    let options = StackOptions {
        databases: Some(urls.clone()),
        ..Default::default()
    };
    Some((Stack::spawn(broker, db, options).await?, urls))
}

/// Orders written straight into order-service's database at `url`: PENDING, of `user`,
/// placed the given minutes ago. No event of theirs is in the outbox, so nothing decides
/// them: they stay stuck. Their ids, in the order given.
async fn pending_orders(url: &str, user: i64, minutes_ago: &[i64]) -> Vec<i64> {
    use sqlx::Row;
    let db = platform::db::Database::connect(url, 1, &order_service::store::SCHEMA)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for minutes in minutes_ago {
        let placed = (chrono::Utc::now() - chrono::Duration::minutes(*minutes))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let row = sqlx::query(
            "INSERT INTO orders (user_id, status, created_at, updated_at) VALUES ($1, 'PENDING', $2, $2) RETURNING id",
        )
        .bind(user)
        .bind(&placed)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        let id: i64 = row.get("id");
        ids.push(id);
    }
    ids
}

async fn the_console_counts_orders_by_state_and_lists_the_stuck_ones_oldest_first(
    broker: BrokerKind,
    db: DbKind,
) {
    let Some((stack, urls)) = stack_with_databases(broker, db).await else {
        return;
    };
    let mut browser = Browser::new(&stack, Vec::new()).await;
    no_order_is_stuck_yet(&mut browser).await;
    let confirmed = an_order_in_each_decided_state(&stack).await;
    // …and three that nothing will decide, placed 30, 90 and 10 minutes ago.
    let stuck = pending_orders(&urls[0], 62, &[30, 90, 10]).await;
    every_state_is_counted(&stack, &mut browser).await;
    the_stuck_ones_are_listed_oldest_first(&mut browser, &stuck, confirmed).await;
    stack.stop().await;
}

/// The Stuck orders page, in the navigation, lists none yet.
async fn no_order_is_stuck_yet(browser: &mut Browser) {
    let none = browser.get("/stuck").await;
    assert_eq!(none.status, StatusCode::OK, "{}", none.body);
    none.assert_shows("No order is stuck");
    none.assert_shows_with(
        "<a href=\"/stuck\" class=\"active\">Stuck orders</a>",
        "the page is in the navigation",
    );
}

/// An order ending in each decided state (CONFIRMED, REJECTED, FAILED, CANCELLED); returns
/// the confirmed one.
async fn an_order_in_each_decided_state(stack: &Stack) -> i64 {
    // An order ending in each decided state, one after the other (so that the failing one
    // shares no batch with the others)…
    let confirmed = stack.post_order(61, &[("ABC-001", 1)]).await;
    assert_eq!(stack.settled_order(confirmed).await["status"], "CONFIRMED");
    let rejected = stack.post_order(61, &[("OUT-001", 1)]).await;
    assert_eq!(stack.settled_order(rejected).await["status"], "REJECTED");
    let failed = stack.post_order(61, &[("FAIL", 1)]).await;
    assert_eq!(stack.settled_order(failed).await["status"], "FAILED");
    let cancelled = stack.post_order(61, &[("ABC-002", 1)]).await;
    assert_eq!(stack.settled_order(cancelled).await["status"], "CONFIRMED");
    let (status, cancel) = stack.cancel_order(cancelled).await;
    assert_eq!(status, 200, "{cancel}");
    confirmed
}

/// order-service counts the orders of each state (the three stuck among them) and the
/// Orders page shows the counts.
async fn every_state_is_counted(stack: &Stack, browser: &mut Browser) {
    // order-service names every state, 0 included, on either database.
    let counts: Value = stack
        .get_json(format!("{}/admin/orders/counts", stack.order_url))
        .await;
    assert_eq!(
        counts["counts"],
        serde_json::json!({"PENDING": 3, "CONFIRMED": 1, "REJECTED": 1, "FAILED": 1, "CANCELLED": 1}),
        "{counts}"
    );
    assert_eq!(counts["stuck"], 3, "{counts}");

    // The Orders page shows them, state by state.
    let orders = browser.get("/orders").await;
    assert_eq!(orders.status, StatusCode::OK, "{}", orders.body);
    for (state, n) in [
        ("PENDING", 3),
        ("CONFIRMED", 1),
        ("REJECTED", 1),
        ("FAILED", 1),
        ("CANCELLED", 1),
        ("stuck", 3),
    ] {
        let cell = format!("data-count=\"{state}\">{n}</td>");
        assert!(orders.body.contains(&cell), "{cell} in {}", orders.body);
    }
}

/// The Stuck orders page lists the `stuck` orders, oldest first, and not the `confirmed`
/// one.
async fn the_stuck_ones_are_listed_oldest_first(
    browser: &mut Browser,
    stuck: &[i64],
    confirmed: i64,
) {
    // The Stuck orders page lists the three, oldest first, each linked to its timeline.
    // Their order.created never went out: once inventory-service has read what the other
    // orders sent (its lag 0; the page reads it as it is drawn), each is "read by
    // inventory-service, no decision yet", having no dead letter.
    let read_by_inventory = "<td class=\"why\">read by inventory-service, no decision yet";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let page = loop {
        let page = browser.get("/stuck").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        if page.body.matches(read_by_inventory).count() == 3 {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "why each waits, after 30 s: {}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let at = |id: i64| {
        page.body
            .find(&format!("href=\"/orders/{id}\""))
            .unwrap_or_else(|| panic!("order {id} listed: {}", page.body))
    };
    assert!(
        at(stuck[1]) < at(stuck[0]) && at(stuck[0]) < at(stuck[2]),
        "oldest first: {}",
        page.body
    );
    page.assert_lacks_with(
        &format!("href=\"/orders/{confirmed}\""),
        "a decided order is not stuck",
    );
    page.assert_shows("<b>3</b> stuck in all.");
    page.assert_shows_with("1 h 30 min", "the oldest's age");
    page.assert_shows_with("(5 min)", "--stuck-after");
    // A page at a time: the two oldest, and a link to more.
    let first = browser.get("/stuck?limit=2").await;
    let listed = |id: i64| first.body.contains(&format!("href=\"/orders/{id}\""));
    assert!(
        listed(stuck[1]) && listed(stuck[0]) && !listed(stuck[2]),
        "{}",
        first.body
    );
    first.assert_shows("href=\"/stuck?limit=102\"");
}

crate::backends!(the_console_counts_orders_by_state_and_lists_the_stuck_ones_oldest_first {
    the_console_counts_orders_by_state_and_lists_the_stuck_ones_oldest_first_on_sqlite => (Tansu, Sqlite),
    the_console_counts_orders_by_state_and_lists_the_stuck_ones_oldest_first_on_postgres => (Tansu, Postgres),
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_users_notification_preferences_beside_their_notifications() {
    let Some(stack) =
        Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, StackOptions::default()).await
    else {
        return;
    };
    let mut browser = Browser::new(&stack, Vec::new()).await;
    let id = stack.post_order(63, &[("ABC-001", 1)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "CONFIRMED");
    stack.wait_notifications(id).await;
    // Set once the order's notice was routed, so that none of it waits for quiet hours.
    let put = stack
        .http
        .put(format!(
            "{}/api/users/63/notification-preferences",
            stack.notification_url
        ))
        .json(&serde_json::json!({
            "channels": {"CONFIRMED": ["log", "webhook"], "FAILED": []},
            "timeZone": "Europe/Berlin",
            "quietHours": {"start": "23:00", "end": "07:00"},
            "critical": ["FAILED"],
            "digestMinutes": 10
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);

    // The order's timeline: its notification, and beside it the user's preferences.
    let page = browser.get(&format!("/orders/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for shown in [
        "notification:",
        "Notification preferences of user 63",
        "<th>channels for CONFIRMED</th><td>log, webhook</td>",
        "<th>channels for REJECTED</th><td>every channel (not chosen)</td>",
        "<th>channels for FAILED</th><td>none</td>",
        "23:00 to 07:00 (Europe/Berlin)",
        "<th>critical (go at once)</th><td>FAILED</td>",
        "10 min",
    ] {
        assert!(page.body.contains(shown), "{shown} in {}", page.body);
    }
    let timeline = browser
        .get(&format!("/api/orders/{id}/timeline"))
        .await
        .json();
    assert_eq!(timeline["preferences"]["userId"], 63, "{timeline}");
    assert_eq!(
        timeline["preferences"]["set"]["timeZone"], "Europe/Berlin",
        "{timeline}"
    );
    // The user's orders, listed, show them too.
    let listed = browser.get("/orders?userId=63").await;
    assert!(
        listed.body.contains("Notification preferences of user 63")
            && listed.body.contains("23:00 to 07:00 (Europe/Berlin)"),
        "{}",
        listed.body
    );

    // A user who set none: the defaults, said so.
    let other = stack.post_order(64, &[("ABC-001", 1)]).await;
    stack.settled_order(other).await;
    let page = browser.get(&format!("/orders/{other}")).await;
    assert!(
        page.body.contains("Notification preferences of user 64")
            && page.body.contains("None set: the defaults apply."),
        "{}",
        page.body
    );
    let timeline = browser
        .get(&format!("/api/orders/{other}/timeline"))
        .await
        .json();
    assert_eq!(timeline["preferences"]["userId"], 64, "{timeline}");
    assert!(timeline["preferences"]["set"].is_null(), "{timeline}");
    stack.stop().await;
}
