//! Getting a notification to the customer, once its deliveries are queued (one per
//! channel, by [`crate::notices`]):
//! - [`dispatcher`]: claims due deliveries, sends them, records each outcome, retries with
//!   backoff, marks `FAILED` with a `notification.failed` event (its SQL is in
//!   [`crate::store`], with the rest of the service's).
//! - [`channels`] (the crate `notification-service-channels`): log, e-mail (SMTP), webhook
//!   (signed HTTP POST), SMS (a provider's HTTP API), Web Push (encrypted for each browser,
//!   VAPID-signed). The log channel is written in the transaction that queues the
//!   deliveries ([`crate::notices`]): it cannot fail, so it needs no dispatcher round.
//! - [`receipts`]: what an SMS provider reports later (delivered or not), which moves a
//!   `SENT` delivery on.
//! - [`digest`] (from `notification-service-rules`): the notices of a digest window as one
//!   message.
//! - [`fallback`]: a delivery that failed for good goes once more, on the next channel of
//!   `--notify-fallback` the user can be reached on.

pub mod dispatcher;
pub mod fallback;
pub mod receipts;

pub use notification_service_channels as channels;
pub use notification_service_rules::digest;
