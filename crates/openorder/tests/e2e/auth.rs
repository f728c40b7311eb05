//! Authentication and who may see what, end to end on real brokers and databases: operator
//! tokens (two at once, as during a rotation) and customers' JWTs from a fake OpenID Connect
//! issuer on loopback that signs them with its own keys (ES256, RS256) and serves its JWKS.

use std::time::Duration;

use crate::support;
use crate::support::issuer::{Issuer, AUDIENCE};
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};
use platform::auth::operators::{new_token, Entry};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ALICE: i64 = 7;
const BOB: i64 = 8;

struct Locked {
    stack: Stack,
    issuer: Issuer,
    /// Two operator tokens, both valid (a rotation in progress).
    ops: [String; 2],
}

async fn locked(broker: BrokerKind, db: DbKind) -> Option<Locked> {
    let issuer = Issuer::start().await;
    let ops = [new_token(), new_token()];
    let file = support::temp_dir("operators").join("operators");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let lines = format!(
        "# old and new, while callers move\n{}\n{}\n",
        Entry::for_token("ops-old", &ops[0]).line(),
        Entry::for_token("ops-new", &ops[1]).line()
    );
    std::fs::write(&file, lines).unwrap();
    let options = StackOptions {
        auth: platform::auth::AuthArgs {
            operator_tokens_file: Some(file),
            oidc_issuer: Some(issuer.url.clone()),
            oidc_audience: Some(AUDIENCE.into()),
            oidc_user_claim: "sub".into(),
            protect_metrics: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let stack = Stack::spawn(broker, db, options).await?;
    Some(Locked { stack, issuer, ops })
}

impl Locked {
    async fn call(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.stack.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, url: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, url, Some(token), None).await
    }

    fn orders(&self) -> String {
        format!("{}/api/orders", self.stack.order_url)
    }
}

async fn every_private_endpoint_refuses_a_caller_without_a_credential_and_writes_nothing(
    l: &Locked,
) {
    let (o, i, n) = (
        &l.stack.order_url,
        &l.stack.inventory_url,
        &l.stack.notification_url,
    );
    let dlt = l.stack.topics().order_created_dlt();
    let order = json!({"userId": ALICE, "items": [{"sku": "ABC-001", "qty": 1}]});
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, format!("{o}/api/orders"), Some(order)),
        (Method::GET, format!("{o}/api/orders?userId={ALICE}"), None),
        (Method::GET, format!("{o}/api/orders/1"), None),
        (Method::POST, format!("{o}/api/orders/1/cancel"), None),
        (Method::GET, format!("{i}/api/inventory"), None),
        (Method::GET, format!("{i}/api/inventory/ABC-001"), None),
        (
            Method::PUT,
            format!("{i}/api/inventory/ABC-001"),
            Some(json!({"available": 0})),
        ),
        (Method::GET, format!("{i}/admin/faults"), None),
        (
            Method::PUT,
            format!("{i}/admin/faults"),
            Some(json!({"failSku": "ABC-001"})),
        ),
        (Method::GET, format!("{i}/admin/dlt?topic={dlt}"), None),
        (
            Method::POST,
            format!("{i}/admin/dlt/replay"),
            Some(json!({"topic": dlt})),
        ),
        (
            Method::POST,
            format!("{i}/admin/dlt/redrive"),
            Some(json!({"dryRun": true})),
        ),
        (Method::GET, format!("{n}/api/notifications"), None),
        (Method::GET, format!("{n}/api/users/{ALICE}/contact"), None),
        (
            Method::PUT,
            format!("{n}/api/users/{ALICE}/contact"),
            Some(json!({"email": "a@example.com"})),
        ),
        (Method::GET, format!("{o}/admin/status"), None),
        (Method::GET, format!("{i}/admin/status"), None),
        (Method::GET, format!("{n}/admin/status"), None),
        (Method::GET, format!("{o}/metrics"), None),
        (Method::GET, format!("{n}/metrics"), None),
    ];
    for (method, url, body) in calls {
        let mut request = l.stack.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{method} {url}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{method} {url}"
        );
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{method} {url}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "/problems/unauthorized", "{method} {url}");
    }
    // Health stays open.
    for base in [o, i, n] {
        let live = l
            .stack
            .http
            .get(format!("{base}/health/live"))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), 200);
    }
    // Nothing was written: no order, stock and faults as they were.
    let (status, listed) = l
        .get(&format!("{}?userId={ALICE}", l.orders()), &l.ops[0])
        .await;
    assert_eq!(
        (status, listed["orders"].clone()),
        (StatusCode::OK, json!([]))
    );
    let (_, faults) = l.get(&format!("{i}/admin/faults"), &l.ops[0]).await;
    assert_eq!(faults["failSku"], "FAIL");
    let (_, contact) = l
        .get(&format!("{n}/api/users/{ALICE}/contact"), &l.ops[0])
        .await;
    assert_eq!(contact["type"], "/problems/not-found");
}

async fn operators_use_either_rotated_token_and_customers_and_strangers_are_refused(l: &Locked) {
    let i = &l.stack.inventory_url;
    let sku = format!("AUTH-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let url = format!("{i}/api/inventory/{sku}");
    let (status, _) = l
        .call(
            Method::PUT,
            &url,
            Some(&l.ops[0]),
            Some(json!({"available": 10})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, stock) = l.get(&url, &l.ops[1]).await;
    assert_eq!(
        (status, stock["available"].as_i64()),
        (StatusCode::OK, Some(10))
    );
    // A customer may read stock but not set it, nor reach any operator route.
    let alice = l.issuer.token(ALICE);
    let (status, stock) = l.get(&url, &alice).await;
    assert_eq!(
        (status, stock["available"].as_i64()),
        (StatusCode::OK, Some(10))
    );
    let (status, problem) = l
        .call(
            Method::PUT,
            &url,
            Some(&alice),
            Some(json!({"available": 0})),
        )
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::FORBIDDEN, Some("/problems/forbidden"))
    );
    for path in ["/admin/faults", "/admin/status", "/metrics"] {
        let (status, _) = l.get(&format!("{i}{path}"), &alice).await;
        assert_eq!(status, 403, "{path}");
    }
    // A token that is neither is 401, and so is another scheme.
    let (status, _) = l.get(&format!("{i}/admin/faults"), &new_token()).await;
    assert_eq!(status, 401);
    let basic = l
        .stack
        .http
        .get(format!("{i}/admin/faults"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    let (_, stock) = l.get(&url, &l.ops[1]).await;
    assert_eq!(
        stock["available"].as_i64(),
        Some(10),
        "nothing refused was written"
    );
    let (status, metrics) = l.get(&format!("{i}/metrics"), &l.ops[1]).await;
    assert_eq!(status, 200);
    assert!(
        metrics.as_str().unwrap().contains("openorder_"),
        "{metrics}"
    );
}

async fn a_customer_sees_and_changes_only_their_own_orders_notifications_and_contact(l: &Locked) {
    let (n, orders) = (&l.stack.notification_url, l.orders());
    let (alice, bob) = (l.issuer.token(ALICE), l.issuer.token(BOB));
    let order = |user: i64| json!({"userId": user, "items": [{"sku": "ABC-001", "qty": 1}]});
    // Alice orders for herself; not for Bob.
    let (status, problem) = l
        .call(Method::POST, &orders, Some(&alice), Some(order(BOB)))
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::FORBIDDEN, Some("/problems/forbidden"))
    );
    let (_, listed) = l.get(&format!("{orders}?userId={BOB}"), &l.ops[0]).await;
    assert_eq!(
        listed["orders"],
        json!([]),
        "the refused order was not written"
    );
    let (status, accepted) = l
        .call(Method::POST, &orders, Some(&alice), Some(order(ALICE)))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["orderId"].as_i64().unwrap();
    let mine = format!("{orders}/{id}");

    let (status, seen) = l.get(&mine, &alice).await;
    assert_eq!(
        (status, seen["userId"].as_i64()),
        (StatusCode::OK, Some(ALICE))
    );
    let (status, _) = l.get(&mine, &bob).await;
    assert_eq!(status, 404, "another's order is not found");
    let (status, _) = l
        .call(Method::POST, &format!("{mine}/cancel"), Some(&bob), None)
        .await;
    assert_eq!(status, 404, "nor cancelled");
    let (status, _) = l.get(&format!("{orders}?userId={ALICE}"), &bob).await;
    assert_eq!(status, 403);
    let (status, listed) = l.get(&orders, &bob).await;
    assert_eq!(
        (status, listed["orders"].clone()),
        (StatusCode::OK, json!([])),
        "Bob's own list"
    );
    let (_, listed) = l.get(&orders, &alice).await;
    assert_eq!(
        listed["orders"][0]["orderId"].as_i64(),
        Some(id),
        "Alice's own list"
    );

    // Her notification is hers alone.
    let by_order = format!("{n}/api/notifications?orderId={id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, notes) = l.get(&by_order, &alice).await;
        if !notes.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {id} not notified"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, notes) = l.get(&by_order, &bob).await;
    assert_eq!((status, notes), (StatusCode::OK, json!([])));
    let (_, latest) = l.get(&format!("{n}/api/notifications"), &bob).await;
    assert!(
        latest
            .as_array()
            .unwrap()
            .iter()
            .all(|note| note["orderId"] != id),
        "{latest}"
    );
    let (_, latest) = l.get(&format!("{n}/api/notifications"), &alice).await;
    assert!(
        latest
            .as_array()
            .unwrap()
            .iter()
            .any(|note| note["orderId"] == id),
        "{latest}"
    );

    // Her contact is hers to read and set.
    let contact = format!("{n}/api/users/{ALICE}/contact");
    let (status, _) = l
        .call(
            Method::PUT,
            &contact,
            Some(&alice),
            Some(json!({"email": "alice@example.com"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = l.get(&contact, &bob).await;
    assert_eq!(status, 403);
    let (status, _) = l
        .call(
            Method::PUT,
            &contact,
            Some(&bob),
            Some(json!({"email": "bob@example.com"})),
        )
        .await;
    assert_eq!(status, 403);
    let (_, kept) = l.get(&contact, &alice).await;
    assert_eq!(kept["email"], "alice@example.com");

    // She cancels her own; an operator may see it too.
    let (status, cancelled) = l
        .call(Method::POST, &format!("{mine}/cancel"), Some(&alice), None)
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (StatusCode::OK, Some("CANCELLED"))
    );
    let (status, _) = l.get(&mine, &l.ops[1]).await;
    assert_eq!(status, 200);
}

async fn tokens_the_issuer_did_not_make_or_that_do_not_fit_are_refused(l: &Locked) {
    let orders = format!("{}?userId={ALICE}", l.orders());
    let claims = l.issuer.claims(ALICE);
    let with = |change: Value| {
        let mut claims = claims.clone();
        for (k, v) in change.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let now = chrono::Utc::now().timestamp();
    let refused = [
        (
            "expired",
            l.issuer.sign("es-1", &with(json!({"exp": now - 120}))),
        ),
        (
            "another issuer",
            l.issuer
                .sign("es-1", &with(json!({"iss": "https://evil.example"}))),
        ),
        (
            "another audience",
            l.issuer.sign("es-1", &with(json!({"aud": "someone-else"}))),
        ),
        (
            "no expiry",
            l.issuer.sign("es-1", &{
                let mut c = claims.clone();
                c.as_object_mut().unwrap().remove("exp");
                c
            }),
        ),
        (
            "alg none",
            Issuer::unsigned(&json!({"alg": "none", "kid": "es-1"}), &claims, b""),
        ),
        (
            "HS256",
            Issuer::unsigned(&json!({"alg": "HS256", "kid": "es-1"}), &claims, b"forged"),
        ),
        (
            "an unknown key id",
            Issuer::unsigned(&json!({"alg": "ES256", "kid": "nope"}), &claims, &[0; 64]),
        ),
        (
            "a forged signature",
            Issuer::unsigned(&json!({"alg": "ES256", "kid": "es-1"}), &claims, &[1; 64]),
        ),
        ("not a JWT", "hello".to_string()),
    ];
    for (what, token) in refused {
        let (status, problem) = l.get(&orders, &token).await;
        assert_eq!(status, 401, "{what}: {problem}");
        assert_eq!(problem["type"], "/problems/unauthorized", "{what}");
    }
    // RS256 works as ES256 does; a valid token without a user id is 403.
    let (status, _) = l.get(&orders, &l.issuer.sign("rs-1", &claims)).await;
    assert_eq!(status, 200);
    let (status, problem) = l
        .get(
            &orders,
            &l.issuer.sign("es-1", &with(json!({"sub": "alice"}))),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    // The issuer rotates in a new key: its tokens are accepted once its keys are fetched again.
    l.issuer.add_es_key("es-2");
    let token = l.issuer.sign("es-2", &claims);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = l.get(&orders, &token).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a rotated-in key was not fetched: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn all(broker: BrokerKind, db: DbKind) {
    let Some(l) = locked(broker, db).await else {
        return;
    };
    every_private_endpoint_refuses_a_caller_without_a_credential_and_writes_nothing(&l).await;
    operators_use_either_rotated_token_and_customers_and_strangers_are_refused(&l).await;
    a_customer_sees_and_changes_only_their_own_orders_notifications_and_contact(&l).await;
    tokens_the_issuer_did_not_make_or_that_do_not_fit_are_refused(&l).await;
    l.stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_is_locked_and_each_caller_sees_only_theirs_on_tansu_with_sqlite() {
    all(BrokerKind::Tansu, DbKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_is_locked_and_each_caller_sees_only_theirs_on_kafka_with_postgres() {
    all(BrokerKind::Kafka, DbKind::Postgres).await;
}
