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
//! A 2xx answer is success; 408, 425, 429, 5xx and network errors are retried; any other
//! answer is a permanent refusal.

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Channel, Outgoing, SendError, SendFuture};

/// Webhook settings. Webhooks are on when a signing secret is set.
#[derive(Args, Clone, Debug)]
pub struct WebhookArgs {
    /// Secret that signs every webhook (`whsec_<base64>` or any string); unset disables webhooks.
    #[arg(long, env = "OPENORDER_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Give up on one webhook request after this long (it is then retried).
    #[arg(long, env = "OPENORDER_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
}

pub struct WebhookChannel {
    client: reqwest::Client,
    key: Vec<u8>,
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
        let Some(secret) = &args.webhook_secret else {
            return Ok(None);
        };
        let key = secret_key(secret)?;
        if key.len() < 16 {
            anyhow::bail!("the webhook secret is too short: use at least 16 bytes (e.g. `openssl rand -base64 32` after whsec_)");
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(args.webhook_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "openorder-notification/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .context("Failed to build the webhook HTTP client")?;
        tracing::info!("webhook channel on");
        Ok(Some(Self { client, key }))
    }
}

impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, m: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let timestamp = chrono::Utc::now().timestamp();
            let body = m.payload.as_bytes().to_vec();
            let signature = signature(&self.key, &m.idempotency_key, timestamp, &body);
            let answer = self
                .client
                .post(&m.recipient)
                .header("content-type", "application/json")
                .header("webhook-id", &m.idempotency_key)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .header("idempotency-key", &m.idempotency_key)
                .body(body)
                .send()
                .await
                .map_err(|e| SendError::Transient(format!("POST {}: {e}", m.recipient)))?;
            let status = answer.status();
            if status.is_success() {
                return Ok(());
            }
            let detail: String = answer
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            let error = format!("POST {}: HTTP {status} {detail}", m.recipient)
                .trim_end()
                .to_string();
            if status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429) {
                Err(SendError::Transient(error))
            } else {
                Err(SendError::Permanent(error))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signatures_match_the_standard_webhooks_reference_example() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_without_the_prefix_are_used_as_their_bytes() {
        assert_eq!(secret_key("plain-secret").unwrap(), b"plain-secret");
        assert!(secret_key("whsec_not base64!").is_err());
    }
}
