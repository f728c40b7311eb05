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

/// A browser's Web Push subscription, as `PushSubscription.toJSON()` gives it: where to
/// post (RFC 8030's push resource) and the keys to encrypt for (RFC 8291).
///
/// - `endpoint`: an `https` URL with a host, not on port 0, without credentials or
///   fragment, at most 2,048 characters, and where the destination rules let requests go
///   (a push endpoint is a request the service makes on a customer's behalf, as a webhook
///   is). `http` only to a loopback host those rules open (a push service on this machine:
///   tests, development).
/// - `keys.p256dh`: base64url of the subscriber's P-256 public key, an uncompressed point
///   (65 bytes, the first 0x04). (That it is on the curve is checked where the curve is
///   known: notification-service.)
/// - `keys.auth`: base64url of the subscriber's 16-byte authentication secret.
///
/// Base64url is taken with or without `=` padding and kept without. `Debug` leaves the
/// authentication secret out.
#[derive(Clone, PartialEq, Eq)]
pub struct PushSubscription {
    endpoint: url::Url,
    p256dh: Vec<u8>,
    auth: Vec<u8>,
}

impl PushSubscription {
    /// Longest endpoint taken (push services' URLs are a few hundred characters).
    pub const MAX_ENDPOINT_LEN: usize = 2048;
    /// Bytes of `keys.p256dh`: an uncompressed P-256 point.
    pub const P256DH_BYTES: usize = 65;
    /// Bytes of `keys.auth`.
    pub const AUTH_BYTES: usize = 16;

    /// A subscription whose fields are all present and valid, or each bad one by its JSON
    /// pointer in the subscription object (`/endpoint`, `/keys/p256dh`, `/keys/auth`) with
    /// what is wrong with it.
    pub fn checked(
        endpoint: Option<&str>,
        p256dh: Option<&str>,
        auth: Option<&str>,
        destinations: &crate::destinations::Destinations,
    ) -> Result<Self, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let required = "is required (as PushSubscription.toJSON() gives it)".to_string();
        let endpoint = match endpoint {
            None => {
                errors.push(("/endpoint", required.clone()));
                None
            }
            Some(e) => match push_endpoint(e, destinations) {
                Ok(url) => Some(url),
                Err(m) => {
                    errors.push(("/endpoint", m));
                    None
                }
            },
        };
        let p256dh = match p256dh {
            None => {
                errors.push(("/keys/p256dh", required.clone()));
                None
            }
            Some(k) => match base64url(k, Self::P256DH_BYTES) {
                Ok(bytes) if bytes[0] == 0x04 => Some(bytes),
                Ok(_) => {
                    errors.push((
                        "/keys/p256dh",
                        "must be an uncompressed P-256 point (its first byte 0x04)".into(),
                    ));
                    None
                }
                Err(m) => {
                    errors.push(("/keys/p256dh", m));
                    None
                }
            },
        };
        let auth = match auth {
            None => {
                errors.push(("/keys/auth", required));
                None
            }
            Some(a) => match base64url(a, Self::AUTH_BYTES) {
                Ok(bytes) => Some(bytes),
                Err(m) => {
                    errors.push(("/keys/auth", m));
                    None
                }
            },
        };
        match (endpoint, p256dh, auth) {
            (Some(endpoint), Some(p256dh), Some(auth)) if errors.is_empty() => Ok(Self {
                endpoint,
                p256dh,
                auth,
            }),
            _ => Err(errors),
        }
    }

    pub fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    /// The subscriber's public key: an uncompressed P-256 point (65 bytes).
    pub fn p256dh(&self) -> &[u8] {
        &self.p256dh
    }

    /// The subscriber's authentication secret (16 bytes).
    pub fn auth(&self) -> &[u8] {
        &self.auth
    }

    /// `keys.p256dh` as kept: base64url without padding.
    pub fn p256dh_base64url(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.p256dh)
    }

    /// `keys.auth` as kept: base64url without padding.
    pub fn auth_base64url(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.auth)
    }
}

impl fmt::Debug for PushSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushSubscription")
            .field("endpoint", &self.endpoint.as_str())
            .field("p256dh", &self.p256dh_base64url())
            .field("auth", &"<secret>")
            .finish()
    }
}

/// Checks a push endpoint (see [`PushSubscription`]): the URL, or what is wrong with it.
pub fn push_endpoint(
    s: &str,
    destinations: &crate::destinations::Destinations,
) -> Result<url::Url, String> {
    if s.len() > PushSubscription::MAX_ENDPOINT_LEN {
        return Err(format!(
            "must be at most {} characters, got {}",
            PushSubscription::MAX_ENDPOINT_LEN,
            s.len()
        ));
    }
    let url = url::Url::parse(s).map_err(|e| format!("is not a URL ({e}): {}", shown(s)))?;
    let Some(host) = url.host() else {
        return Err(format!("must name a host, got {}", shown(s)));
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("must name a host, got {}", shown(s)));
    }
    if url.port() == Some(0) {
        return Err(format!(
            "must name a port from 1 to 65535, got 0: {}",
            shown(s)
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; pushes are signed (VAPID) instead".into());
    }
    if url.fragment().is_some() {
        return Err(format!("must not have a #fragment, got {}", shown(s)));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(
                "must use https (http only to a push service on loopback, where the destination rules open it)"
                    .into(),
            )
        }
        other => return Err(format!("must use https, got {other:?}")),
    }
    destinations.check_host(&host)?;
    Ok(url)
}

/// Whether `host` is this machine: a loopback address or `localhost`.
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => {
            crate::destinations::internal_name(name) == Some("loopback (localhost)")
        }
    }
}

/// `s` as base64url (with or without `=` padding) of exactly `bytes` bytes.
fn base64url(s: &str, bytes: usize) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let longest = bytes.div_ceil(3) * 4;
    if s.len() > longest {
        return Err(format!(
            "must be base64url of {bytes} bytes (at most {longest} characters), got {} characters",
            s.chars().count()
        ));
    }
    let unpadded = s.trim_end_matches('=');
    if s.len() - unpadded.len() > 2 {
        return Err(format!(
            "must be base64url of {bytes} bytes, got {}",
            shown(s)
        ));
    }
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(unpadded)
        .map_err(|_| {
            format!(
                "must be base64url (A-Z, a-z, 0-9, '-' and '_') of {bytes} bytes, got {}",
                shown(s)
            )
        })?;
    if decoded.len() != bytes {
        return Err(format!(
            "must be base64url of {bytes} bytes, got {} bytes",
            decoded.len()
        ));
    }
    Ok(decoded)
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

    /// A subscription as a browser gives it (the keys of RFC 8291's example).
    const P256DH: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    fn subscription(
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        destinations: &crate::destinations::Destinations,
    ) -> Result<PushSubscription, Vec<(&'static str, String)>> {
        PushSubscription::checked(Some(endpoint), Some(p256dh), Some(auth), destinations)
    }

    #[test]
    fn a_browsers_push_subscription_parses_and_keeps_its_keys_unpadded() {
        let public = crate::destinations::Destinations::public_only();
        let s = subscription(
            "https://fcm.googleapis.com/fcm/send/dZ7x:APA91b",
            P256DH,
            AUTH,
            &public,
        )
        .unwrap();
        assert_eq!(s.p256dh().len(), 65);
        assert_eq!(s.auth().len(), 16);
        assert_eq!(s.p256dh_base64url(), P256DH);
        assert_eq!(s.auth_base64url(), AUTH);
        // Padded base64url is the same keys.
        let padded = subscription(
            "https://updates.push.services.mozilla.com/wpush/v2/gAAAAA",
            &format!("{P256DH}="),
            &format!("{AUTH}=="),
            &public,
        )
        .unwrap();
        assert_eq!(padded.auth_base64url(), AUTH);
        assert!(!format!("{s:?}").contains(AUTH), "Debug hides the secret");
    }

    #[test]
    fn bad_push_subscriptions_are_refused_naming_each_field() {
        let public = crate::destinations::Destinations::public_only();
        let fields = |r: Result<PushSubscription, Vec<(&'static str, String)>>| {
            r.unwrap_err()
                .into_iter()
                .map(|(f, _)| f)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(PushSubscription::checked(None, None, None, &public)),
            ["/endpoint", "/keys/p256dh", "/keys/auth"]
        );
        for endpoint in [
            "http://push.example.com/x",
            "ftp://push.example.com/x",
            "https://user:pw@push.example.com/x",
            "https://push.example.com/x#f",
            "https://push.example.com:0/x",
            "https://10.0.0.1/x",
            "https://169.254.169.254/x",
            "https://localhost/x",
            "http://127.0.0.1:8080/x",
            "not a url",
        ] {
            assert_eq!(
                fields(subscription(endpoint, P256DH, AUTH, &public)),
                ["/endpoint"],
                "{endpoint}"
            );
        }
        let long = format!("https://push.example.com/{}", "a".repeat(2048));
        assert_eq!(
            fields(subscription(&long, P256DH, AUTH, &public)),
            ["/endpoint"]
        );
        let endpoint = "https://push.example.com/x";
        // Standard base64, not an uncompressed point, the wrong length, not base64 at all.
        let not_uncompressed = {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut point = b64.decode(P256DH).unwrap();
            point[0] = 0x02;
            b64.encode(point)
        };
        for p256dh in [
            P256DH.replace('-', "+").replace('_', "/"),
            not_uncompressed,
            P256DH[..80].to_string(),
            "not base64!".to_string(),
            format!("{P256DH}AAAA"),
        ] {
            assert_eq!(
                fields(subscription(endpoint, &p256dh, AUTH, &public)),
                ["/keys/p256dh"],
                "{p256dh}"
            );
        }
        for auth in [
            "",
            "BTBZMqHH6r4Tts7J_aSI",
            "BTBZMqHH6r4Tts7J_aSIggAA",
            "BTBZ====",
        ] {
            assert_eq!(
                fields(subscription(endpoint, P256DH, auth, &public)),
                ["/keys/auth"],
                "{auth}"
            );
        }
    }

    #[test]
    fn a_push_service_on_loopback_is_taken_over_http_only_where_loopback_is_opened() {
        let opened =
            crate::destinations::Destinations::allowing(vec![crate::destinations::Network::parse(
                "127.0.0.0/8",
            )
            .unwrap()]);
        assert!(subscription("http://127.0.0.1:8080/push/1", P256DH, AUTH, &opened).is_ok());
        assert!(subscription("https://127.0.0.1:8443/push/1", P256DH, AUTH, &opened).is_ok());
        // Opened or not, http goes nowhere else.
        assert!(subscription("http://10.0.0.1/push/1", P256DH, AUTH, &opened).is_err());
        assert!(subscription("http://push.example.com/1", P256DH, AUTH, &opened).is_err());
    }
}
