//! Operator tokens: long random bearer tokens (`oo_` and 43 URL-safe characters, 256 bits),
//! of which a service keeps only the SHA-256 hash. Entries are `<name>=sha256:<64 hex>`,
//! from `--operator-token-hash` (or the environment) and from a file, one per line, which is
//! re-read when it changes (rotation: add the new entry, move callers, remove the old one).
//!
//! A random 256-bit token needs no slow hash (there is nothing to guess from a dictionary);
//! the presented token's hash is compared with every entry in constant time.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of every operator token (so a leaked one is recognisable, as GitHub's `ghp_`).
pub const TOKEN_PREFIX: &str = "oo_";

/// One operator credential as a service keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Who holds it, as logged with each of their actions.
    pub name: String,
    hash: [u8; 32],
}

impl Entry {
    /// The entry for `token`, named `name`.
    pub fn for_token(name: &str, token: &str) -> Self {
        Self {
            name: name.to_string(),
            hash: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Parses `<name>=sha256:<64 hex digits>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (name, hash) = text.split_once('=').ok_or_else(|| {
            "expected <name>=sha256:<hex> (make one with `openorder token new`)".to_string()
        })?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            return Err(format!(
                "the name {name:?} must be letters, digits, '-', '_', '.' or '@'"
            ));
        }
        let hex = hash.trim().strip_prefix("sha256:").ok_or_else(|| {
            format!("the entry for {name} must be a hash, sha256:<64 hex digits>")
        })?;
        let bytes = decode_hex(hex).ok_or_else(|| {
            format!(
                "the hash of {name} must be 64 hex digits, got {} characters",
                hex.len()
            )
        })?;
        Ok(Self {
            name: name.to_string(),
            hash: bytes,
        })
    }

    /// `<name>=sha256:<hex>`, as [`Entry::parse`] reads it.
    pub fn line(&self) -> String {
        let hex: String = self.hash.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}=sha256:{hex}", self.name)
    }
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// A new random operator token.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Reads entries from `text` (a file's): one per line; blank lines and `#` comments skipped.
pub fn parse_lines(text: &str) -> Result<Vec<Entry>, String> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(i, line)| Entry::parse(line).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// The operator entries a service accepts now: the fixed ones plus the file's latest.
#[derive(Clone, Debug, Default)]
pub struct Operators {
    fixed: Vec<Entry>,
    file: Option<PathBuf>,
    from_file: Arc<RwLock<Vec<Entry>>>,
    /// The file's modification time and length when it was read.
    read_at: Option<Stamp>,
}

type Stamp = (SystemTime, u64);

/// How often the token file is looked at for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

impl Operators {
    /// The entries of `fixed` and of `file` (read now, off the async threads: a missing or
    /// malformed file is an error).
    pub async fn load(fixed: Vec<Entry>, file: Option<PathBuf>) -> anyhow::Result<Self> {
        let (from_file, read_at) = match &file {
            Some(path) => {
                let path = path.clone();
                let (entries, stamp) =
                    tokio::task::spawn_blocking(move || read_file(&path)).await??;
                (entries, stamp)
            }
            None => (Vec::new(), None),
        };
        Ok(Self {
            fixed,
            file,
            from_file: Arc::new(RwLock::new(from_file)),
            read_at,
        })
    }

    /// True when no entry could ever be accepted (no fixed entries, no file).
    pub fn is_unconfigured(&self) -> bool {
        self.fixed.is_empty() && self.file.is_none()
    }

    /// The name of the operator whose token this is, or None. Every entry is compared (in
    /// constant time), so the time taken says nothing about which one matched.
    pub fn who(&self, token: &str) -> Option<String> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let from_file = self.from_file.read().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        for entry in self.fixed.iter().chain(from_file.iter()) {
            if bool::from(entry.hash.ct_eq(&presented)) && found.is_none() {
                found = Some(entry.name.clone());
            }
        }
        found
    }

    /// Re-reads the file every [`RELOAD_EVERY`] while it changes, until `stop`. A file
    /// that became unreadable or malformed keeps the entries read last (logged).
    pub fn spawn_reload(&self, stop: tokio_util::sync::CancellationToken) {
        let Some(path) = self.file.clone() else {
            return;
        };
        let entries = self.from_file.clone();
        let mut seen = self.read_at;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RELOAD_EVERY) => {}
                }
                let now = modified(&path).await;
                if now == seen {
                    continue;
                }
                seen = now;
                let read = {
                    let path = path.clone();
                    tokio::task::spawn_blocking(move || read_file(&path)).await
                };
                match read {
                    Ok(Ok((fresh, _))) => {
                        tracing::info!(file = %path.display(), tokens = fresh.len(), "operator tokens reloaded");
                        *entries.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                    }
                    Ok(Err(err)) => tracing::warn!(
                        error = format!("{err:#}"),
                        "the operator token file could not be read again; the tokens read last still count"
                    ),
                    Err(err) => tracing::warn!(%err, "reloading operator tokens failed"),
                }
            }
        });
    }
}

async fn modified(path: &std::path::Path) -> Option<Stamp> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The file's entries, and its stamp as read (blocking).
fn read_file(path: &std::path::Path) -> anyhow::Result<(Vec<Entry>, Option<Stamp>)> {
    use anyhow::Context;
    let stamp = std::fs::metadata(path)
        .ok()
        .and_then(|m| Some((m.modified().ok()?, m.len())));
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("Failed to read the operator token file {}", path.display()))?;
    let entries = parse_lines(&text)
        .map_err(|e| anyhow::anyhow!("the operator token file {}: {e}", path.display()))?;
    Ok((entries, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_entry_reads_back_what_it_writes_and_matches_only_its_token() {
        let token = new_token();
        assert!(
            token.starts_with(TOKEN_PREFIX) && token.len() == 46,
            "{token}"
        );
        let entry = Entry::for_token("alice", &token);
        assert_eq!(Entry::parse(&entry.line()), Ok(entry.clone()));
        let operators = Operators::load(vec![entry], None).await.unwrap();
        assert_eq!(operators.who(&token).as_deref(), Some("alice"));
        assert_eq!(operators.who(&new_token()), None);
        assert_eq!(operators.who(""), None);
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        for (text, says) in [
            ("alice", "expected <name>=sha256:<hex>"),
            ("=sha256:00", "the name"),
            ("alice=plaintext", "must be a hash"),
            ("alice=sha256:abc", "64 hex digits"),
            ("al ice=sha256:abc", "the name"),
        ] {
            let err = Entry::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        let err = parse_lines("# ops\n\nbob=sha256:zz\n").unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
    }

    #[tokio::test]
    async fn a_changed_token_file_is_picked_up_and_the_old_token_stops_working() {
        let dir = std::env::temp_dir().join(format!("oo-tokens-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("operators");
        let (old, new) = (new_token(), new_token());
        std::fs::write(&file, format!("{}\n", Entry::for_token("old", &old).line())).unwrap();
        let operators = Operators::load(Vec::new(), Some(file.clone()))
            .await
            .unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        operators.spawn_reload(stop.clone());
        assert_eq!(operators.who(&old).as_deref(), Some("old"));
        assert_eq!(operators.who(&new), None);
        let both = format!(
            "# rotating\n{}\n{}\n",
            Entry::for_token("old", &old).line(),
            Entry::for_token("new", &new).line()
        );
        std::fs::write(&file, both).unwrap();
        let deadline = tokio::time::Instant::now() + RELOAD_EVERY * 5;
        while operators.who(&new).is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new token was not picked up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(operators.who(&old).as_deref(), Some("old"));
        std::fs::write(&file, format!("{}\n", Entry::for_token("new", &new).line())).unwrap();
        while operators.who(&old).is_some() {
            assert!(
                tokio::time::Instant::now() < deadline + RELOAD_EVERY * 5,
                "the old token still works"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::fs::write(&file, "garbage\n").unwrap();
        tokio::time::sleep(RELOAD_EVERY * 2).await;
        assert_eq!(
            operators.who(&new).as_deref(),
            Some("new"),
            "a broken file keeps the last tokens"
        );
        stop.cancel();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
