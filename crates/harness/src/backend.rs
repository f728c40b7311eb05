//! What `bench` and `chaos` run the services against: the embedded broker and SQLite, or an
//! external Kafka-API broker and PostgreSQL, and the flags that choose it.

use anyhow::Context;
use clap::{Args, ValueEnum};

/// What `bench` and `chaos` run against (`--broker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BrokerChoice {
    /// The embedded broker and SQLite (started by the harness).
    Embedded,
    /// An external Kafka-API broker and PostgreSQL (`--bootstrap-servers`, `--postgres-url`).
    External,
}

/// The flags `bench` and `chaos` share: which broker, and where the external one and its
/// PostgreSQL are.
#[derive(Args, Debug)]
#[command(next_help_heading = "Backend")]
pub struct BackendArgs {
    #[arg(long, value_enum, default_value = "embedded")]
    pub broker: BrokerChoice,

    /// External broker's bootstrap servers.
    #[arg(long, env = "OPENORDER_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,

    /// PostgreSQL URL with the right to create databases (one fresh database per service,
    /// and per scenario in `chaos`).
    #[arg(long, env = "OPENORDER_CHAOS_POSTGRES_URL", hide_env_values = true)]
    pub postgres_url: Option<String>,
}

impl BackendArgs {
    /// The external broker's bootstrap servers and the PostgreSQL URL, as `--broker
    /// external` needs them; an error names the flag that is missing.
    pub fn external(&self) -> anyhow::Result<(String, String)> {
        let bootstrap = self
            .bootstrap_servers
            .clone()
            .context("--broker external needs --bootstrap-servers")?;
        let postgres_url = self
            .postgres_url
            .clone()
            .context("--broker external needs --postgres-url")?;
        Ok((bootstrap, postgres_url))
    }
}

/// Which broker and databases the services use.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The embedded broker (started and stopped by the harness) and SQLite.
    Embedded,
    /// An external Kafka-API broker and PostgreSQL, with optional commands that stop and
    /// start them (for the broker- and database-restart scenarios).
    External {
        bootstrap: String,
        postgres_url: String,
        broker_stop: Option<String>,
        broker_start: Option<String>,
        database_stop: Option<String>,
        database_start: Option<String>,
    },
}

impl Backend {
    /// How reports name it.
    pub fn label(&self) -> &'static str {
        match self {
            Backend::Embedded => "embedded (Tansu + SQLite)",
            Backend::External { .. } => "Kafka + PostgreSQL",
        }
    }
}
