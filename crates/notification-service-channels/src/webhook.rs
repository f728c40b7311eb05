//! The webhook channel: an HTTP POST of the notification as JSON, signed the way the
//! [Standard Webhooks](https://www.standardwebhooks.com/) specification says, so receivers can
//! use its libraries to verify:
//!
//! - `webhook-id`: the delivery's idempotency key (also sent as `Idempotency-Key`), the same
//!   on every attempt: a receiver that remembers it never acts twice;
//! - `webhook-timestamp`: seconds since the epoch at sending; receivers refuse old ones
//!   (replay protection);
//! - `webhook-signature`: `v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}` with
//!   the shared secret (`whsec_` + base64 as the spec writes secrets, or any other string,
//!   used as its UTF-8 bytes).
//!
//! With traces on, the request carries `traceparent`: its span continues the trace of the
//! event the notification is about.
//!
//! A 2xx answer is success; 408, 425, 429, 5xx and network errors are retried; any other
//! answer is a permanent refusal. So is a destination webhooks may not reach: an address
//! refused when the contact was set, or a name that resolves, when sent, only to such
//! addresses ([`CheckedResolver`]): it fails at once, as no retry would change it.

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use contracts::destinations::Destinations;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::Instrument;

use super::{Channel, Outgoing, SendError, SendFuture, Sent};

/// Webhook settings. Webhooks are on when a signing secret is set.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookArgs {
    /// Secret that signs every webhook (`whsec_<base64>` or any string); unset disables webhooks.
    #[arg(
        long,
        env = "OPENORDER_WEBHOOK_SECRET",
        hide_env_values = true,
        hide_short_help = true
    )]
    pub webhook_secret: Option<String>,
    /// Give up on one webhook request after this long (it is then retried).
    #[arg(
        long,
        env = "OPENORDER_WEBHOOK_TIMEOUT_MS",
        default_value_t = 10_000,
        hide_short_help = true
    )]
    pub webhook_timeout_ms: u64,

    #[command(flatten)]
    pub destinations: platform::config::WebhookDestinationArgs,
}

pub struct WebhookChannel {
    client: reqwest::Client,
    key: Vec<u8>,
    destinations: Destinations,
}

/// Resolves a webhook's host name and keeps only the addresses webhooks may reach; the
/// client connects to those alone, so a name cannot be checked as public and then
/// resolve to an inside address when connected (DNS rebinding). Push endpoints go through
/// the same ([`super::push`]).
#[derive(Clone)]
pub(super) struct CheckedResolver {
    pub(super) destinations: Destinations,
    pub(super) lookup: Lookup,
    /// What the host is, in errors: `webhook`, `push service`.
    pub(super) label: &'static str,
}

/// A name's addresses (the system's resolver; a fake one in tests).
pub(super) type Lookup = std::sync::Arc<
    dyn Fn(
            String,
        )
            -> futures_util::future::BoxFuture<'static, std::io::Result<Vec<std::net::SocketAddr>>>
        + Send
        + Sync,
>;

pub(super) fn system_lookup() -> Lookup {
    std::sync::Arc::new(|host: String| {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) })
    })
}

/// Why a webhook's host name gave no address to connect to: the resolver's error, found
/// again among a failed request's causes ([`unreachable`]).
#[derive(Debug)]
pub(super) enum Unreachable {
    /// The name did not resolve, or to no address: perhaps only for now (retried).
    Lookup(String),
    /// Every address the name resolves to is one webhooks may not reach: refused for good.
    Refused(String),
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lookup(why) | Self::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Unreachable {}

impl CheckedResolver {
    /// The addresses of `host` that webhooks may reach, or why there are none.
    async fn checked(&self, host: String) -> Result<Vec<std::net::SocketAddr>, Unreachable> {
        let label = self.label;
        let found = (self.lookup)(host.clone())
            .await
            .map_err(|e| Unreachable::Lookup(format!("{label} host {host}: {e}")))?;
        let (allowed, refused): (Vec<_>, Vec<_>) = found
            .into_iter()
            .partition(|a| self.destinations.check_ip(a.ip()).is_ok());
        if allowed.is_empty() {
            let why = refused
                .first()
                .and_then(|a| self.destinations.check_ip(a.ip()).err());
            return Err(match why {
                Some(why) => Unreachable::Refused(format!("{label} host {host}: {why}")),
                None => {
                    Unreachable::Lookup(format!("{label} host {host}: it resolves to no address"))
                }
            });
        }
        Ok(allowed)
    }
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let allowed = this.checked(host).await?;
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The signing key a secret stands for.
pub fn secret_key(secret: &str) -> anyhow::Result<Vec<u8>> {
    match secret.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .context("the webhook secret starts with whsec_ but the rest is not base64"),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

impl WebhookChannel {
    /// The channel, or `None` when no secret is configured.
    pub fn from_args(args: &WebhookArgs) -> anyhow::Result<Option<Self>> {
        Self::resolving_with(args, system_lookup())
    }

    /// The channel, its names resolved by `lookup` (the system's resolver; a fake one in
    /// tests).
    fn resolving_with(args: &WebhookArgs, lookup: Lookup) -> anyhow::Result<Option<Self>> {
        let Some(secret) = &args.webhook_secret else {
            return Ok(None);
        };
        let key = secret_key(secret)?;
        if key.len() < 16 {
            anyhow::bail!("the webhook secret is too short: use at least 16 bytes (e.g. `openssl rand -base64 32` after whsec_)");
        }
        let destinations = args.destinations.destinations();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(args.webhook_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(CheckedResolver {
                destinations: destinations.clone(),
                lookup,
                label: "webhook",
            }))
            .user_agent(concat!(
                "openorder-notification/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .context("Failed to build the webhook HTTP client")?;
        tracing::info!("webhook channel on");
        Ok(Some(Self {
            client,
            key,
            destinations,
        }))
    }
}

impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, m: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            // Checked again here: the contact may have been stored before a rule changed.
            // (A name is checked as it resolves, by `CheckedResolver`.)
            let url = url::Url::parse(&m.recipient)
                .map_err(|e| SendError::Permanent(format!("not a URL: {e}")))?;
            if let Some(host) = url.host() {
                self.destinations
                    .check_host(&host)
                    .map_err(|why| SendError::Permanent(format!("webhook refused: {why}")))?;
            }
            if url.port() == Some(0) {
                return Err(SendError::Permanent(
                    "webhook refused: port 0 is no port a receiver listens on".into(),
                ));
            }
            let timestamp = chrono::Utc::now().timestamp();
            let body = m.payload.as_bytes().to_vec();
            let signature = signature(&self.key, &m.idempotency_key, timestamp, &body);
            let span = client_span(&url, &m.trace);
            let mut request = self
                .client
                .post(&m.recipient)
                .header("content-type", "application/json")
                .header("webhook-id", &m.idempotency_key)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .header("idempotency-key", &m.idempotency_key);
            for (name, value) in platform::telemetry::context_headers_of(&span) {
                request = request.header(name, value);
            }
            let answer = request.body(body).send().instrument(span.clone()).await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(e) => {
                    // The name resolved only to addresses webhooks may not reach: as
                    // refused as an inside address in the URL itself (above), and no
                    // retry changes it.
                    if let Some(Unreachable::Refused(why)) = unreachable(&e) {
                        span.record("error.type", "destination not allowed");
                        return Err(SendError::Permanent(format!(
                            "webhook refused, the destination address is not allowed: {why}"
                        )));
                    }
                    let error = sanitized(&e);
                    span.record("error.type", error.as_str());
                    return Err(SendError::Transient(error));
                }
            };
            let status = answer.status();
            span.record("http.response.status_code", status.as_u16());
            if status.is_success() {
                return Ok(Sent::default());
            }
            span.record("error.type", status.as_str());
            // The receiver's reply is not read, stored or shown: its status says enough,
            // and its text could be anything (another host's page, reached by a mistake).
            drop(answer);
            let error = format!("the receiver answered HTTP {status}");
            if status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429) {
                Err(SendError::Transient(error))
            } else {
                Err(SendError::Permanent(error))
            }
        })
    }
}

/// With traces on, the CLIENT span of a webhook request (semantic conventions 1.37:
/// `POST`, `http.request.method`, `server.address`, `server.port`, `url.scheme`,
/// `http.response.status_code`, `error.type`; not the full URL, whose path and query may
/// carry a receiver's secret): the child of the context the notification was recorded in,
/// and sent to the receiver as `traceparent`.
fn client_span(url: &url::Url, trace: &str) -> tracing::Span {
    if !platform::telemetry::traces_enabled() {
        return tracing::Span::none();
    }
    let parent = platform::telemetry::parent_or_root(platform::telemetry::context_from_text(trace));
    if platform::telemetry::left_out(&parent) {
        // Recorded by no one: a bare span, to send the context on.
        return platform::telemetry::left_out_span(parent);
    }
    let span = tracing::info_span!(
        "http.client",
        otel.name = "POST",
        otel.kind = "client",
        openorder.service = "notification-service",
        http.request.method = "POST",
        server.address = url.host_str().unwrap_or(""),
        server.port = url.port_or_known_default().unwrap_or(0),
        url.scheme = url.scheme(),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    platform::telemetry::set_parent(&span, parent);
    span
}

/// What a failed request is stored as: its kind, without the URL (it is the recipient,
/// stored beside) or the text of whatever answered.
pub(super) fn sanitized(err: &reqwest::Error) -> String {
    let kind = super::failure_kind(err);
    // The resolver's own error is ours to show: it names no reply.
    match unreachable(err) {
        Some(why) => format!("{kind}: {why}"),
        None => kind.to_string(),
    }
}

/// The resolver's error among `err`'s causes, if that is why the request failed.
pub(super) fn unreachable(err: &reqwest::Error) -> Option<&Unreachable> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(inner) = source {
        if let Some(found) = inner.downcast_ref::<Unreachable>() {
            return Some(found);
        }
        source = inner.source();
    }
    None
}

#[cfg(test)]
mod tests;
