//! Value types with the contract's rules, parsed once at the edge (parse, don't validate).
//! order-service parses HTTP requests into them; inventory-service parses records into them.

use std::fmt;

/// A stock-keeping unit: 1–64 characters of `[A-Za-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sku(String);

impl Sku {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, String> {
        length_within(s, Self::MAX_LEN)?;
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "may hold only A-Z, a-z, 0-9, '.', '_' and '-', found {bad:?}"
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many of one SKU an order line asks for: 1 to 10,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i64);

impl Quantity {
    pub const MAX: i64 = 10_000;

    pub fn parse(n: i64) -> Result<Self, String> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!("must be between 1 and {}, got {n}", Self::MAX))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// Largest number of lines in one order.
pub const MAX_ITEMS: usize = 100;

/// A positive user id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserId(i64);

impl UserId {
    pub fn parse(n: i64) -> Result<Self, String> {
        if n > 0 {
            Ok(Self(n))
        } else {
            Err(format!("must be a positive integer, got {n}"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// An e-mail address a notification may be sent to: `local@domain`, at most 254
/// characters, a dot-atom local part and a host name (letters, digits, `-`, dot-separated
/// labels of 1–63). Quoted local parts and address literals are refused: real mail
/// providers do not hand them out, and refusing them keeps header injection impossible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub const MAX_LEN: usize = 254;

    pub fn parse(s: &str) -> Result<Self, String> {
        length_within(s, Self::MAX_LEN)?;
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(format!("must look like name@example.com, got {s:?}"));
        };
        let atom_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
        if local.is_empty()
            || local.len() > 64
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
            || !local.chars().all(|c| c == '.' || atom_char(c))
        {
            return Err(format!(
                "the part before '@' must be 1 to 64 letters, digits, dots (not leading, trailing or doubled) or one of !#$%&'*+-/=?^_`{{|}}~, got {local:?}"
            ));
        }
        host_name(domain).map_err(|e| format!("the part after '@' {e}"))?;
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks that `s` has 1 to `max` bytes (all rules here allow only ASCII, so bytes are
/// characters; the message counts characters for the odd non-ASCII input).
fn length_within(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() || s.len() > max {
        return Err(format!(
            "must be 1 to {max} characters, got {}",
            s.chars().count()
        ));
    }
    Ok(())
}

/// Checks a DNS host name: dot-separated labels of 1–63 letters, digits and inner '-'.
fn host_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be a host name (labels of letters, digits and '-'), got {s:?}"
        ))
    }
}

/// A phone number SMS notifications may be sent to, in E.164 form: `+`, then 8 to 15
/// digits, the first not 0 (no country code starts with 0). Nothing else: no spaces, dashes,
/// brackets or trunk prefix, so that a number has one spelling, the one SMS providers take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Fewest digits after the `+`.
    pub const MIN_DIGITS: usize = 8;
    /// Most digits after the `+` (E.164's limit).
    pub const MAX_DIGITS: usize = 15;

    pub fn parse(s: &str) -> Result<Self, String> {
        let Some(digits) = s.strip_prefix('+') else {
            return Err(format!(
                "must be an E.164 number: + and then 8 to 15 digits, e.g. +14155550100; got {}",
                shown(s)
            ));
        };
        if let Some(bad) = digits.chars().find(|c| !c.is_ascii_digit()) {
            return Err(format!(
                "may hold only digits after the + (no spaces, dashes or brackets), found {bad:?} in {}",
                shown(s)
            ));
        }
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits.len()) {
            return Err(format!(
                "must have {} to {} digits after the +, got {} in {}",
                Self::MIN_DIGITS,
                Self::MAX_DIGITS,
                digits.len(),
                shown(s)
            ));
        }
        if digits.starts_with('0') {
            return Err(format!(
                "must not have 0 as its first digit (a country code never starts with 0), got {}",
                shown(s)
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `s` quoted for a message, cut after 32 characters (a refused value may be long).
fn shown(s: &str) -> String {
    match s.char_indices().nth(32) {
        Some((at, _)) => format!("{:?}…", &s[..at]),
        None => format!("{s:?}"),
    }
}

/// Where webhook notifications are POSTed: an absolute `http` or `https` URL with a host,
/// not on port 0, without credentials or fragment, at most 2,048 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub const MAX_LEN: usize = 2048;

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > Self::MAX_LEN {
            return Err(format!(
                "must be at most {} characters, got {}",
                Self::MAX_LEN,
                s.len()
            ));
        }
        let url = url::Url::parse(s).map_err(|e| format!("is not a URL ({e}): {s:?}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("must use http or https, got {:?}", url.scheme()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("must name a host, got {s:?}"));
        }
        // Port 0 is no port a receiver listens on: every attempt would fail to connect.
        if url.port() == Some(0) {
            return Err(format!("must name a port from 1 to 65535, got 0: {s:?}"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials; webhooks are signed instead".into());
        }
        if url.fragment().is_some() {
            return Err(format!("must not have a #fragment, got {s:?}"));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

#[cfg(test)]
mod tests {
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
}
