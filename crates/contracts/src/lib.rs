//! OpenOrder's wire contract, shared by every service and by nothing else.
//!
//! Services talk only through Kafka, so this crate is the one place that says what goes
//! over the wire: topic names ([`topics`]), record headers ([`headers`]) and the JSON
//! events themselves ([`events`]). Golden files under `tests/golden/` pin the exact JSON;
//! `schemas/` holds a JSON Schema per event for tools in other languages.
//!
//! Layout:
//! - [`api`]: the services' HTTP answers another crate reads (the console), each service
//!   re-exporting its own.
//! - [`topics`]: topic names, the optional per-deployment prefix, DLT naming, and [`topics::MAP`]:
//!   who writes and who reads each topic (the diagram's arrows as data).
//! - [`headers`]: header names on every event and on dead letters (Spring Kafka's names).
//! - [`events`]: the event payloads, camelCase JSON, each with `eventId`, `orderId` and a timestamp.
//! - [`asyncapi`]: the AsyncAPI 3.0 document of the topics, generated from the above.
//! - [`destinations`]: where a webhook may point (public addresses, and networks opened).
//! - [`schemas`]: each event's JSON Schema by topic, and the check of a value against it
//!   (an edited dead letter's, before it is replayed).
//! - [`lifecycle`]: the order's states and the one table of the moves between them, which
//!   order-service applies; the book's diagram and the console's picture are made from it.
//! - [`values`]: SKU, quantity, user id, e-mail address, webhook URL and push subscription
//!   with the contract's rules, parsed at every edge.
//! - [`html`]: text escaped for HTML and SVG (the lifecycle picture, notification digests).

pub mod api;
pub mod asyncapi;
pub mod destinations;
pub mod events;
pub mod headers;
pub mod html;
pub mod lifecycle;
pub mod schemas;
pub mod topics;
pub mod values;

pub use events::{
    new_event_id, AnyEvent, Contact, Event, InventoryRejected, InventoryReleased,
    InventoryReserved, LineItem, NotificationFailed, OrderCancelled, OrderCreated, RejectionReason,
    Shortage,
};
pub use topics::{Service, Topics};
