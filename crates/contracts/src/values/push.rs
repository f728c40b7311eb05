//! A browser's Web Push subscription (RFC 8030, RFC 8291) and the rules for its endpoint
//! and keys.

use std::fmt;

use super::shown;

/// A browser's Web Push subscription, as `PushSubscription.toJSON()` gives it: where to
/// post (RFC 8030's push resource) and the keys to encrypt for (RFC 8291).
///
/// - `endpoint`: an `https` URL with a host, not on port 0, without credentials or
///   fragment, at most 2,048 characters, and where the destination rules let requests go
///   (a push endpoint is a request the service makes on a customer's behalf, as a webhook
///   is). `http` only to a loopback host those rules open (a push service on this machine:
///   tests, development).
/// - `keys.p256dh`: base64url of the subscriber's P-256 public key, an uncompressed point
///   (65 bytes, the first 0x04). (That it is on the curve is checked where the curve is
///   known: notification-service.)
/// - `keys.auth`: base64url of the subscriber's 16-byte authentication secret.
///
/// Base64url is taken with or without `=` padding and kept without. `Debug` leaves the
/// authentication secret out.
#[derive(Clone, PartialEq, Eq)]
pub struct PushSubscription {
    endpoint: url::Url,
    p256dh: Vec<u8>,
    auth: Vec<u8>,
}

impl PushSubscription {
    /// Longest endpoint taken (push services' URLs are a few hundred characters).
    pub const MAX_ENDPOINT_LEN: usize = 2048;
    /// Bytes of `keys.p256dh`: an uncompressed P-256 point.
    pub const P256DH_BYTES: usize = 65;
    /// Bytes of `keys.auth`.
    pub const AUTH_BYTES: usize = 16;

    /// A subscription whose fields are all present and valid, or each bad one by its JSON
    /// pointer in the subscription object (`/endpoint`, `/keys/p256dh`, `/keys/auth`) with
    /// what is wrong with it.
    pub fn checked(
        endpoint: Option<&str>,
        p256dh: Option<&str>,
        auth: Option<&str>,
        destinations: &crate::destinations::Destinations,
    ) -> Result<Self, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let required = "is required (as PushSubscription.toJSON() gives it)".to_string();
        let endpoint = match endpoint {
            None => {
                errors.push(("/endpoint", required.clone()));
                None
            }
            Some(e) => match push_endpoint(e, destinations) {
                Ok(url) => Some(url),
                Err(m) => {
                    errors.push(("/endpoint", m));
                    None
                }
            },
        };
        let p256dh = match p256dh {
            None => {
                errors.push(("/keys/p256dh", required.clone()));
                None
            }
            Some(k) => match base64url(k, Self::P256DH_BYTES) {
                Ok(bytes) if bytes[0] == 0x04 => Some(bytes),
                Ok(_) => {
                    errors.push((
                        "/keys/p256dh",
                        "must be an uncompressed P-256 point (its first byte 0x04)".into(),
                    ));
                    None
                }
                Err(m) => {
                    errors.push(("/keys/p256dh", m));
                    None
                }
            },
        };
        let auth = match auth {
            None => {
                errors.push(("/keys/auth", required));
                None
            }
            Some(a) => match base64url(a, Self::AUTH_BYTES) {
                Ok(bytes) => Some(bytes),
                Err(m) => {
                    errors.push(("/keys/auth", m));
                    None
                }
            },
        };
        match (endpoint, p256dh, auth) {
            (Some(endpoint), Some(p256dh), Some(auth)) if errors.is_empty() => Ok(Self {
                endpoint,
                p256dh,
                auth,
            }),
            _ => Err(errors),
        }
    }

    pub fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    /// The subscriber's public key: an uncompressed P-256 point (65 bytes).
    pub fn p256dh(&self) -> &[u8] {
        &self.p256dh
    }

    /// The subscriber's authentication secret (16 bytes).
    pub fn auth(&self) -> &[u8] {
        &self.auth
    }

    /// `keys.p256dh` as kept: base64url without padding.
    pub fn p256dh_base64url(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.p256dh)
    }

    /// `keys.auth` as kept: base64url without padding.
    pub fn auth_base64url(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.auth)
    }
}

impl fmt::Debug for PushSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushSubscription")
            .field("endpoint", &self.endpoint.as_str())
            .field("p256dh", &self.p256dh_base64url())
            .field("auth", &"<secret>")
            .finish()
    }
}

/// Checks a push endpoint (see [`PushSubscription`]): the URL, or what is wrong with it.
pub fn push_endpoint(
    s: &str,
    destinations: &crate::destinations::Destinations,
) -> Result<url::Url, String> {
    if s.len() > PushSubscription::MAX_ENDPOINT_LEN {
        return Err(format!(
            "must be at most {} characters, got {}",
            PushSubscription::MAX_ENDPOINT_LEN,
            s.len()
        ));
    }
    let url = url::Url::parse(s).map_err(|e| format!("is not a URL ({e}): {}", shown(s)))?;
    let Some(host) = url.host() else {
        return Err(format!("must name a host, got {}", shown(s)));
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("must name a host, got {}", shown(s)));
    }
    if url.port() == Some(0) {
        return Err(format!(
            "must name a port from 1 to 65535, got 0: {}",
            shown(s)
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; pushes are signed (VAPID) instead".into());
    }
    if url.fragment().is_some() {
        return Err(format!("must not have a #fragment, got {}", shown(s)));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(
                "must use https (http only to a push service on loopback, where the destination rules open it)"
                    .into(),
            )
        }
        other => return Err(format!("must use https, got {other:?}")),
    }
    destinations.check_host(&host)?;
    Ok(url)
}

/// Whether `host` is this machine: a loopback address or `localhost`.
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => {
            crate::destinations::internal_name(name) == Some("loopback (localhost)")
        }
    }
}

/// `s` as base64url (with or without `=` padding) of exactly `bytes` bytes.
fn base64url(s: &str, bytes: usize) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let longest = bytes.div_ceil(3) * 4;
    if s.len() > longest {
        return Err(format!(
            "must be base64url of {bytes} bytes (at most {longest} characters), got {} characters",
            s.chars().count()
        ));
    }
    let unpadded = s.trim_end_matches('=');
    if s.len() - unpadded.len() > 2 {
        return Err(format!(
            "must be base64url of {bytes} bytes, got {}",
            shown(s)
        ));
    }
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(unpadded)
        .map_err(|_| {
            format!(
                "must be base64url (A-Z, a-z, 0-9, '-' and '_') of {bytes} bytes, got {}",
                shown(s)
            )
        })?;
    if decoded.len() != bytes {
        return Err(format!(
            "must be base64url of {bytes} bytes, got {} bytes",
            decoded.len()
        ));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests;
