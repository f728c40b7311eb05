//! notification-service's channels: where notifications go, and how each is sent. The
//! senders only: which notices go where and when, and the queue of deliveries, are the
//! service's (`notification_service::notices`, `notification_service::delivery`). The only
//! tables used here are push's own ([`push::subscriptions`]: the browsers' subscriptions
//! and the VAPID key).
//!
//! Every channel implements [`Channel`]; the dispatcher hands it one [`Outgoing`] message at
//! a time and learns from [`SendError`] whether to try again.
//!
//! - [`log`]: writes the message to the service log (always on; the default).
//! - [`email`]: SMTP via lettre (plain, STARTTLS or TLS; optional credentials).
//! - [`webhook`]: an HTTP POST of a JSON body signed per the Standard Webhooks spec.
//! - [`sms`]: a text message through a provider with Twilio's Messages API, with
//!   delivery receipts by signed status callback.
//! - [`push`]: Web Push to the browsers a user subscribed (RFC 8030, encrypted per RFC 8291,
//!   signed with VAPID per RFC 8292), one delivery per subscription.
//!
//! A new provider is a new implementation of [`Channel`] plus a line in
//! [`Channels::recipients`] and [`Channels::get`]; or, without code, a webhook receiver that
//! forwards to the provider.

pub mod email;
pub mod log;
pub mod push;
pub mod sms;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use contracts::Contact;

/// What kind of failure a request to a provider met, for the stored error: never the URL
/// (it may carry a token) nor the text of whatever answered.
pub(crate) fn failure_kind(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_request() {
        "request failed"
    } else {
        "failed"
    }
}

/// One message to send on one channel, as recorded: a resend is the same message.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub delivery_id: i64,
    pub order_id: i64,
    pub channel: String,
    pub recipient: String,
    /// Stable across attempts: the e-mail Message-ID and the webhook `Idempotency-Key`.
    pub idempotency_key: String,
    pub kind: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The webhook body (JSON), rendered when the notification was recorded.
    pub payload: String,
    /// The trace context the notification was recorded in (JSON, or empty).
    pub trace: String,
    /// When the notification was recorded (the e-mail's Date).
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Why a send did not succeed, and whether trying again may help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Network trouble, a timeout, a 5xx/429 answer, an SMTP 4xx: try again later.
    #[error("{0}")]
    Transient(String),
    /// The receiver asked to be tried again no sooner than this (a 429 with
    /// `Retry-After`): the dispatcher waits that long instead of its backoff (at most
    /// `--notify-backoff-max-ms`).
    #[error("{0}")]
    Later(String, Duration),
    /// The receiver refused this message for good (an HTTP 4xx, an SMTP 5xx).
    #[error("{0}")]
    Permanent(String),
}

/// What a channel learnt from a receiver that accepted a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// The receiver's own id of the message (an SMS provider's message SID), if it gave one.
    pub provider_id: Option<String>,
    /// The receiver reports later whether the message reached the person (an SMS status
    /// callback): the delivery is `SENT` until it does. Otherwise accepted is delivered.
    pub awaiting_receipt: bool,
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Sent, SendError>> + Send + 'a>>;

/// A way to reach a customer.
pub trait Channel: Send + Sync {
    /// The name stored with each delivery (`log`, `email`, `webhook`, `sms`, `push`).
    fn name(&self) -> &'static str;
    /// Sends one message; returns when the receiver has accepted it (or refused it).
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a>;
}

/// The channels this instance is configured with.
pub struct Channels {
    pub log: log::LogChannel,
    pub email: Option<email::EmailChannel>,
    pub webhook: Option<webhook::WebhookChannel>,
    pub sms: Option<sms::SmsChannel>,
    pub push: Option<push::PushChannel>,
}

impl Channels {
    /// The channel named `name`, if configured here.
    pub fn get(&self, name: &str) -> Option<&dyn Channel> {
        match name {
            log::LogChannel::NAME => Some(&self.log),
            "email" => self.email.as_ref().map(|c| c as &dyn Channel),
            "webhook" => self.webhook.as_ref().map(|c| c as &dyn Channel),
            sms::NAME => self.sms.as_ref().map(|c| c as &dyn Channel),
            push::NAME => self.push.as_ref().map(|c| c as &dyn Channel),
            _ => None,
        }
    }

    /// Where a notification for `user_id` goes: the log always; e-mail, webhook and SMS
    /// when configured and an address (a number) is known. The order's own contact wins
    /// over the user's registered defaults, field by field. Push, when configured, to each
    /// of the user's `push_subscriptions` (their ids, newest first). (The user's preferences
    /// may leave some out: `notification_service::preferences`.)
    pub fn recipients(
        &self,
        user_id: i64,
        order: &Contact,
        defaults: Option<&Contact>,
        push_subscriptions: &[i64],
    ) -> Vec<(&'static str, String)> {
        let pick = |own: &Option<String>, default: Option<&Option<String>>| {
            own.clone().or_else(|| default.cloned().flatten())
        };
        let mut out = vec![(log::LogChannel::NAME, format!("user:{user_id}"))];
        if self.email.is_some() {
            if let Some(email) = pick(&order.email, defaults.map(|d| &d.email)) {
                out.push(("email", email));
            }
        }
        if self.webhook.is_some() {
            if let Some(url) = pick(&order.webhook_url, defaults.map(|d| &d.webhook_url)) {
                out.push(("webhook", url));
            }
        }
        if self.sms.is_some() {
            if let Some(phone) = pick(&order.phone, defaults.map(|d| &d.phone)) {
                out.push((sms::NAME, phone));
            }
        }
        if self.push.is_some() {
            for id in push_subscriptions {
                out.push((push::NAME, push::recipient(*id)));
            }
        }
        out
    }
}

/// What keeps one recipient's deliveries of a notice apart on a channel, and so what its
/// idempotency keys and digest windows are made of: the channel's name; for push, where one
/// user has a delivery per subscription, the channel and the subscription (`push/<recipient>`).
pub fn lane(channel: &str, recipient: &str) -> String {
    if channel == push::NAME {
        format!("{channel}/{recipient}")
    } else {
        channel.to_string()
    }
}

/// Whether the deliveries of `channel` are told apart by recipient ([`lane`]).
pub fn per_recipient(channel: &str) -> bool {
    channel == push::NAME
}
