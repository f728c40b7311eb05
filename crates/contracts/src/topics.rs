//! Topic names, and the map of who writes and reads each topic ([`MAP`]): the arrows of
//! the README's diagram as data. Each service creates the topics the map gives it
//! ([`topics_of`]) and consumes only what the map says it consumes ([`consumes`]); a test
//! checks the book's topic table (docs/book/src/concepts/architecture.md) against the map.
//!
//! The names themselves are fixed by the contract (they are the seed's); a deployment may
//! put a prefix in front of all of them so that several OpenOrder installations (or test
//! runs) can share one cluster without seeing each other.

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
/// Suffix of every parking-lot topic: `<topic>.PARKED`, where a record goes that failed
/// again after it was replayed from a dead-letter topic (it carries an
/// `openorder-replay-count` above 0), instead of its DLT: it is not replayed in a loop,
/// and the DLT's readers (order-service, notification-service) do not act on it twice.
pub const PARKED_SUFFIX: &str = ".PARKED";

/// `order.created.DLT`: orders a consumer of `order.created` gave up on.
pub const ORDER_CREATED_DLT: &str = "order.created.DLT";

/// inventory-service's consumer group (behind the prefix): of the dead letters on
/// `order.created`, its own, and only its, make an order FAILED.
pub const INVENTORY_GROUP: &str = "inventory-service";

/// An OpenOrder service: a box of the diagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Order,
    Inventory,
    Notification,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Order, Service::Inventory, Service::Notification];

    /// `order-service`, `inventory-service`, `notification-service`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Order => "order-service",
            Service::Inventory => "inventory-service",
            Service::Notification => "notification-service",
        }
    }
}

/// Who writes a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// A service, through its transactional outbox.
    Outbox(Service),
    /// The consumers of the topic this one is the dead-letter topic of, each record
    /// under the group that gave up on it.
    DeadLetters,
}

/// One arrow of the diagram: a topic, what it carries, who writes it and who reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The topic's name without prefix; for events also their `event-type`.
    pub topic: &'static str,
    /// What a record's value is: an event type of [`crate::events`], or for a dead-letter
    /// topic the original record.
    pub event: &'static str,
    /// What a record's key is.
    pub key: &'static str,
    pub writer: Writer,
    pub readers: &'static [Service],
}

/// Every topic OpenOrder's services read or write. Every consumer of a topic may also
/// write its dead-letter topic `<topic>.DLT` ([`dead_letter_topics_of`]); those not read
/// by anyone are not listed here.
pub const MAP: &[Flow] = &[
    Flow {
        topic: ORDER_CREATED,
        event: "OrderCreated",
        key: "orderId",
        writer: Writer::Outbox(Service::Order),
        readers: &[Service::Inventory, Service::Notification],
    },
    Flow {
        topic: INVENTORY_RESERVED,
        event: "InventoryReserved",
        key: "orderId",
        writer: Writer::Outbox(Service::Inventory),
        readers: &[Service::Order, Service::Notification],
    },
    Flow {
        topic: INVENTORY_REJECTED,
        event: "InventoryRejected",
        key: "orderId",
        writer: Writer::Outbox(Service::Inventory),
        readers: &[Service::Order, Service::Notification],
    },
    Flow {
        topic: ORDER_CANCELLED,
        event: "OrderCancelled",
        key: "orderId",
        writer: Writer::Outbox(Service::Order),
        readers: &[Service::Inventory],
    },
    Flow {
        topic: INVENTORY_RELEASED,
        event: "InventoryReleased",
        key: "orderId",
        writer: Writer::Outbox(Service::Inventory),
        readers: &[Service::Order, Service::Notification],
    },
    Flow {
        topic: ORDER_CREATED_DLT,
        event: "the original OrderCreated record",
        key: "the original's",
        writer: Writer::DeadLetters,
        readers: &[Service::Order, Service::Notification],
    },
    Flow {
        topic: NOTIFICATION_FAILED,
        event: "NotificationFailed",
        key: "orderId",
        writer: Writer::Outbox(Service::Notification),
        readers: &[],
    },
];

/// The map's entry for `topic` (without prefix).
pub fn flow(topic: &str) -> Option<&'static Flow> {
    MAP.iter().find(|f| f.topic == topic)
}

/// Does `service` consume `topic` (without prefix)?
pub fn consumes(service: Service, topic: &str) -> bool {
    flow(topic).is_some_and(|f| f.readers.contains(&service))
}

/// Who writes `topic`'s records: a service, or for a dead-letter topic the readers of
/// the original topic.
pub fn writers_of(flow: &Flow) -> Vec<Service> {
    match flow.writer {
        Writer::Outbox(service) => vec![service],
        Writer::DeadLetters => flow
            .topic
            .strip_suffix(DLT_SUFFIX)
            .and_then(self::flow)
            .map(|original| original.readers.to_vec())
            .unwrap_or_default(),
    }
}

/// The dead-letter topics `service` may write: one per topic it consumes, except
/// dead-letter topics themselves.
pub fn dead_letter_topics_of(service: Service) -> Vec<String> {
    MAP.iter()
        .filter(|f| f.readers.contains(&service) && f.writer != Writer::DeadLetters)
        .map(|f| format!("{}{DLT_SUFFIX}", f.topic))
        .collect()
}

/// The parking-lot topics `service` may write: one per topic it consumes, except
/// dead-letter topics (as [`dead_letter_topics_of`]).
pub fn parked_topics_of(service: Service) -> Vec<String> {
    MAP.iter()
        .filter(|f| f.readers.contains(&service) && f.writer != Writer::DeadLetters)
        .map(|f| format!("{}{PARKED_SUFFIX}", f.topic))
        .collect()
}

/// Every topic `service` writes or reads (without prefix), in map order, then the
/// dead-letter topics it may write, then its parking-lot topics: what it creates at start.
pub fn topics_of(service: Service) -> Vec<String> {
    let mut topics: Vec<String> = MAP
        .iter()
        .filter(|f| writers_of(f).contains(&service) || f.readers.contains(&service))
        .map(|f| f.topic.to_string())
        .collect();
    for dlt in dead_letter_topics_of(service)
        .into_iter()
        .chain(parked_topics_of(service))
    {
        if !topics.contains(&dlt) {
            topics.push(dlt);
        }
    }
    topics
}

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

    /// `topic` (a contract name) behind this deployment's prefix.
    pub fn name(&self, topic: &str) -> String {
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

    /// The parking-lot topic of `topic` (already prefixed): `<topic>.PARKED`.
    pub fn parked_of(topic: &str) -> String {
        format!("{topic}{PARKED_SUFFIX}")
    }

    /// Where a record of `topic` (already prefixed) goes when its consumer gives up on
    /// it: its parking lot when it was replayed before (`replay_count` above 0), else
    /// its DLT. A record of a dead-letter or parking-lot topic itself goes to that
    /// topic's DLT, as always.
    pub fn dead_letter_topic_for(topic: &str, replay_count: u32) -> String {
        let of_dead_letters = topic.ends_with(DLT_SUFFIX) || topic.ends_with(PARKED_SUFFIX);
        if replay_count > 0 && !of_dead_letters {
            Self::parked_of(topic)
        } else {
            Self::dlt_of(topic)
        }
    }

    /// `order.created.DLT`: where inventory-service puts orders it could not process.
    pub fn order_created_dlt(&self) -> String {
        self.name(ORDER_CREATED_DLT)
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
        self.family_pattern("inventory.")
    }

    /// librdkafka subscription pattern for every topic `<family><name>` (say
    /// `inventory.reserved` for `inventory.`), but none of their `.DLT` topics.
    pub fn family_pattern(&self, family: &str) -> String {
        format!(
            "^{}{}[A-Za-z0-9_-]+$",
            escape_regex(&self.prefix),
            escape_regex(family)
        )
    }

    /// Every topic `service` writes or reads, behind the prefix ([`topics_of`]).
    pub fn of_service(&self, service: Service) -> Vec<String> {
        topics_of(service).iter().map(|t| self.name(t)).collect()
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
mod tests;
