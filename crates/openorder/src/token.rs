//! `openorder token`: makes operator tokens and their hash entries, and finds the token
//! the CLI's own requests present (`status`, `bench`, `chaos`).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use harness::up::UP_TOKEN_FILE;
use platform::auth::operators::{new_token, Entry};

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// A new random operator token (on the first line) and the entry a service needs for it
    /// (on the second: put it in the `--operator-tokens-file`).
    New {
        /// Who will hold it (logged with each of their actions).
        #[arg(long, default_value = "operator")]
        name: String,
    },
    /// The entry for a token read from standard input.
    Hash {
        #[arg(long, default_value = "operator")]
        name: String,
    },
}

pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::New { name } => {
            let entry = checked(&name)?;
            let token = new_token();
            println!("{token}");
            println!("{}", Entry::for_token(&entry, &token).line());
        }
        TokenCommand::Hash { name } => {
            let entry = checked(&name)?;
            let mut token = String::new();
            std::io::stdin()
                .take(4096)
                .read_to_string(&mut token)
                .context("Failed to read the token from standard input")?;
            let token = token.trim();
            anyhow::ensure!(!token.is_empty(), "no token on standard input");
            println!("{}", Entry::for_token(&entry, token).line());
        }
    }
    Ok(())
}

fn checked(name: &str) -> anyhow::Result<String> {
    Entry::parse(&format!("{name}=sha256:{}", "0".repeat(64)))
        .map(|e| e.name)
        .map_err(|e| anyhow::anyhow!(e))
}

/// `up`'s operator token: read from its data directory, or made there (readable by its
/// owner only) on the first start.
pub async fn up_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(UP_TOKEN_FILE);
    match tokio::fs::read_to_string(&path).await {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("Failed to read {}", path.display())),
    }
    let token = new_token();
    let write = {
        let (path, token) = (path.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)?;
            writeln!(file, "{token}")?;
            file.sync_all()
        })
    };
    write
        .await?
        .with_context(|| format!("Failed to write the operator token to {}", path.display()))?;
    Ok(token)
}

/// What the CLI presents as operator: `--operator-token` (or `OPENORDER_OPERATOR_TOKEN`),
/// else the token of an `up` data directory, if there is one.
#[derive(Args, Clone, Debug, Default)]
pub struct ClientToken {
    /// Operator token for the services' operator endpoints [default: the one in
    /// `--data-dir`'s `operator-token`, as `openorder up` made it].
    #[arg(long, env = "OPENORDER_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// `openorder up`'s data directory, where its operator token is.
    #[arg(
        long = "data-dir",
        env = "OPENORDER_DATA_DIR",
        default_value = "openorder-data"
    )]
    pub token_dir: PathBuf,
}

impl ClientToken {
    pub async fn get(&self) -> Option<String> {
        if let Some(token) = &self.operator_token {
            return Some(token.clone());
        }
        let text = tokio::fs::read_to_string(self.token_dir.join(UP_TOKEN_FILE))
            .await
            .ok()?;
        Some(text.trim().to_string()).filter(|t| !t.is_empty())
    }

    /// A client that presents the token (if any) on every request.
    pub async fn client(&self, timeout: std::time::Duration) -> anyhow::Result<reqwest::Client> {
        operator_client(self.get().await.as_deref(), timeout)
    }
}

/// An HTTP client presenting `token` (when given) as `Authorization: Bearer`.
pub fn operator_client(
    token: Option<&str>,
    timeout: std::time::Duration,
) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the operator token is not a valid header value")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers)
        .build()?)
}
