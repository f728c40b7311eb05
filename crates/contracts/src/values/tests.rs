//! The order's values and the contact points: what parses and what is refused.

use super::*;

#[test]
fn skus_of_allowed_characters_and_length_parse() {
    assert!(Sku::parse("ABC-001").is_ok());
    assert!(Sku::parse("a.b_c-9").is_ok());
    assert!(Sku::parse(&"X".repeat(64)).is_ok());
}

#[test]
fn empty_long_or_odd_skus_are_refused() {
    assert!(Sku::parse("").is_err());
    assert!(Sku::parse(&"X".repeat(65)).is_err());
    assert!(Sku::parse("ABC 001").is_err());
    assert!(Sku::parse("ÄBC").is_err());
    assert!(Sku::parse("a/b").is_err());
}

#[test]
fn quantities_are_between_one_and_ten_thousand() {
    assert!(Quantity::parse(0).is_err());
    assert!(Quantity::parse(-1).is_err());
    assert_eq!(Quantity::parse(1).unwrap().get(), 1);
    assert_eq!(Quantity::parse(10_000).unwrap().get(), 10_000);
    assert!(Quantity::parse(10_001).is_err());
}

#[test]
fn user_ids_are_positive() {
    assert!(UserId::parse(0).is_err());
    assert!(UserId::parse(-5).is_err());
    assert_eq!(UserId::parse(42).unwrap().get(), 42);
}

#[test]
fn ordinary_email_addresses_parse() {
    for ok in [
        "alice@example.com",
        "a.b+tag@mail.example.co.uk",
        "ops@localhost",
        "x_y-z@a-b.io",
    ] {
        assert_eq!(EmailAddress::parse(ok).unwrap().as_str(), ok);
    }
}

#[test]
fn malformed_email_addresses_are_refused() {
    for bad in [
        "",
        "alice",
        "@example.com",
        "alice@",
        "al ice@example.com",
        "alice@exa mple.com",
        ".alice@example.com",
        "al..ice@example.com",
        "alice@-example.com",
        "alice@example..com",
        "alice@example.com\r\nBcc: x@y.z",
        "\"quoted\"@example.com",
    ] {
        assert!(EmailAddress::parse(bad).is_err(), "{bad:?} was accepted");
    }
    assert!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
}

#[test]
fn e164_numbers_of_8_to_15_digits_parse() {
    for ok in [
        "+14155550100",
        "+442079460958",
        "+4930123456",
        "+12345678",
        "+123456789012345",
    ] {
        assert_eq!(PhoneNumber::parse(ok).unwrap().as_str(), ok);
    }
}

#[test]
fn numbers_not_in_e164_form_are_refused_saying_why() {
    for (bad, why) in [
        ("", "must be an E.164 number"),
        ("14155550100", "must be an E.164 number"),
        ("004915112345678", "must be an E.164 number"),
        ("+", "must have 8 to 15 digits after the +, got 0"),
        ("+1234567", "must have 8 to 15 digits after the +, got 7"),
        (
            "+1234567890123456",
            "must have 8 to 15 digits after the +, got 16",
        ),
        ("+0123456789", "must not have 0 as its first digit"),
        ("+1 415 555 0100", "found ' '"),
        ("+1-415-555-0100", "found '-'"),
        ("+1(415)5550100", "found '('"),
        ("+14155550100\n", "found '\\n'"),
        ("+١٤١٥٥٥٥٠١٠٠", "found '١'"),
    ] {
        let refused = PhoneNumber::parse(bad).unwrap_err();
        assert!(refused.contains(why), "{bad:?}: {refused}");
    }
    let long = format!("+{}", "9".repeat(100));
    let refused = PhoneNumber::parse(&long).unwrap_err();
    assert!(refused.len() < 120, "a long value is cut: {refused}");
}

#[test]
fn webhook_urls_are_absolute_http_without_credentials() {
    assert!(WebhookUrl::parse("https://hooks.example.com/openorder").is_ok());
    assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook?x=1").is_ok());
    for bad in [
        "",
        "hooks.example.com/x",
        "ftp://example.com/x",
        "https://user:pw@example.com/x",
        "https://example.com/x#frag",
        "mailto:alice@example.com",
    ] {
        assert!(WebhookUrl::parse(bad).is_err(), "{bad:?} was accepted");
    }
    assert!(WebhookUrl::parse(&format!("https://e.com/{}", "a".repeat(2048))).is_err());
}

#[test]
fn a_webhook_url_on_port_0_is_refused() {
    for bad in ["http://hooks.example.com:0/x", "https://93.184.215.14:00/"] {
        let refused = WebhookUrl::parse(bad).unwrap_err();
        assert!(refused.contains("port from 1 to 65535"), "{bad}: {refused}");
    }
    assert!(WebhookUrl::parse("http://hooks.example.com:1/x").is_ok());
    assert!(WebhookUrl::parse("https://hooks.example.com:65535/x").is_ok());
}
