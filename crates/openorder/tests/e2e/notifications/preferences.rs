//! Users' channel preferences: checked field by field and kept, and applied: a user who
//! turned e-mail off for confirmed orders gets none for one, but still one for each
//! rejected order.

use super::{channels_of, delivery, notify, problem_fields, settled_notifications, stack};
use crate::support::receivers::SmtpSink;
use crate::support::{BrokerKind, DbKind, Stack};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_who_turned_email_off_for_confirmed_orders_gets_none_for_one_but_still_for_a_rejected_one(
) {
    let smtp = SmtpSink::start(0);
    let stack = stack(BrokerKind::Tansu, DbKind::Sqlite, notify(Some(&smtp), 3))
        .await
        .unwrap();
    preferences_are_checked_then_kept(&stack).await;
    a_phone_not_in_e164_form_is_refused(&stack).await;

    let confirmed = stack.post_order(91, &[("ABC-001", 1)]).await;
    let notes = settled_notifications(&stack.notification_url, confirmed, 1).await;
    assert_eq!(notes[0]["kind"], "order.confirmed");
    assert_eq!(
        channels_of(&notes[0]),
        ["log"],
        "no e-mail for a confirmed order"
    );

    let rejected = stack.post_order(91, &[("OUT-001", 1)]).await;
    let notes = settled_notifications(&stack.notification_url, rejected, 1).await;
    assert_eq!(notes[0]["kind"], "order.rejected");
    assert_eq!(delivery(&notes[0], "email")["status"], "DELIVERED");
    let mails = smtp.wait_messages(1).await;
    assert_eq!(mails[0]["to"], json!(["gina@example.com"]));
    assert_eq!(
        mails[0]["headers"]["Subject"],
        format!("Order {rejected} could not be accepted")
    );
    // A later rejected order of the same user, through to its e-mail: the dispatcher sends
    // it after anything due before it.
    let later = stack.post_order(91, &[("OUT-001", 1)]).await;
    let notes = settled_notifications(&stack.notification_url, later, 1).await;
    assert_eq!(delivery(&notes[0], "email")["status"], "DELIVERED");
    let mails = smtp.wait_messages(2).await;
    let subjects: Vec<&str> = mails
        .iter()
        .map(|m| m["headers"]["Subject"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        subjects,
        [
            format!("Order {rejected} could not be accepted"),
            format!("Order {later} could not be accepted")
        ],
        "the rejected orders' e-mails only"
    );
    stack.stop().await;
}

/// User 91's preferences: refused field by field when wrong, kept when right (e-mail off
/// for confirmed orders).
async fn preferences_are_checked_then_kept(stack: &Stack) {
    let http = &stack.http;
    let url = format!(
        "{}/api/users/91/notification-preferences",
        stack.notification_url
    );
    assert_eq!(http.get(&url).send().await.unwrap().status(), 404);
    for (bad, field) in [
        (
            json!({"channels": {"CONFIRMED": ["log", "fax"]}}),
            "/channels/CONFIRMED/1",
        ),
        (json!({"channels": {"SHIPPED": ["email"]}}), "/channels"),
        (
            json!({"channels": {"CONFIRMED": "email"}}),
            "/channels/CONFIRMED",
        ),
    ] {
        let refused = http.put(&url).json(&bad).send().await.unwrap();
        assert_eq!(refused.status(), 422, "{bad}");
        let problem: Value = refused.json().await.unwrap();
        let fields = problem_fields(&problem);
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{bad}: {problem}"
        );
    }
    let put = http
        .put(&url)
        .json(&json!({"channels": {"CONFIRMED": ["log", "webhook", "sms"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let got: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["userId"], 91);
    assert_eq!(
        got["channels"],
        json!({"CONFIRMED": ["log", "webhook", "sms"]})
    );
}

/// User 91's contact: a phone number not in E.164 form is refused; an e-mail address alone
/// is set.
async fn a_phone_not_in_e164_form_is_refused(stack: &Stack) {
    let http = &stack.http;
    let contact = http
        .put(format!("{}/api/users/91/contact", stack.notification_url))
        .json(&json!({"email": "gina@example.com", "phone": "0151 1234567"}))
        .send()
        .await
        .unwrap();
    assert_eq!(contact.status(), 422, "a phone number not in E.164 form");
    let problem: Value = contact.json().await.unwrap();
    assert_eq!(problem_fields(&problem), ["/phone"], "{problem}");
    let contact = http
        .put(format!("{}/api/users/91/contact", stack.notification_url))
        .json(&json!({"email": "gina@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(contact.status(), 200);
}
