//! Tests of the SMS channel: request signatures and the signed URL, the form a message is
//! sent as, its settings, Retry-After, refusals and what receipts mean.

use super::*;

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The example of the provider's documentation of request validation.
#[test]
fn signatures_match_the_documented_example() {
    let form = pairs(&[
        ("To", "+18005551212"),
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
    ]);
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    assert_eq!(
        signature("12345", url, &form),
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    );
    assert!(signature_is_valid(
        "12345",
        url,
        &form,
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    ));
    // Another token, URL, field value or field: not valid.
    assert!(!signature_is_valid(
        "12346",
        url,
        &form,
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    ));
    assert!(!signature_is_valid(
        "12345",
        "https://mycompany.com/myapp.php?foo=1&bar=3",
        &form,
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    ));
    let mut changed = form.clone();
    changed[3].1 = "1235".into();
    assert!(!signature_is_valid(
        "12345",
        url,
        &changed,
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    ));
    let mut added = form.clone();
    added.push(("MessageStatus".into(), "delivered".into()));
    assert!(!signature_is_valid(
        "12345",
        url,
        &added,
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    ));
    assert!(!signature_is_valid("12345", url, &form, "not base64!"));
    assert!(!signature_is_valid("12345", url, &form, ""));
}

#[test]
fn the_signed_url_is_the_public_one_with_the_query_the_provider_called() {
    let callbacks = Callbacks::new(
        Secret::new("token"),
        url::Url::parse("https://shop.example.com/hooks/sms-status").unwrap(),
    );
    assert_eq!(
        callbacks.signed_url(Some("delivery=0190abcd")),
        "https://shop.example.com/hooks/sms-status?delivery=0190abcd"
    );
    assert_eq!(
        callbacks.signed_url(None),
        "https://shop.example.com/hooks/sms-status"
    );
    // A configured URL with a query of its own: the callback carries both.
    let callbacks = Callbacks::new(
        Secret::new("token"),
        url::Url::parse("https://shop.example.com/sms?tenant=7").unwrap(),
    );
    assert_eq!(
        callbacks.signed_url(Some("tenant=7&delivery=k")),
        "https://shop.example.com/sms?tenant=7&delivery=k"
    );
}

fn args() -> SmsArgs {
    SmsArgs {
        sms_account_sid: Some("AC0123456789abcdef0123456789abcdef".into()),
        sms_auth_token: None,
        sms_auth_token_file: Some(Secret::new("auth-token")),
        sms_from: Some("+15005550006".into()),
        sms_base_url: "http://127.0.0.1:9/".into(),
        sms_status_callback_url: Some("https://shop.example.com/callbacks/sms".into()),
        sms_max_segments: 1,
        sms_timeout_ms: 1_000,
    }
}

fn message(text: &str) -> Outgoing {
    Outgoing {
        delivery_id: 1,
        order_id: 7,
        channel: NAME.into(),
        recipient: "+14155550100".into(),
        idempotency_key: "0190abcd-key".into(),
        kind: "order.confirmed".into(),
        subject: String::new(),
        text: text.into(),
        html: String::new(),
        payload: String::new(),
        trace: String::new(),
        created_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn a_message_is_the_form_of_to_from_body_and_its_status_callback() {
    let sms = SmsChannel::from_args(&args()).unwrap().unwrap();
    assert_eq!(
        sms.endpoint,
        "http://127.0.0.1:9/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
    );
    let form: Vec<(String, String)> =
        url::form_urlencoded::parse(sms.form(&message("Order 7 is confirmed.\n")).as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        form,
        pairs(&[
            ("To", "+14155550100"),
            ("From", "+15005550006"),
            ("Body", "Order 7 is confirmed."),
            (
                "StatusCallback",
                "https://shop.example.com/callbacks/sms?delivery=0190abcd-key"
            ),
        ])
    );
    // Longer than --sms-max-segments: cut, the same way every time.
    let long = sms.form(&message(&"a".repeat(400)));
    let body: String = url::form_urlencoded::parse(long.as_bytes())
        .find(|(k, _)| *k == "Body")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(body, format!("{}...", "a".repeat(157)));
    // Without a status callback, none is asked for.
    let mut no_receipts = args();
    no_receipts.sms_status_callback_url = None;
    let sms = SmsChannel::from_args(&no_receipts).unwrap().unwrap();
    assert!(!sms.form(&message("x")).contains("StatusCallback"));
    assert!(sms.callbacks().is_none());
}

#[tokio::test]
async fn sms_is_off_without_an_account_and_refuses_half_a_configuration() {
    let mut off = args();
    off.sms_account_sid = None;
    assert!(SmsChannel::from_args(&off).unwrap().is_none());
    let mut no_token = args();
    no_token.sms_auth_token_file = None;
    let refused = SmsChannel::from_args(&no_token).err().unwrap();
    assert!(
        format!("{refused:#}").contains(AUTH_TOKEN_ENV),
        "{refused:#}"
    );
    let mut no_from = args();
    no_from.sms_from = None;
    assert!(SmsChannel::from_args(&no_from).is_err());
    let mut odd_sid = args();
    odd_sid.sms_account_sid = Some("AC/../x".into());
    assert!(SmsChannel::from_args(&odd_sid).is_err());
}

#[tokio::test]
async fn an_auth_token_not_from_the_environment_is_refused() {
    // The variable is never set in tests: a token in the field came from a flag.
    assert!(std::env::var(AUTH_TOKEN_ENV).is_err());
    let mut flag = args();
    flag.sms_auth_token_file = None;
    flag.sms_auth_token = Some(Secret::new("S3CRET-FROM-A-FLAG"));
    let refused = SmsChannel::from_args(&flag).err().unwrap();
    let refused = format!("{refused:#}");
    assert!(refused.contains("command line"), "{refused}");
    assert!(!refused.contains("S3CRET"), "{refused}");
}

#[test]
fn retry_after_is_seconds_or_a_date() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
    assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(
        retry_after("Tue, 24 Nov 2026 10:00:30 GMT", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        retry_after("Tue, 24 Nov 2026 09:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(retry_after("soon", now), None);
    assert_eq!(retry_after("-5", now), None);
}

#[test]
fn refusals_name_the_status_and_the_providers_code() {
    let refusal = Refusal {
        code: Some(21211),
        message: Some("The 'To' number +1555 is not a valid phone number.\n".into()),
    };
    assert_eq!(
        refused(reqwest::StatusCode::BAD_REQUEST, &refusal),
        "the SMS provider answered HTTP 400 Bad Request, code 21211 (the number cannot receive SMS): The 'To' number +1555 is not a valid phone number."
    );
    assert_eq!(
        refused(reqwest::StatusCode::TOO_MANY_REQUESTS, &Refusal::default()),
        "the SMS provider answered HTTP 429 Too Many Requests"
    );
}

#[test]
fn receipts_move_deliveries_only_on_final_statuses() {
    for status in ["queued", "accepted", "sending", "sent", "something-new"] {
        assert_eq!(Receipt::of(status), Receipt::OnItsWay, "{status}");
    }
    assert_eq!(Receipt::of("delivered"), Receipt::Delivered);
    for status in ["undelivered", "failed", "canceled"] {
        assert_eq!(Receipt::of(status), Receipt::Failed, "{status}");
    }
}
