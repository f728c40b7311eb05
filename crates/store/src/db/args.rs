//! The database flags of a service ([`DatabaseArgs`]).

/// Where a service keeps its data. (`Debug` shows the URL without its password.)
#[derive(clap::Args, Clone)]
#[command(next_help_heading = "Database")]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://path/to/file.db` or `postgres://user:pass@host/db`.
    #[arg(long, env = "OPENORDER_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Largest number of pooled connections.
    #[arg(
        long,
        env = "OPENORDER_DATABASE_MAX_CONNECTIONS",
        default_value_t = 8,
        hide_short_help = true
    )]
    pub database_max_connections: u32,

    #[command(flatten)]
    pub retention: crate::retention::RetentionArgs,
}

impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field("database_url", &crate::db::redact(&self.database_url))
            .field("database_max_connections", &self.database_max_connections)
            .field("retention", &self.retention)
            .finish()
    }
}
