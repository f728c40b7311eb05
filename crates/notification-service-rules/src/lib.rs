//! notification-service's rules: what a notice says, and where and when it goes, decided
//! before anything is sent and with no database or network. The service routes each notice
//! by them (`notification_service::notices`) and its dispatcher sends what they decided
//! (`notification_service::delivery`).
//!
//! - [`templates`]: subject, text and HTML per kind of notification (the built-in ones in
//!   `templates/`, replaced by same-named files of `--templates-dir`).
//! - [`digest`]: the notices of one digest window as one message, and the digest's key.
//! - [`keys`]: the idempotency keys of deliveries, the same on every attempt.
//! - [`preferences`]: the channels a user wants per kind of notification, and their timing
//!   settings (time zone, quiet hours, critical kinds, digest window).
//! - [`schedule`]: those settings turned into when a notice goes, and the [`schedule::Clock`]
//!   the service reads the time from.

pub mod digest;
pub mod keys;
pub mod preferences;
pub mod schedule;
pub mod templates;
