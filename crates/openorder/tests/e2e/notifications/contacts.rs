//! Contacts: a user's registered contact, checked field by field and used when an order
//! carries none (the order's own wins), a bad contact on an order refused before anything
//! is written, and webhook URLs pointing inside the network refused wherever they come.

use super::{
    delivery, notify, order_with_contact, post_with_contact, problem_fields, settled_notifications,
    stack,
};
use crate::support::receivers::SmtpSink;
use crate::support::{BrokerKind, DbKind};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_users_registered_contact_is_checked_and_used_when_the_order_has_none() {
    let smtp = SmtpSink::start(0);
    let stack = stack(BrokerKind::Tansu, DbKind::Sqlite, notify(Some(&smtp), 3))
        .await
        .unwrap();
    let http = &stack.http;
    let url = format!("{}/api/users/77/contact", stack.notification_url);

    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    let bad = http
        .put(&url)
        .json(&json!({"email": "bob at example", "webhookUrl": "ftp://x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let problem: Value = bad.json().await.unwrap();
    let fields = problem_fields(&problem);
    assert_eq!(fields, ["/email", "/webhookUrl"], "{problem}");
    let unknown = http
        .put(&url)
        .json(&json!({"mail": "bob@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 422);
    let bad_user = http
        .put(format!("{}/api/users/0/contact", stack.notification_url))
        .json(&json!({"email": "bob@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_user.status(), 400);

    let put = http
        .put(&url)
        .json(&json!({"email": "bob@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let got: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["email"], "bob@example.com");
    assert_eq!(got["webhookUrl"], Value::Null);

    // No contact on the order: the registered one is used.
    let id = stack.post_order(77, &[("ABC-002", 1)]).await;
    let notes = settled_notifications(&stack.notification_url, id, 1).await;
    assert_eq!(delivery(&notes[0], "email")["recipient"], "bob@example.com");
    // The order's own contact wins over the registered one.
    let own = post_with_contact(
        &stack,
        77,
        "ABC-002",
        1,
        json!({"email": "carol@example.com"}),
    )
    .await;
    let notes = settled_notifications(&stack.notification_url, own, 1).await;
    assert_eq!(
        delivery(&notes[0], "email")["recipient"],
        "carol@example.com"
    );
    // Without an order id: the latest notifications, newest first, with their deliveries.
    let latest: Vec<Value> = stack
        .get_json(format!("{}/api/notifications", stack.notification_url))
        .await;
    assert_eq!(latest[0]["orderId"], own, "{latest:#?}");
    assert_eq!(latest[1]["orderId"], id, "{latest:#?}");
    assert_eq!(latest[0]["deliveries"].as_array().unwrap().len(), 2);
    let mails = smtp.wait_messages(2).await;
    assert_eq!(mails[0]["to"], json!(["bob@example.com"]));
    assert_eq!(mails[1]["to"], json!(["carol@example.com"]));

    // A bad contact on an order is refused before anything is written.
    let refused = http
        .post(format!("{}/api/orders", stack.order_url))
        .json(&order_with_contact(
            77,
            "ABC-002",
            1,
            json!({"email": "x@", "webhookUrl": "https://u:p@h.example/x"}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    let fields = problem_fields(&problem);
    assert_eq!(fields, ["/contact/email", "/contact/webhookUrl"]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_pointing_inside_is_refused_when_registered_and_when_an_order_carries_it() {
    // The stack opens loopback (its receivers' network) and nothing else.
    let stack = stack(BrokerKind::Tansu, DbKind::Sqlite, notify(None, 3))
        .await
        .unwrap();
    let http = &stack.http;
    let url = format!("{}/api/users/78/contact", stack.notification_url);
    for inside in [
        "http://10.0.0.1/hook",
        "http://167772161/hook",
        "http://0xa.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://192.168.1.1/hook",
    ] {
        let refused = http
            .put(&url)
            .json(&json!({"webhookUrl": inside}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 422, "{inside}");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(
            problem_fields(&problem),
            ["/webhookUrl"],
            "{inside}: {problem}"
        );
        let order = http
            .post(format!("{}/api/orders", stack.order_url))
            .json(
                &json!({"userId": 78, "items": [{"sku": "ABC-001", "qty": 1}],
                          "contact": {"webhookUrl": inside}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(order.status(), 422, "order with {inside}");
    }
    // Nothing was stored for the user; the opened loopback network is accepted.
    assert_eq!(http.get(&url).send().await.unwrap().status(), 404);
    let opened = http
        .put(&url)
        .json(&json!({"webhookUrl": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    stack.stop().await;
}
