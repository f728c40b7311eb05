//! The console through its router, on both brokers: its JSON endpoints and pages on a real
//! stack (topics, a page of records filtered by key, an order's timeline, the lifecycle's
//! picture, dead letters decoded and replayed from the page, the overview), escaping of
//! untrusted record values, CSRF and cross-site refusals, and sign-in when operators are
//! configured (limited per client address); orders counted by state and the stuck ones
//! listed (order-service's counts on SQLite and PostgreSQL), and a user's notification
//! preferences beside their notifications.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

/// A browser of the console's router: keeps its session cookie. With a `peer`, its
/// requests come from that address (as the console's accept loop marks them).
struct Browser {
    router: axum::Router,
    cookie: Option<String>,
    peer: Option<SocketAddr>,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    retry_after: Option<String>,
    content_type: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("a form with a CSRF field: {}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl Browser {
    async fn new(stack: &Stack, hashes: Vec<platform::auth::operators::Entry>) -> Self {
        let args = console::ConsoleArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            order_url: stack.order_url.clone(),
            inventory_url: stack.inventory_url.clone(),
            notification_url: stack.notification_url.clone(),
            operator_tokens_file: None,
            operator_token_hashes: hashes,
            transport: Default::default(),
            // Often, so that the overview's charts have lines soon.
            history: console::history::HistoryArgs {
                console_history_every: Duration::from_millis(500),
            },
            kafka: stack.kafka.broker.clone(),
        };
        let console = console::Console::new(&args).await.unwrap();
        // Without `console::serve`, the charts' sampler is started here; it stops with the
        // console (it holds it weakly).
        console::history::spawn(&console, platform::CancellationToken::new());
        Self {
            router: console::router(console),
            cookie: None,
            peer: None,
        }
    }

    async fn send(&mut self, mut request: Request<Body>) -> Answer {
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        let text = |name: header::HeaderName| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let set_cookie = text(header::SET_COOKIE);
        if let Some(c) = &set_cookie {
            self.cookie = Some(c.split(';').next().unwrap().to_string());
        }
        let status = response.status();
        let location = text(header::LOCATION);
        let retry_after = text(header::RETRY_AFTER);
        let content_type = text(header::CONTENT_TYPE);
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .unwrap();
        Answer {
            status,
            location,
            retry_after,
            content_type,
            set_cookie,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let mut request = Request::get(path);
        if let Some(c) = &self.cookie {
            request = request.header(header::COOKIE, c);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Answer {
        let body: String = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    console::pages::encode(k),
                    console::pages::encode(v)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let mut request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "console.test");
        if let Some(c) = &self.cookie {
            request = request.header(header::COOKIE, c);
        }
        if let Some(o) = origin {
            request = request.header(header::ORIGIN, o);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    /// GETs `path` until `done` holds of its JSON (at most 60 s).
    async fn wait_json(&mut self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self.get(path).await;
            assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
            let v = answer.json();
            if done(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never became what was waited for: {v}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn titles(timeline: &Value) -> Vec<String> {
    timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap().to_string())
        .collect()
}

async fn the_console_shows_the_flow_and_acts_on_dead_letters(broker: BrokerKind) {
    let Some(stack) = Stack::spawn(broker, DbKind::Sqlite, StackOptions::default()).await else {
        return;
    };
    let topics = stack.topics();
    let created = topics.order_created();
    let dlt = topics.order_created_dlt();
    let mut browser = Browser::new(&stack, Vec::new()).await;
    stack.set_stock("FAIL", 10).await;

    // An order that goes through: its record, by key, and its timeline.
    let id = stack.post_order(42, &[("ABC-001", 1)]).await;
    assert_eq!(stack.settled_order(id).await["status"], "CONFIRMED");
    stack.wait_notifications(id).await;
    let listed = browser.get("/api/topics").await.json();
    let topic = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == created)
        .unwrap_or_else(|| panic!("{created} in {listed}"));
    assert!(topic["records"].as_i64().unwrap() >= 1, "{topic}");
    let page = browser
        .get(&format!("/api/topics/{created}/records?key={id}"))
        .await
        .json();
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{page}");
    assert_eq!(records[0]["key"], id.to_string());
    assert_eq!(records[0]["eventType"], contracts::topics::ORDER_CREATED);
    assert_eq!(records[0]["value"]["kind"], "json");
    let timeline = browser
        .wait_json(&format!("/api/orders/{id}/timeline"), |t| {
            t["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "notification")
        })
        .await;
    assert_eq!(timeline["order"]["status"], "CONFIRMED");
    let names = titles(&timeline);
    let at = |s: &str| {
        names
            .iter()
            .position(|t| t.contains(s))
            .unwrap_or_else(|| panic!("{s} in {names:?}"))
    };
    assert!(at("order.created") < at("inventory.reserved"), "{names:?}");
    let reserved = &timeline["entries"][at("inventory.reserved")];
    assert_eq!(reserved["status"], "CONFIRMED");
    assert_eq!(
        reserved["record"]["topic"],
        topics.name(contracts::topics::INVENTORY_RESERVED)
    );
    let html = browser.get(&format!("/orders/{id}")).await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(
        html.body.contains("stock reserved (inventory.reserved)"),
        "{}",
        html.body
    );
    // The Orders page draws the lifecycle from the table, as the table generates it.
    let orders = browser.get("/orders").await;
    assert_eq!(orders.status, StatusCode::OK);
    assert!(
        orders.body.contains(&contracts::lifecycle::svg()),
        "the Orders page shows contracts::lifecycle::svg()"
    );

    // An untrusted value shows as text.
    stack
        .produce_raw(&created, "evil", b"<script>alert(1)</script>", &[])
        .await;
    let html = browser.get(&format!("/topics/{created}?key=evil")).await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(
        html.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        html.body
    );
    assert!(!html.body.contains("<script>alert(1)"), "{}", html.body);

    // An order with FAIL is dead-lettered; the page lists it with its headers decoded.
    let failing = stack.post_order(42, &[("FAIL", 1)]).await;
    let letters = browser
        .wait_json(&format!("/api/topics/{dlt}/records?key={failing}"), |p| {
            !p["records"].as_array().unwrap().is_empty()
        })
        .await;
    let letter = &letters["records"][0];
    let header = |name: &str| {
        letter["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {letter}"))["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    header(contracts::headers::DLT_ORIGINAL_OFFSET)
        .parse::<i64>()
        .expect("the original offset as a number");
    let page = browser.get("/dead-letters").await;
    assert!(
        page.body.contains(&format!("href=\"/orders/{failing}\"")),
        "{}",
        page.body
    );

    // A POST without the form's token, or from another site, is refused.
    let csrf = page.csrf();
    let position = format!(
        "{}:{}:{}",
        letter["topic"].as_str().unwrap(),
        letter["partition"],
        letter["offset"]
    );
    let refused = browser
        .post(
            "/dead-letters/replay",
            &[("csrf", "wrong"), ("pick", &position), ("mode", "replay")],
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let refused = browser
        .post(
            "/dead-letters/replay",
            &[("csrf", &csrf), ("pick", &position), ("mode", "replay")],
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    // Fault off, a dry run changes nothing, a replay confirms the order.
    let off = browser
        .post(
            "/dead-letters/faults",
            &[("csrf", &csrf), ("set", "off")],
            Some("http://console.test"),
        )
        .await;
    assert!(off.body.contains("Faults set"), "{}", off.body);
    let dry = browser
        .post(
            "/dead-letters/replay",
            &[
                ("csrf", &csrf),
                ("which", "picked"),
                ("pick", &position),
                ("mode", "dry-run"),
            ],
            None,
        )
        .await;
    assert!(dry.body.contains("would-replay"), "{}", dry.body);
    // Had the dry run written the record again, it would have confirmed the order by the
    // time sentinels behind it on its partition are through inventory- and order-service.
    stack.decision_sentinel(&failing.to_string()).await;
    assert_eq!(stack.order(failing).await["status"], "FAILED");
    let done = browser
        .post(
            "/dead-letters/replay",
            &[
                ("csrf", &csrf),
                ("which", "picked"),
                ("pick", &position),
                ("mode", "replay"),
            ],
            None,
        )
        .await;
    assert!(done.body.contains(">replayed<"), "{}", done.body);

    // The redrive workbench: the parking lot's tab, the filter, a preview that counts what
    // it matches, and an edit the schema refuses, its errors beside the patch, escaped.
    let lot = browser.get("/dead-letters?view=parked").await;
    assert_eq!(lot.status, StatusCode::OK);
    assert!(lot.body.contains("Parking lot"), "{}", lot.body);
    let filtered = browser
        .get("/dead-letters?class=openorder.SimulatedFailure&match=fault+injection")
        .await;
    assert!(
        filtered
            .body
            .contains(&format!("href=\"/orders/{failing}\"")),
        "{}",
        filtered.body
    );
    let other = browser
        .get("/dead-letters?class=openorder.NoSuchClass")
        .await;
    assert!(
        other.body.contains("No dead letters match."),
        "{}",
        other.body
    );
    let preview = browser
        .post(
            "/dead-letters/redrive",
            &[
                ("csrf", &csrf),
                ("class", "openorder.SimulatedFailure"),
                ("match", "fault injection"),
                ("mode", "dry-run"),
            ],
            None,
        )
        .await;
    assert!(preview.body.contains("1 matched"), "{}", preview.body);
    let (topic, partition, offset) = (
        letter["topic"].as_str().unwrap(),
        letter["partition"].to_string(),
        letter["offset"].to_string(),
    );
    let edit = browser
        .get(&format!(
            "/dead-letters/edit?topic={topic}&partition={partition}&offset={offset}"
        ))
        .await;
    assert_eq!(edit.status, StatusCode::OK);
    assert!(edit.body.contains("<textarea"), "{}", edit.body);
    let refused = browser
        .post(
            "/dead-letters/edit",
            &[
                ("csrf", &csrf),
                ("topic", topic),
                ("partition", &partition),
                ("offset", &offset),
                ("patch", r#"{"items":[{"sku":"<b>bad</b>","qty":1}]}"#),
                ("mode", "replay"),
            ],
            None,
        )
        .await;
    assert!(
        refused.body.contains("/value/items/0/sku"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("Nothing was sent."),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("<b>bad</b>"), "{}", refused.body);
    let forged = browser
        .post(
            "/dead-letters/edit",
            &[
                ("csrf", "wrong"),
                ("topic", topic),
                ("partition", &partition),
                ("offset", &offset),
                ("patch", "{}"),
                ("mode", "replay"),
            ],
            None,
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    let timeline = browser
        .wait_json(&format!("/api/orders/{failing}/timeline"), |t| {
            t["order"]["status"] == "CONFIRMED"
                && titles(t).iter().any(|n| n.contains("inventory.reserved"))
        })
        .await;
    let names = titles(&timeline);
    assert!(
        names.iter().any(|n| n.starts_with("dead-lettered by")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.contains("replay #1")), "{names:?}");

    // The overview sees every service ready and the topic's records.
    let overview = browser.get("/api/overview").await.json();
    assert!(
        overview["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["ready"] == true),
        "{overview}"
    );
    assert!(overview["deadLetters"].as_i64().unwrap() >= 1, "{overview}");

    // Its charts: inventory-service's consumer of order.created and order-service's outbox
    // drawn as lines, the consumer's estimate beside; the samples as JSON.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page = browser.get("/").await;
        assert_eq!(page.status, StatusCode::OK);
        let consumer = chart(&page.body, "consumer:inventory-order-events");
        let outbox = chart(&page.body, "outbox:order-service");
        if consumer.is_some_and(|c| c.contains("<polyline"))
            && outbox.is_some_and(|c| c.contains("<polyline"))
        {
            assert!(page.body.contains("Lag in time"), "{}", page.body);
            assert!(
                ["caught up", "clears in", "growing by", "not draining"]
                    .iter()
                    .any(|estimate| page.body.contains(estimate)),
                "{}",
                page.body
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no lines in the overview's charts in 60 s: {}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let history = browser.get("/api/history").await.json();
    assert_eq!(history["everyMs"], 500, "{history}");
    let samples = history["samples"].as_array().unwrap();
    assert!(samples.len() >= 2, "{history}");
    let latest = &samples[samples.len() - 1];
    assert!(latest["atMs"].as_i64().unwrap() > 0, "{latest}");
    assert!(
        latest["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "order-service" && s["gauges"]["outboxRows"].is_number()),
        "{latest}"
    );
    stack.stop().await;
}

/// The overview's chart `id` (its `<svg data-chart="…">` to its `</svg>`), if it has one.
fn chart<'a>(page: &'a str, id: &str) -> Option<&'a str> {
    let start = page.find(&format!("data-chart=\"{id}\""))?;
    let end = start + page[start..].find("</svg>")?;
    Some(&page[start..end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_on_the_embedded_broker_shows_the_flow_and_acts_on_dead_letters() {
    the_console_shows_the_flow_and_acts_on_dead_letters(BrokerKind::Tansu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_on_kafka_shows_the_flow_and_acts_on_dead_letters() {
    the_console_shows_the_flow_and_acts_on_dead_letters(BrokerKind::Kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_given_operator_tokens_lets_in_only_an_operator_who_signs_in() {
    let Some(stack) =
        Stack::spawn(BrokerKind::Tansu, DbKind::Sqlite, StackOptions::default()).await
    else {
        return;
    };
    let token = platform::auth::operators::new_token();
    let entry = platform::auth::operators::Entry::for_token("alice", &token);
    let mut browser = Browser::new(&stack, vec![entry]).await;
    let page = browser.get("/topics").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/sign-in?next=%2Ftopics"));
    assert_eq!(
        browser.get("/api/overview").await.status,
        StatusCode::UNAUTHORIZED
    );
    let form = browser.get("/sign-in?next=%2Ftopics").await;
    assert_eq!(form.status, StatusCode::OK);
    let csrf = form.csrf();
    let wrong = browser
        .post(
            "/sign-in",
            &[
                ("csrf", &csrf),
                ("token", "oo_not-a-token"),
                ("next", "/topics"),
            ],
            None,
        )
        .await;
    assert!(
        wrong.body.contains("not an operator token"),
        "{}",
        wrong.body
    );
    let signed = browser
        .post(
            "/sign-in",
            &[("csrf", &csrf), ("token", &token), ("next", "/topics")],
            None,
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location.as_deref(), Some("/topics"));
    let page = browser.get("/topics").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("signed in as <b>alice</b>"),
        "{}",
        page.body
    );
    assert_eq!(browser.get("/api/overview").await.status, StatusCode::OK);
    stack.stop().await;
}

/// A console whose one operator is `alice` with `token`, and no stack behind it: signing in
/// touches neither the brokers nor the services.
async fn console_of_alice(token: &str) -> axum::Router {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        console: console::ConsoleArgs,
    }
    let entry = platform::auth::operators::Entry::for_token("alice", token);
    let line = entry.line();
    let cli = Cli::try_parse_from(["console", "--operator-token-hash", line.as_str()]).unwrap();
    console::router(console::Console::new(&cli.console).await.unwrap())
}

/// Signs in at `browser`'s console with `token`: the form's page, then its POST.
async fn sign_in(browser: &mut Browser, token: &str) -> Answer {
    let form = browser.get("/sign-in?next=%2Ftopics").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let csrf = form.csrf();
    browser
        .post(
            "/sign-in",
            &[("csrf", &csrf), ("token", token), ("next", "/topics")],
            None,
        )
        .await
}

#[tokio::test]
async fn after_ten_wrong_tokens_from_one_address_the_eleventh_sign_in_is_refused_429_and_another_address_still_signs_in(
) {
    let token = platform::auth::operators::new_token();
    let router = console_of_alice(&token).await;
    let mut guesser = Browser {
        router: router.clone(),
        cookie: None,
        peer: Some("203.0.113.50:40000".parse().unwrap()),
    };
    for attempt in 1..=10 {
        let wrong = sign_in(&mut guesser, "oo_not-a-token").await;
        assert_eq!(wrong.status, StatusCode::OK, "attempt {attempt}");
        assert!(
            wrong.body.contains("not an operator token"),
            "attempt {attempt}: {}",
            wrong.body
        );
    }
    let refused = sign_in(&mut guesser, "oo_not-a-token").await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(
        refused.content_type.as_deref(),
        Some("application/problem+json")
    );
    assert!(
        refused.body.contains("too-many-sign-in-attempts"),
        "{}",
        refused.body
    );
    let retry: u64 = refused
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Refused without the token being looked at: the right one is refused too, from there
    // (another port of the same address is the same client).
    guesser.peer = Some("203.0.113.50:40001".parse().unwrap());
    let right_but_refused = sign_in(&mut guesser, &token).await;
    assert_eq!(right_but_refused.status, StatusCode::TOO_MANY_REQUESTS);

    // Another address signs in with the right token.
    let mut operator = Browser {
        router,
        cookie: None,
        peer: Some("198.51.100.20:50000".parse().unwrap()),
    };
    let signed = sign_in(&mut operator, &token).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location.as_deref(), Some("/topics"));
    // Over plain HTTP, with no proxy trusted: the cookie is not `Secure`.
    let cookie = signed.set_cookie.expect("a new session's cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    let page = operator.get("/sign-in").await;
    assert!(
        page.body.contains("signed in as <b>alice</b>"),
        "{}",
        page.body
    );
}

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
    let none = browser.get("/stuck").await;
    assert_eq!(none.status, StatusCode::OK, "{}", none.body);
    assert!(none.body.contains("No order is stuck"), "{}", none.body);
    assert!(
        none.body
            .contains("<a href=\"/stuck\" class=\"active\">Stuck orders</a>"),
        "the page is in the navigation: {}",
        none.body
    );

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
    let cancel = stack
        .http
        .post(format!("{}/api/orders/{cancelled}/cancel", stack.order_url))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    // …and three that nothing will decide, placed 30, 90 and 10 minutes ago.
    let stuck = pending_orders(&urls[0], 62, &[30, 90, 10]).await;

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
    assert!(
        !page.body.contains(&format!("href=\"/orders/{confirmed}\"")),
        "a decided order is not stuck: {}",
        page.body
    );
    assert!(
        page.body.contains("<b>3</b> stuck in all."),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("1 h 30 min"),
        "the oldest's age: {}",
        page.body
    );
    assert!(
        page.body.contains("(5 min)"),
        "--stuck-after: {}",
        page.body
    );
    // A page at a time: the two oldest, and a link to more.
    let first = browser.get("/stuck?limit=2").await;
    let listed = |id: i64| first.body.contains(&format!("href=\"/orders/{id}\""));
    assert!(
        listed(stuck[1]) && listed(stuck[0]) && !listed(stuck[2]),
        "{}",
        first.body
    );
    assert!(
        first.body.contains("href=\"/stuck?limit=102\""),
        "{}",
        first.body
    );
    stack.stop().await;
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
