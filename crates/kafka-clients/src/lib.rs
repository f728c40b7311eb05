//! How OpenOrder reaches its brokers: Kafka clients as every service configures them (from
//! [`KafkaArgs`], the flags every service's Kafka client takes; what only reaches the
//! brokers takes [`BrokerArgs`], the connection's part of them), topic creation, broker readiness and
//! the probe that watches it, and [`backoff`], the one exponential backoff every retry uses.
//! The lowest layer of messaging: it depends on `telemetry` and `store` only.
//!
//! Its parts, all re-exported here: `args` (the flags), `clients` (the settings every
//! client shares, the producer, the consumer, partitioning and assignment), `topics` (topic
//! creation and retention) and `readiness` (the start-up probe, ping, the brokers' watch).

mod args;
pub mod backoff;
mod clients;
mod readiness;
mod topics;

pub use args::*;
pub use clients::*;
pub use readiness::*;
pub use topics::*;
