//! VAPID (RFC 8292): how a push service knows the requests for a subscription come from
//! the application server the browser subscribed for.
//!
//! The service has one P-256 key pair. Its public key (base64url of the uncompressed
//! point) is what a page passes to `pushManager.subscribe({applicationServerKey})`, served
//! at `GET /api/push/vapid-public-key`. Every push request carries
//! `Authorization: vapid t=<JWT>, k=<public key>`: a JWT signed with ES256 (ECDSA P-256
//! with SHA-256, RFC 6979 deterministic, by RustCrypto's `p256`) whose claims are `aud`, the
//! origin of the endpoint; `exp`, [`TOKEN_LIFETIME_SECS`] from now (RFC 8292 allows at most
//! 24 hours); and `sub`, the operator's contact (`--push-subject`).
//!
//! The key pair is made once and kept ([`load_or_create`]): in the database (table
//! `push_vapid_key`, shared by every instance on it), or in the file
//! `--push-vapid-key-file` names (made there, mode 0600, if it is not there yet; the
//! format of other Web Push tools: base64url of the 32-byte private key, on one line). A
//! new key pair would orphan every subscription made with the old public key, so it is
//! never replaced. The private key is never logged, and no error message carries it.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use platform::db::Database;

/// Base64url without padding, as JWTs and Web Push keys are written.
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long a token is valid: RFC 8292 allows at most 24 hours; half that leaves room for
/// a push service whose clock runs ahead.
pub const TOKEN_LIFETIME_SECS: i64 = 12 * 60 * 60;

/// The service's VAPID key pair. (No `Debug`, no `Display`: it holds the private key.)
pub struct VapidKey {
    signing: SigningKey,
    /// The public key, base64url of the uncompressed point (65 bytes).
    public: String,
}

impl VapidKey {
    /// A new key pair, from the thread's CSPRNG (ChaCha, seeded by the OS).
    pub fn generate() -> Self {
        loop {
            // A scalar of 0 or past the group order (one in 2^32) is no key: draw again.
            let bytes: [u8; 32] = rand::random();
            if let Ok(signing) = SigningKey::from_slice(&bytes) {
                return Self::of(signing);
            }
        }
    }

    /// The key pair of a private key written as base64url of its 32 bytes (padding and
    /// surrounding white space allowed).
    pub fn from_private_base64url(text: &str) -> anyhow::Result<Self> {
        let bytes = B64
            .decode(text.trim().trim_end_matches('='))
            .map_err(|_| anyhow::anyhow!("a VAPID private key is base64url; this is not"))?;
        if bytes.len() != 32 {
            anyhow::bail!(
                "a VAPID private key is 32 bytes, this one is {}",
                bytes.len()
            );
        }
        let signing = SigningKey::from_slice(&bytes)
            .map_err(|_| anyhow::anyhow!("those 32 bytes are no P-256 private key"))?;
        Ok(Self::of(signing))
    }

    fn of(signing: SigningKey) -> Self {
        let public = B64.encode(signing.verifying_key().to_encoded_point(false).as_bytes());
        Self { signing, public }
    }

    /// The private key as kept: base64url of its 32 bytes.
    pub fn private_base64url(&self) -> String {
        B64.encode(self.signing.to_bytes())
    }

    /// The public key (base64url of the uncompressed point): the `applicationServerKey`
    /// pages subscribe with, and `k` of every request.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// A signed JWT (ES256) with the claims `aud`, `exp` (seconds since the epoch) and
    /// `sub`.
    pub fn token(&self, aud: &str, exp: i64, sub: &str) -> String {
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({ "aud": aud, "exp": exp, "sub": sub });
        let claims = B64.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        // JWS's ES256 signature is r and s, 32 bytes each, one after the other.
        let signature: Signature = self.signing.sign(signed.as_bytes());
        format!("{signed}.{}", B64.encode(signature.to_bytes()))
    }

    /// The `Authorization` header of a push request to `endpoint` at `now` (seconds since
    /// the epoch): `vapid t=<JWT>, k=<public key>`.
    pub fn authorization(&self, endpoint: &url::Url, now: i64, sub: &str) -> String {
        let aud = endpoint.origin().ascii_serialization();
        let token = self.token(&aud, now + TOKEN_LIFETIME_SECS, sub);
        format!("vapid t={token}, k={}", self.public)
    }
}

/// The service's key pair: from `file` if given (made there if missing), else from the
/// database (made and stored on first use; every instance reads the same one back).
pub async fn load_or_create(file: Option<&Path>, db: &Database) -> anyhow::Result<VapidKey> {
    match file {
        Some(path) => from_file(path),
        None => {
            let candidate = VapidKey::generate();
            let stored =
                super::subscriptions::vapid_private_key(db, &candidate.private_base64url())
                    .await
                    .context("could not read or store the VAPID key (table push_vapid_key)")?;
            VapidKey::from_private_base64url(&stored)
                .context("the VAPID key stored in push_vapid_key is not usable")
        }
    }
}

/// The key pair in `path`; made and written there (mode 0600, never overwritten) if the
/// file is not there yet.
fn from_file(path: &Path) -> anyhow::Result<VapidKey> {
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => VapidKey::from_private_base64url(text.lines().next().unwrap_or_default())
            .with_context(|| {
                format!("--push-vapid-key-file {shown}: not a VAPID private key (base64url of 32 bytes on the first line)")
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("--push-vapid-key-file {shown}: could not create its directory")
                })?;
            }
            let key = VapidKey::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => {
                    use std::io::Write;
                    file.write_all(format!("{}\n", key.private_base64url()).as_bytes())
                        .and_then(|()| file.sync_all())
                        .with_context(|| format!("--push-vapid-key-file {shown}: could not write the new key"))?;
                    tracing::info!(file = %shown, public_key = key.public_key(), "made a VAPID key pair for Web Push");
                    Ok(key)
                }
                // Another instance made it first: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => from_existing(path),
                Err(e) => Err(e).with_context(|| {
                    format!("--push-vapid-key-file {shown}: could not create the file")
                }),
            }
        }
        Err(e) => Err(e).with_context(|| format!("--push-vapid-key-file {shown}: could not read it")),
    }
}

/// The key pair in `path`, which exists.
fn from_existing(path: &Path) -> anyhow::Result<VapidKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "--push-vapid-key-file {}: could not read it",
            path.display()
        )
    })?;
    VapidKey::from_private_base64url(text.lines().next().unwrap_or_default()).with_context(|| {
        format!(
            "--push-vapid-key-file {}: not a VAPID private key (base64url of 32 bytes on the first line)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;

    fn decoded(part: &str) -> serde_json::Value {
        serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn a_token_is_an_es256_jwt_of_aud_exp_and_sub_that_the_public_key_verifies() {
        let key = VapidKey::generate();
        let endpoint = url::Url::parse("https://push.example.net:8443/wpush/v2/abc?x=1").unwrap();
        let header = key.authorization(&endpoint, 1_800_000_000, "mailto:ops@example.com");
        let rest = header.strip_prefix("vapid t=").expect(&header);
        let (token, k) = rest.split_once(", k=").expect(&header);
        assert_eq!(k, key.public_key());
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        assert_eq!(
            decoded(parts[0]),
            serde_json::json!({"typ": "JWT", "alg": "ES256"})
        );
        assert_eq!(
            decoded(parts[1]),
            serde_json::json!({
                "aud": "https://push.example.net:8443",
                "exp": 1_800_000_000 + TOKEN_LIFETIME_SECS,
                "sub": "mailto:ops@example.com",
            })
        );
        const {
            assert!(
                TOKEN_LIFETIME_SECS <= 24 * 60 * 60,
                "RFC 8292: at most 24 h"
            )
        };
        // The signature is r || s over "header.claims", by the key served as `k`.
        let public = B64.decode(k).unwrap();
        assert_eq!(public.len(), 65);
        assert_eq!(public[0], 0x04, "uncompressed");
        let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public).unwrap();
        let signature = Signature::from_slice(&B64.decode(parts[2]).unwrap()).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        assert!(verifying.verify(signed.as_bytes(), &signature).is_ok());
        assert!(verifying.verify(b"something else", &signature).is_err());
        // The default port is left out of the audience, as an origin is written.
        let plain = url::Url::parse("https://fcm.googleapis.com/fcm/send/x").unwrap();
        let token = key.authorization(&plain, 0, "mailto:ops@example.com");
        let claims = token.split('.').nth(1).unwrap();
        assert_eq!(decoded(claims)["aud"], "https://fcm.googleapis.com");
    }

    #[test]
    fn a_key_pair_reads_back_from_its_private_key_and_refuses_what_is_no_key() {
        let key = VapidKey::generate();
        let again =
            VapidKey::from_private_base64url(&format!(" {}\n", key.private_base64url())).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(key.private_base64url().len(), 43);
        let zero = B64.encode([0u8; 32]);
        let past_the_order = B64.encode([0xffu8; 32]);
        for bad in [
            "",
            "not base64!",
            "AAAA",
            zero.as_str(),
            past_the_order.as_str(),
        ] {
            let refused = format!("{:#}", VapidKey::from_private_base64url(bad).err().unwrap());
            // What was refused is not repeated: it may be a real private key, mistyped.
            assert!(bad.len() < 8 || !refused.contains(bad), "{refused}");
        }
    }

    #[test]
    fn a_key_file_is_made_once_readable_by_its_owner_only_and_kept() {
        let dir = std::env::temp_dir().join(format!("oo-vapid-{}", uuid::Uuid::new_v4()));
        let path = dir.join("keys").join("vapid.key");
        let made = from_file(&path).unwrap();
        let kept = from_file(&path).unwrap();
        assert_eq!(made.public_key(), kept.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "garbage\n").unwrap();
        let refused = format!("{:#}", from_file(&path).err().unwrap());
        assert!(refused.contains("--push-vapid-key-file"), "{refused}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
