//! The tests of the records module: a record as shown, and the filter.

use super::view::shown;
use super::*;

fn record(key: &str, payload: &[u8], headers: &[(&str, &[u8])]) -> Record {
    Record {
        topic: "t".into(),
        partition: 0,
        offset: 7,
        timestamp: Some(1),
        key: Some(key.as_bytes().to_vec()),
        payload: Some(payload.to_vec()),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_vec())))
            .collect(),
    }
}

#[test]
fn a_dead_letters_binary_headers_show_as_numbers_and_its_text_as_text() {
    let r = record(
        "42",
        br#"{"orderId":42}"#,
        &[
            (headers::DLT_ORIGINAL_OFFSET, &1234i64.to_be_bytes()),
            (headers::DLT_ORIGINAL_PARTITION, &2i32.to_be_bytes()),
            (headers::DLT_EXCEPTION_MESSAGE, b"boom"),
            ("odd", &[0, 1, 2]),
        ],
    );
    let view = RecordView::of(&r);
    let value = |n: &str| {
        view.headers
            .iter()
            .find(|h| h.name == n)
            .unwrap()
            .value
            .clone()
    };
    assert_eq!(value(headers::DLT_ORIGINAL_OFFSET), "1234");
    assert_eq!(value(headers::DLT_ORIGINAL_PARTITION), "2");
    assert_eq!(value(headers::DLT_EXCEPTION_MESSAGE), "boom");
    assert_eq!(value("odd"), "00 01 02");
    assert!(matches!(&view.value, Value::Json(t) if t.contains("\"orderId\": 42")));
}

#[test]
fn a_value_that_is_not_json_shows_as_text_or_hex_and_a_large_one_is_cut() {
    assert!(matches!(shown(b"<script>"), Value::Text(t) if t == "<script>"));
    assert!(matches!(shown(&[0xff, 0xfe]), Value::Hex(t) if t == "ff fe"));
    let large = "x".repeat(MAX_VALUE_SHOWN + 10);
    match shown(large.as_bytes()) {
        Value::Text(t) => assert!(t.ends_with("… 10 more bytes"), "{}", &t[t.len() - 20..]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_filter_keeps_a_record_only_when_every_part_given_matches() {
    let r = record(
        "42",
        br#"{"sku":"ABC"}"#,
        &[(headers::EVENT_TYPE, b"OrderCreated")],
    );
    let f = |key: Option<&str>, event: Option<&str>, text: Option<&str>| Filter {
        key: key.map(Into::into),
        event_type: event.map(Into::into),
        text: text.map(Into::into),
    };
    assert!(f(None, None, None).matches(&r));
    assert!(f(Some("42"), Some("OrderCreated"), Some("ABC")).matches(&r));
    assert!(!f(Some("4"), None, None).matches(&r));
    assert!(!f(None, Some("OrderCancelled"), None).matches(&r));
    assert!(!f(None, None, Some("XYZ")).matches(&r));
    assert!(
        f(None, None, Some("Created")).matches(&r),
        "text in a header"
    );
}
