//! Value types with the contract's rules, parsed once at the edge (parse, don't validate).
//! order-service parses HTTP requests into them; inventory-service parses records into them.

use std::fmt;

/// A stock-keeping unit: 1–64 characters of `[A-Za-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sku(String);

impl Sku {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(format!(
                "must be 1 to {} characters, got {}",
                Self::MAX_LEN,
                s.chars().count()
            ));
        }
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
}
