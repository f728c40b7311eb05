//! The Web Push channel: a notification to the browsers a user subscribed, through their
//! push services (RFC 8030), encrypted for each browser (RFC 8291) and signed as this
//! service (VAPID, RFC 8292).
//!
//! - Subscriptions: a page subscribes with the service's public key
//!   (`GET /api/push/vapid-public-key`) and posts what `PushSubscription.toJSON()` gives to
//!   `POST /api/users/{userId}/push-subscriptions` (`notification_service::routes`). Each
//!   subscription is a recipient of its own (`subscription:<id>`, [`recipient`]): one
//!   delivery per notice and subscription, with its own idempotency key and digest window
//!   ([`super::lane`]).
//! - A push is `POST {endpoint}` with the body encrypted (aes128gcm, one record; the
//!   `web-push-native` crate, RustCrypto's AES-GCM, HKDF and P-256) for the subscription's
//!   `p256dh` key and `auth` secret; `Content-Encoding: aes128gcm`,
//!   `Content-Type: application/octet-stream`; `TTL` (`--push-ttl-seconds`: how long the
//!   push service keeps it for a browser that is offline); `Urgency` by kind
//!   ([`message::urgency`]); `Authorization: vapid t=<JWT>, k=<public key>`
//!   ([`vapid`]). The plaintext is [`message`]'s JSON, at most 3,993 bytes.
//! - Answers: 2xx is delivered (push services answer 201 Created, with the message's URL in
//!   `Location`, kept as the delivery's provider id). 404 and 410 say the subscription is
//!   gone (the browser unsubscribed, or it expired): its row is removed and the delivery
//!   fails at once, not retried, so that `--notify-fallback` may take over. 429 is retried
//!   after its `Retry-After` (the backoff without one); 408, 425, 5xx and network errors
//!   after the backoff; any other answer (400, 401/403: the VAPID signature refused, 413:
//!   too large) is a permanent refusal.
//! - An endpoint is a request the service makes on a customer's behalf, so it passes the
//!   webhook destination rules (`--webhook-allow-networks`) when registered, when sent, and
//!   as its host name resolves ([`super::webhook`]'s checked resolver): no server-side
//!   request forgery through a push endpoint. No redirects are followed, no proxy is used.
//!
//! Push is on when `--push-subject` is set: the contact push services see in every token.

pub mod message;
pub mod subscriptions;
pub mod vapid;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use contracts::destinations::Destinations;
use contracts::values::PushSubscription;
use platform::db::Database;

use super::webhook::{system_lookup, unreachable, CheckedResolver, Lookup, Unreachable};
use super::{Channel, Outgoing, SendError, SendFuture, Sent};
use subscriptions::StoredPushSubscription;

/// The channel's name, stored with its deliveries.
pub const NAME: &str = "push";

/// What a push delivery's recipient starts with: `subscription:<id>`.
const RECIPIENT_PREFIX: &str = "subscription:";

/// The recipient of pushes to subscription `id`.
pub fn recipient(id: i64) -> String {
    format!("{RECIPIENT_PREFIX}{id}")
}

/// The subscription a push delivery's recipient names.
pub fn subscription_id(recipient: &str) -> Option<i64> {
    recipient
        .strip_prefix(RECIPIENT_PREFIX)?
        .parse()
        .ok()
        .filter(|id| *id > 0)
}

/// Most subscriptions one user may register (each notice is a push to every one).
pub const MAX_SUBSCRIPTIONS_PER_USER: i64 = 20;

/// Longest `TTL` asked for: 28 days, what the large push services keep at most.
pub const MAX_TTL_SECONDS: u32 = 28 * 24 * 60 * 60;

/// Web Push settings. Push is on when `--push-subject` is set.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Web Push")]
pub struct PushArgs {
    /// How push services can reach the operator, sent in every VAPID token (`sub`):
    /// `mailto:ops@example.com` or an `https://` URL. Unset disables Web Push.
    #[arg(long, env = "OPENORDER_PUSH_SUBJECT", hide_short_help = true)]
    pub push_subject: Option<String>,
    /// File that keeps the VAPID private key (base64url of its 32 bytes, on one line),
    /// made there (mode 0600) on first start if missing. Unset: the key is kept in the
    /// database (table `push_vapid_key`), shared by every instance on it. Either way it is
    /// made once and never replaced: subscriptions are bound to its public key.
    #[arg(long, env = "OPENORDER_PUSH_VAPID_KEY_FILE", hide_short_help = true)]
    pub push_vapid_key_file: Option<PathBuf>,
    /// How long a push service keeps a notification for a browser that is offline
    /// (`TTL`, seconds; 0: deliver now or never).
    #[arg(
        long,
        env = "OPENORDER_PUSH_TTL_SECONDS",
        default_value_t = 86_400,
        value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_TTL_SECONDS)),
        hide_short_help = true
    )]
    pub push_ttl_seconds: u32,
    /// Give up on one push request after this long (it is then retried).
    #[arg(
        long,
        env = "OPENORDER_PUSH_TIMEOUT_MS",
        default_value_t = 10_000,
        hide_short_help = true
    )]
    pub push_timeout_ms: u64,
}

/// Push settings, checked before the service starts (a bad one stops the start at once).
#[derive(Clone, Debug)]
pub struct PushSettings {
    subject: String,
    key_file: Option<PathBuf>,
    ttl_seconds: u32,
    timeout: Duration,
}

impl PushArgs {
    /// The checked settings, or `None` when push is off.
    pub fn settings(&self) -> anyhow::Result<Option<PushSettings>> {
        let Some(subject) = &self.push_subject else {
            return Ok(None);
        };
        Ok(Some(PushSettings {
            subject: checked_subject(subject)?,
            key_file: self.push_vapid_key_file.clone(),
            ttl_seconds: self.push_ttl_seconds.min(MAX_TTL_SECONDS),
            timeout: Duration::from_millis(self.push_timeout_ms),
        }))
    }
}

/// `--push-subject` as sent: `mailto:` and an e-mail address, or an `https://` URL.
fn checked_subject(raw: &str) -> anyhow::Result<String> {
    let subject = raw.trim();
    if let Some(address) = subject.strip_prefix("mailto:") {
        contracts::values::EmailAddress::parse(address)
            .map_err(|why| anyhow::anyhow!("--push-subject: the mailto: address {why}"))?;
    } else if subject.starts_with("https://") {
        let url = url::Url::parse(subject)
            .map_err(|e| anyhow::anyhow!("--push-subject {subject:?} is not a URL: {e}"))?;
        if url.host_str().is_none_or(str::is_empty) {
            anyhow::bail!("--push-subject {subject:?} names no host");
        }
    } else {
        anyhow::bail!(
            "--push-subject must be mailto:<address> or an https:// URL where push services can reach the operator, got {:?}",
            subject.chars().take(64).collect::<String>()
        );
    }
    if subject.len() > 512 || subject.chars().any(char::is_control) {
        anyhow::bail!("--push-subject must be one line of at most 512 characters");
    }
    Ok(subject.to_string())
}

pub struct PushChannel {
    client: reqwest::Client,
    db: Database,
    destinations: Destinations,
    vapid: vapid::VapidKey,
    subject: String,
    ttl_seconds: u32,
}

impl PushChannel {
    /// The channel on `db` (its subscriptions, and its VAPID key unless a file keeps it),
    /// endpoints held to `destinations`.
    pub async fn start(
        settings: &PushSettings,
        db: Database,
        destinations: Destinations,
    ) -> anyhow::Result<Self> {
        let vapid = vapid::load_or_create(settings.key_file.as_deref(), &db).await?;
        let channel = Self::with(settings, db, destinations, vapid, system_lookup())?;
        tracing::info!(
            public_key = channel.vapid.public_key(),
            ttl_seconds = channel.ttl_seconds,
            "Web Push channel on"
        );
        Ok(channel)
    }

    /// The channel with `vapid`, its host names resolved by `lookup` (the system's
    /// resolver; a fake one in tests).
    fn with(
        settings: &PushSettings,
        db: Database,
        destinations: Destinations,
        vapid: vapid::VapidKey,
        lookup: Lookup,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(CheckedResolver {
                destinations: destinations.clone(),
                lookup,
                label: "push service",
            }))
            .user_agent(concat!(
                "openorder-notification/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .context("Failed to build the Web Push HTTP client")?;
        Ok(Self {
            client,
            db,
            destinations,
            vapid,
            subject: settings.subject.clone(),
            ttl_seconds: settings.ttl_seconds,
        })
    }

    /// The VAPID public key pages subscribe with (base64url of the uncompressed point).
    pub fn public_key(&self) -> &str {
        self.vapid.public_key()
    }

    /// The request for `m` to `subscription` at `now` (seconds since the epoch): the
    /// endpoint, the headers and the encrypted body; or why it cannot be made (for good).
    fn request(
        &self,
        subscription: &StoredPushSubscription,
        m: &Outgoing,
        now: i64,
    ) -> Result<Push, String> {
        let checked = PushSubscription::checked(
            Some(subscription.endpoint.as_str()),
            Some(subscription.p256dh.as_str()),
            Some(subscription.auth.as_str()),
            &self.destinations,
        )
        .map_err(|bad| {
            let why: Vec<String> = bad.iter().map(|(f, m)| format!("{f}: {m}")).collect();
            format!(
                "push subscription {} refused: {}",
                subscription.id,
                why.join("; ")
            )
        })?;
        let body = encrypt(&message::payload(m), &checked)?;
        let headers = vec![
            ("ttl", self.ttl_seconds.to_string()),
            ("urgency", message::urgency(&m.kind).to_string()),
            ("content-encoding", "aes128gcm".to_string()),
            ("content-type", "application/octet-stream".to_string()),
            (
                "authorization",
                self.vapid
                    .authorization(checked.endpoint(), now, &self.subject),
            ),
        ];
        Ok(Push {
            endpoint: checked.endpoint().clone(),
            headers,
            body,
        })
    }

    /// Removes a subscription its push service says is gone (logged if that fails: the
    /// next push to it is answered the same way and tries again).
    async fn forget(&self, id: i64) {
        if let Err(e) = subscriptions::remove_push_subscription(&self.db, None, id).await {
            tracing::warn!(subscription = id, error = %e, "could not remove a push subscription its push service says is gone");
        } else {
            tracing::info!(
                subscription = id,
                "removed a push subscription its push service says is gone"
            );
        }
    }
}

/// One push request, ready to send.
struct Push {
    endpoint: url::Url,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// `plaintext` encrypted for `subscription` (RFC 8291, aes128gcm in one record, a fresh
/// sender key and salt each time).
fn encrypt(plaintext: &[u8], subscription: &PushSubscription) -> Result<Vec<u8>, String> {
    let public = p256::PublicKey::from_sec1_bytes(subscription.p256dh())
        .map_err(|_| "the subscription's p256dh key is not a point on P-256".to_string())?;
    // 16 bytes: PushSubscription checked it.
    let auth = web_push_native::Auth::clone_from_slice(subscription.auth());
    web_push_native::encrypt(plaintext.to_vec(), &public, &auth)
        .map_err(|e| format!("could not encrypt the push message: {e}"))
}

/// What a push service's answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// 2xx: taken, for the browser.
    Accepted,
    /// 404, 410: the subscription is no more.
    Gone,
    /// 429: try again, after `Retry-After` if it said.
    Throttled,
    /// 408, 425, 5xx: try again after the backoff.
    TryAgain,
    /// Anything else: refused for good.
    Refused,
}

fn answer(status: reqwest::StatusCode) -> Answer {
    match status.as_u16() {
        200..=299 => Answer::Accepted,
        404 | 410 => Answer::Gone,
        429 => Answer::Throttled,
        408 | 425 | 500..=599 => Answer::TryAgain,
        _ => Answer::Refused,
    }
}

/// What a refusal is stored as: the status and, for some, what it likely means.
fn refused(status: reqwest::StatusCode) -> String {
    let hint = match status.as_u16() {
        400 => " (it took the request as malformed)",
        401 | 403 => {
            " (it refused the VAPID token: was the subscription made with this service's public key?)"
        }
        404 | 410 => ": the subscription is gone, and was removed",
        413 => " (the message is too large for it)",
        _ => "",
    };
    format!("the push service answered HTTP {status}{hint}")
}

/// What a failed request is stored as: its kind, without the URL (the endpoint carries the
/// subscription's token).
fn failure(err: &reqwest::Error) -> String {
    format!("the push service: {}", super::webhook::sanitized(err))
}

impl Channel for PushChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(&'a self, m: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let id = subscription_id(&m.recipient).ok_or_else(|| {
                SendError::Permanent(format!(
                    "not a push subscription: {:?}",
                    m.recipient.chars().take(64).collect::<String>()
                ))
            })?;
            let subscription = match subscriptions::push_subscription(&self.db, id).await {
                Ok(Some(subscription)) => subscription,
                Ok(None) => {
                    return Err(SendError::Permanent(format!(
                        "push subscription {id} was removed"
                    )))
                }
                Err(e) => {
                    return Err(SendError::Transient(format!(
                        "could not read push subscription {id}: {}",
                        if platform::db::is_transient(&e) {
                            "the database is unavailable"
                        } else {
                            "database error"
                        }
                    )))
                }
            };
            let push = self
                .request(&subscription, m, chrono::Utc::now().timestamp())
                .map_err(SendError::Permanent)?;
            let mut request = self.client.post(push.endpoint);
            for (name, value) in push.headers {
                request = request.header(name, value);
            }
            let answer_to = match request.body(push.body).send().await {
                Ok(answer_to) => answer_to,
                Err(e) => {
                    // The name resolved only to addresses pushes may not reach: refused for
                    // good, as an inside address in the endpoint itself is.
                    if let Some(Unreachable::Refused(why)) = unreachable(&e) {
                        return Err(SendError::Permanent(format!(
                            "push refused, the destination address is not allowed: {why}"
                        )));
                    }
                    return Err(SendError::Transient(failure(&e)));
                }
            };
            let status = answer_to.status();
            let retry = answer_to
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| super::sms::retry_after(v, chrono::Utc::now()));
            let location = answer_to
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 512)
                .map(str::to_string);
            // The push service's reply is not read, stored or shown: its status says
            // enough.
            drop(answer_to);
            match answer(status) {
                Answer::Accepted => Ok(Sent {
                    provider_id: location,
                    awaiting_receipt: false,
                }),
                Answer::Gone => {
                    self.forget(id).await;
                    Err(SendError::Permanent(refused(status)))
                }
                Answer::Throttled => Err(match retry {
                    Some(after) => SendError::Later(refused(status), after),
                    None => SendError::Transient(refused(status)),
                }),
                Answer::TryAgain => Err(SendError::Transient(refused(status))),
                Answer::Refused => Err(SendError::Permanent(refused(status))),
            }
        })
    }
}

#[cfg(test)]
mod tests;
