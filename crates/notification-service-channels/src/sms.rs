//! The SMS channel: a text message through a provider with Twilio's Messages API (Twilio
//! itself, or any provider or gateway that offers the same API):
//!
//! - `POST {--sms-base-url}/2010-04-01/Accounts/{AccountSid}/Messages.json`, a form of
//!   `To` (the contact's E.164 number), `From` (`--sms-from`), `Body` and, with
//!   `--sms-status-callback-url`, `StatusCallback`; HTTP basic authentication with the
//!   account SID and auth token; `I-Twilio-Idempotency-Token` = the delivery's idempotency
//!   key, the same on every attempt, so that a provider that honours it sends one message
//!   however often a resend reaches it.
//! - The body is the notification's plain text, cut to `--sms-max-segments` segments with an
//!   ellipsis if longer ([`segments`]); the same on every attempt.
//! - A 2xx answer (`{"sid": "SM…", "status": "queued"}`) is the message accepted: with a
//!   status callback the delivery is then `SENT` and waits for the receipt, else it is
//!   `DELIVERED`. A 429 is retried after its `Retry-After` (or the backoff without one),
//!   a 5xx or a network error after the backoff; any other answer is a permanent refusal,
//!   a 400 with error code 21211 or 21614 (not a number, or not a mobile one) named so.
//! - Delivery receipts: the provider posts the message's status (`queued`, `sent`,
//!   `delivered`, `undelivered`, `failed`) to the status callback URL, which carries the
//!   delivery's key (`?delivery=…`). Each callback is signed: `X-Twilio-Signature` =
//!   base64 of HMAC-SHA1, keyed with the auth token, over the full URL the provider called
//!   and each form field's name and value, sorted by name ([`signature`]). The public
//!   URL is configured, as the provider signs the URL it called, which a proxy in front
//!   may have rewritten. `notification_service::routes` checks the signature;
//!   `notification_service::delivery::receipts` moves the delivery.
//!
//! The auth token comes from the environment (`OPENORDER_SMS_AUTH_TOKEN`) or a file
//! (`--sms-auth-token-file`), never from a flag's value, which `ps` shows to every user of
//! the machine.
//!
//! Unlike a webhook's URL, the provider's address is the operator's setting, not a
//! customer's: it is not held to the webhook destination rules.

pub mod segments;

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use contracts::values::PhoneNumber;
use hmac::{Hmac, Mac};
use platform::kafka::Secret;
use serde::Deserialize;
use sha1::Sha1;

use super::{Channel, Outgoing, SendError, SendFuture, Sent};

/// The channel's name, stored with its deliveries.
pub const NAME: &str = "sms";

/// The environment variable of the auth token.
pub const AUTH_TOKEN_ENV: &str = "OPENORDER_SMS_AUTH_TOKEN";

/// The provider's error codes for a `To` that cannot get SMS: not a valid phone number
/// (21211), not a mobile number (21614).
pub const INVALID_NUMBER_CODES: [i64; 2] = [21211, 21614];

/// SMS settings. SMS is on when `--sms-account-sid` is set (with `--sms-from` and an auth
/// token).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "SMS")]
pub struct SmsArgs {
    /// The provider account's SID (the user name of its API); unset disables SMS.
    #[arg(long, env = "OPENORDER_SMS_ACCOUNT_SID", hide_short_help = true)]
    pub sms_account_sid: Option<String>,
    /// The auth token: from the environment only (a flag's value shows in `ps`).
    #[arg(
        long,
        env = "OPENORDER_SMS_AUTH_TOKEN",
        hide = true,
        hide_env_values = true,
        conflicts_with = "sms_auth_token_file"
    )]
    pub sms_auth_token: Option<Secret>,
    /// File whose first line is the provider's auth token (read once, at start); or set
    /// OPENORDER_SMS_AUTH_TOKEN.
    #[arg(long, env = "OPENORDER_SMS_AUTH_TOKEN_FILE", value_parser = Secret::from_file, hide_short_help = true)]
    pub sms_auth_token_file: Option<Secret>,
    /// The sender (`From`): a number in E.164 form, or what else the provider takes
    /// (an alphanumeric sender id, a messaging service).
    #[arg(long, env = "OPENORDER_SMS_FROM", hide_short_help = true)]
    pub sms_from: Option<String>,
    /// Root of the provider's Messages API.
    #[arg(
        long,
        env = "OPENORDER_SMS_BASE_URL",
        default_value = "https://api.twilio.com",
        hide_short_help = true
    )]
    pub sms_base_url: String,
    /// Public URL of this service's `POST /callbacks/sms`, as the provider reaches it
    /// (through any proxy): messages then ask for delivery receipts there and are SENT until
    /// one comes. Unset: accepted by the provider counts as delivered.
    #[arg(
        long,
        env = "OPENORDER_SMS_STATUS_CALLBACK_URL",
        hide_short_help = true
    )]
    pub sms_status_callback_url: Option<String>,
    /// Most segments one message may take (1-10); a longer text is cut to fit, ending in an
    /// ellipsis.
    #[arg(
        long,
        env = "OPENORDER_SMS_MAX_SEGMENTS",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..=10),
        hide_short_help = true
    )]
    pub sms_max_segments: u32,
    /// Give up on one provider request after this long (it is then retried).
    #[arg(
        long,
        env = "OPENORDER_SMS_TIMEOUT_MS",
        default_value_t = 10_000,
        hide_short_help = true
    )]
    pub sms_timeout_ms: u64,
}

/// What `POST /callbacks/sms` needs to check a delivery receipt.
#[derive(Clone)]
pub struct Callbacks {
    token: Secret,
    /// The status callback URL as configured (the provider signs the URL it called).
    public_url: url::Url,
}

impl Callbacks {
    pub fn new(token: Secret, public_url: url::Url) -> Self {
        Self { token, public_url }
    }

    /// The URL the provider called, as it signed it: the configured public URL with the
    /// query the request came with (the status callback's own, and `delivery`).
    pub fn signed_url(&self, query: Option<&str>) -> String {
        let mut url = self.public_url.clone();
        url.set_query(query.filter(|q| !q.is_empty()));
        url.to_string()
    }

    /// Whether `header` (`X-Twilio-Signature`) signs a request to `url` with `form`.
    pub fn is_signed(&self, url: &str, form: &[(String, String)], header: Option<&str>) -> bool {
        header.is_some_and(|header| signature_is_valid(self.token.expose(), url, form, header))
    }
}

pub struct SmsChannel {
    client: reqwest::Client,
    /// `{base}/2010-04-01/Accounts/{sid}/Messages.json`
    endpoint: String,
    account_sid: String,
    token: Secret,
    from: String,
    status_callback: Option<url::Url>,
    max_segments: usize,
}

impl SmsChannel {
    /// The channel, or `None` when no account is configured.
    pub fn from_args(args: &SmsArgs) -> anyhow::Result<Option<Self>> {
        let Some(account_sid) = &args.sms_account_sid else {
            return Ok(None);
        };
        if account_sid.is_empty() || !account_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            anyhow::bail!(
                "--sms-account-sid must be letters and digits (e.g. AC0123…), got {account_sid:?}"
            );
        }
        if let Some(token) = &args.sms_auth_token {
            // clap takes a flag's value over the environment's: a value that is not the
            // environment's came from the command line.
            if std::env::var(AUTH_TOKEN_ENV).ok().as_deref() != Some(token.expose()) {
                anyhow::bail!(
                    "the SMS auth token was given on the command line, where `ps` shows it: set {AUTH_TOKEN_ENV} or use --sms-auth-token-file"
                );
            }
        }
        let token = args
            .sms_auth_token_file
            .clone()
            .or_else(|| args.sms_auth_token.clone())
            .with_context(|| {
                format!("SMS needs the provider's auth token: set {AUTH_TOKEN_ENV} or --sms-auth-token-file")
            })?;
        let from = args
            .sms_from
            .clone()
            .filter(|f| !f.trim().is_empty())
            .context("SMS needs a sender: --sms-from (an E.164 number, e.g. +14155550100)")?;
        let base = url::Url::parse(&args.sms_base_url)
            .with_context(|| format!("--sms-base-url {:?} is not a URL", args.sms_base_url))?;
        if !matches!(base.scheme(), "http" | "https") {
            anyhow::bail!(
                "--sms-base-url must be http or https, got {:?}",
                base.scheme()
            );
        }
        let endpoint = format!(
            "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
            base.as_str().trim_end_matches('/')
        );
        let status_callback = match &args.sms_status_callback_url {
            None => None,
            Some(raw) => {
                let url = url::Url::parse(raw)
                    .with_context(|| format!("--sms-status-callback-url {raw:?} is not a URL"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    anyhow::bail!(
                        "--sms-status-callback-url must be http or https, got {:?}",
                        url.scheme()
                    );
                }
                Some(url)
            }
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(args.sms_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "openorder-notification/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .context("Failed to build the SMS HTTP client")?;
        tracing::info!(
            endpoint = %endpoint,
            from = %from,
            receipts = status_callback.is_some(),
            max_segments = args.sms_max_segments,
            "SMS channel on"
        );
        Ok(Some(Self {
            client,
            endpoint,
            account_sid: account_sid.clone(),
            token,
            from,
            status_callback,
            max_segments: args.sms_max_segments as usize,
        }))
    }

    /// What checks delivery receipts, when messages ask for them.
    pub fn callbacks(&self) -> Option<Callbacks> {
        self.status_callback
            .clone()
            .map(|url| Callbacks::new(self.token.clone(), url))
    }

    /// The status callback of delivery `key`: the configured URL with `delivery=<key>`.
    fn status_callback_of(&self, key: &str) -> Option<String> {
        let mut url = self.status_callback.clone()?;
        url.query_pairs_mut().append_pair("delivery", key);
        Some(url.to_string())
    }

    /// The form a message is sent as (also what tests compare against).
    pub fn form(&self, m: &Outgoing) -> String {
        let body = segments::fit(m.text.trim(), self.max_segments);
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("To", &m.recipient)
            .append_pair("From", &self.from)
            .append_pair("Body", &body);
        if let Some(callback) = self.status_callback_of(&m.idempotency_key) {
            form.append_pair("StatusCallback", &callback);
        }
        form.finish()
    }
}

/// The provider's answer to an accepted message (only what is used).
#[derive(Debug, Default, Deserialize)]
struct Accepted {
    #[serde(default)]
    sid: Option<String>,
}

/// The provider's answer to a refused message (Twilio's error object; only what is used).
#[derive(Debug, Default, Deserialize)]
struct Refusal {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

impl Channel for SmsChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(&'a self, m: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            // Checked when registered or ordered; again here, for a number stored before.
            PhoneNumber::parse(&m.recipient)
                .map_err(|why| SendError::Permanent(format!("not a phone number: {why}")))?;
            let answer = self
                .client
                .post(&self.endpoint)
                .basic_auth(&self.account_sid, Some(self.token.expose()))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "application/json")
                .header("i-twilio-idempotency-token", &m.idempotency_key)
                .body(self.form(m))
                .send()
                .await
                .map_err(|e| SendError::Transient(failure(&e)))?;
            let status = answer.status();
            let retry = answer
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, chrono::Utc::now()));
            // A body that breaks off is read as empty: the status says what matters.
            let body = answer.bytes().await.unwrap_or_default();
            if status.is_success() {
                let accepted: Accepted = serde_json::from_slice(&body).unwrap_or_default();
                return Ok(Sent {
                    provider_id: accepted.sid.filter(|sid| !sid.is_empty()),
                    awaiting_receipt: self.status_callback.is_some(),
                });
            }
            let refusal: Refusal = serde_json::from_slice(&body).unwrap_or_default();
            let error = refused(status, &refusal);
            match status.as_u16() {
                429 => Err(match retry {
                    Some(after) => SendError::Later(error, after),
                    None => SendError::Transient(error),
                }),
                500..=599 => Err(SendError::Transient(error)),
                _ => Err(SendError::Permanent(error)),
            }
        })
    }
}

/// What a refusal is stored as: the status, the provider's code and the start of its
/// message.
fn refused(status: reqwest::StatusCode, refusal: &Refusal) -> String {
    let mut error = format!("the SMS provider answered HTTP {status}");
    if let Some(code) = refusal.code {
        error.push_str(&format!(", code {code}"));
        if INVALID_NUMBER_CODES.contains(&code) {
            error.push_str(" (the number cannot receive SMS)");
        }
    }
    if let Some(message) = &refusal.message {
        let message: String = message
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        if !message.is_empty() {
            error.push_str(": ");
            error.push_str(&message);
        }
    }
    error
}

/// What a failed request is stored as: its kind, without the URL.
fn failure(err: &reqwest::Error) -> String {
    format!("the SMS provider: {}", super::failure_kind(err))
}

/// A `Retry-After` value as a wait from `now`: delay-seconds, or an HTTP date (a date
/// past is no wait).
pub fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The HMAC-SHA1 of a signed request: keyed with the auth token, over `url` and then
/// each form field's name and value, sorted by name (and value).
fn mac(token: &str, url: &str, form: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = form.iter().collect();
    sorted.sort();
    let mut mac =
        Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// `X-Twilio-Signature` of a request to `url` with `form`: base64 of the HMAC-SHA1.
pub fn signature(token: &str, url: &str, form: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(token, url, form).finalize().into_bytes())
}

/// Whether `header` is the signature of a request to `url` with `form` (compared in
/// constant time).
pub fn signature_is_valid(token: &str, url: &str, form: &[(String, String)], header: &str) -> bool {
    match base64::engine::general_purpose::STANDARD.decode(header.trim()) {
        Ok(given) => mac(token, url, form).verify_slice(&given).is_ok(),
        Err(_) => false,
    }
}

/// What a status in a delivery receipt means for the delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// On its way (`queued`, `accepted`, `scheduled`, `sending`, `sent`, or a status this
    /// version does not know): noted, the delivery stays as it is.
    OnItsWay,
    /// Reached the phone (`delivered`; `read` for channels that report it).
    Delivered,
    /// Will not reach it (`undelivered`, `failed`, `canceled`).
    Failed,
}

impl Receipt {
    pub fn of(status: &str) -> Self {
        match status {
            "delivered" | "read" => Receipt::Delivered,
            "undelivered" | "failed" | "canceled" => Receipt::Failed,
            _ => Receipt::OnItsWay,
        }
    }
}

#[cfg(test)]
mod tests;
