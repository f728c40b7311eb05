//! Where a customer may be told about an order: an e-mail address, a phone number for SMS
//! and a webhook URL, each with the contract's rules.

use super::{length_within, shown};

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
