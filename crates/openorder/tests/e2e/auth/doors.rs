//! Every door locked: each private endpoint refuses a caller without a credential (401,
//! writing nothing) while health stays open; operators use either rotated token, and
//! customers and strangers are refused what is not theirs.

use super::{Locked, ALICE};
use platform::auth::operators::new_token;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub(super) async fn every_private_endpoint_refuses_a_caller_without_a_credential_and_writes_nothing(
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

pub(super) async fn operators_use_either_rotated_token_and_customers_and_strangers_are_refused(
    l: &Locked,
) {
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
