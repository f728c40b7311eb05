//! Value types with the contract's rules, parsed once at the edge (parse, don't validate).
//! order-service parses HTTP requests into them; inventory-service parses records into them.
//!
//! Layout: the order's values here; a customer's contact points in `contact` (e-mail
//! address, phone number, webhook URL); a browser's push subscription in `push`.

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

/// `s` quoted for a message, cut after 32 characters (a refused value may be long).
fn shown(s: &str) -> String {
    match s.char_indices().nth(32) {
        Some((at, _)) => format!("{:?}…", &s[..at]),
        None => format!("{s:?}"),
    }
}

mod contact;
mod push;

pub use contact::{EmailAddress, PhoneNumber, WebhookUrl};
pub use push::{push_endpoint, PushSubscription};

#[cfg(test)]
mod tests;
