//! A service's life, the top layer (it uses every crate below it):
//!
//! - [`service`]: the start-up and ordered shutdown every service shares.
//! - [`starting`]: the port answering, and each dependency awaited, while a service starts.
//! - [`status`]: consumer lag and outbox backlog (`GET /admin/status`).
//! - [`gauges`]: the same, and readiness, as gauges on `/metrics`, set every 5 s.
//! - [`shutdown`]: signals to a cancellation token, and the stop's time bound.
//! - [`fd_limit`]: the open-files limit raised to what the system allows, at start.
//! - [`config`]: the flags a service takes beside those of its layers.

pub mod config;
pub mod fd_limit;
pub mod gauges;
pub mod service;
pub mod shutdown;
pub mod starting;
pub mod status;
