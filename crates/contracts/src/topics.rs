//! Topic names. The names themselves are fixed by the contract (they are the seed's);
//! a deployment may put a prefix in front of all of them so that several OpenOrder
//! installations (or test runs) can share one cluster without seeing each other.

/// `order.created`: an order was accepted (produced by order-service).
pub const ORDER_CREATED: &str = "order.created";
/// `inventory.reserved`: stock for every item of an order was reserved.
pub const INVENTORY_RESERVED: &str = "inventory.reserved";
/// `inventory.rejected`: the order could not be reserved, with shortages.
pub const INVENTORY_REJECTED: &str = "inventory.rejected";
/// `order.cancelled`: a customer cancelled an order (produced by order-service).
pub const ORDER_CANCELLED: &str = "order.cancelled";
/// `inventory.released`: a cancelled order's reservation was given back.
pub const INVENTORY_RELEASED: &str = "inventory.released";
/// `notification.failed`: a notification could not be delivered on a channel.
pub const NOTIFICATION_FAILED: &str = "notification.failed";
/// Suffix of every dead-letter topic: `<topic>.DLT`.
pub const DLT_SUFFIX: &str = ".DLT";

/// The topic names of one deployment: the contract's names behind an optional prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Topics behind `prefix` (empty for the contract's plain names).
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix in front of every topic and consumer group name.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `topic` without this deployment's prefix: the contract's name (the event type).
    pub fn unprefixed<'a>(&self, topic: &'a str) -> &'a str {
        topic.strip_prefix(self.prefix.as_str()).unwrap_or(topic)
    }

    fn name(&self, topic: &str) -> String {
        format!("{}{}", self.prefix, topic)
    }

    pub fn order_created(&self) -> String {
        self.name(ORDER_CREATED)
    }

    pub fn inventory_reserved(&self) -> String {
        self.name(INVENTORY_RESERVED)
    }

    pub fn inventory_rejected(&self) -> String {
        self.name(INVENTORY_REJECTED)
    }

    pub fn order_cancelled(&self) -> String {
        self.name(ORDER_CANCELLED)
    }

    pub fn inventory_released(&self) -> String {
        self.name(INVENTORY_RELEASED)
    }

    pub fn notification_failed(&self) -> String {
        self.name(NOTIFICATION_FAILED)
    }

    /// The dead-letter topic of `topic` (already prefixed): `<topic>.DLT`.
    pub fn dlt_of(topic: &str) -> String {
        format!("{topic}{DLT_SUFFIX}")
    }

    /// `order.created.DLT`: where inventory-service puts orders it could not process.
    pub fn order_created_dlt(&self) -> String {
        Self::dlt_of(&self.order_created())
    }

    /// Every inventory event topic (what notification-service's pattern matches today).
    pub fn inventory_topics(&self) -> Vec<String> {
        vec![
            self.inventory_reserved(),
            self.inventory_rejected(),
            self.inventory_released(),
        ]
    }

    /// librdkafka subscription pattern for every `inventory.<event>` topic. It matches
    /// `inventory.reserved` but not `inventory.reserved.DLT`: a dead-letter topic holds
    /// records that already failed, and notifying from them would notify twice.
    pub fn inventory_pattern(&self) -> String {
        format!("^{}inventory\\.[A-Za-z0-9_-]+$", escape_regex(&self.prefix))
    }

    /// A consumer group name behind this deployment's prefix.
    pub fn group(&self, group: &str) -> String {
        self.name(group)
    }
}

fn escape_regex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' && c != '-' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_topics_are_the_seeds_names() {
        let t = Topics::default();
        assert_eq!(t.order_created(), "order.created");
        assert_eq!(t.inventory_reserved(), "inventory.reserved");
        assert_eq!(t.inventory_rejected(), "inventory.rejected");
        assert_eq!(t.order_created_dlt(), "order.created.DLT");
    }

    #[test]
    fn a_prefix_goes_in_front_of_topics_and_groups() {
        let t = Topics::with_prefix("t1.");
        assert_eq!(t.order_created_dlt(), "t1.order.created.DLT");
        assert_eq!(t.group("inventory-service"), "t1.inventory-service");
        assert_eq!(t.unprefixed("t1.inventory.reserved"), "inventory.reserved");
        assert_eq!(t.inventory_pattern(), "^t1\\.inventory\\.[A-Za-z0-9_-]+$");
    }
}
