//! Records in and out, above `kafka-clients` and `store`, in the order a record travels:
//!
//! - [`record`]: a Kafka record as the code sees it (headers, order id, JSON value, the
//!   fingerprint of its value), and the contract's key rule (keyed by its event's `orderId`).
//! - [`router`]: the [`router::Handler`] the consumer loop calls, and the [`router::Router`]
//!   every service builds: event type → decoder and handler, each record decoded once.
//! - [`consumer`]: the at-least-once consumer loop: batches, retry, dead-letter, commit after effect.
//! - [`lanes`]: which keys wait on a failing record, and how far each partition's offset may be stored.
//! - [`stalls`]: the keys a consumer waits on, and which of them are stalled.
//! - [`dead_letters`]: writing a dead letter (reading, listing and replaying them is the
//!   `dead-letters` crate, above this one).
//! - [`relay`]: the outbox relay, which publishes what services wrote to their outbox.
//! - `spans`: what every messaging span (the router's `process`, the relay's `send`) says
//!   of itself.

pub mod consumer;
pub mod dead_letters;
pub mod lanes;
pub mod record;
pub mod relay;
pub mod router;
mod spans;
pub mod stalls;
