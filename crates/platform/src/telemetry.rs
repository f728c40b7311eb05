//! Tracing set-up: human-readable lines on stderr, filtered by `RUST_LOG`
//! (default: `info` for OpenOrder, `warn` for everything else, librdkafka's own log off:
//! it repeats every connection refusal; our loops report what matters once), in colour
//! only at a terminal.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls (tests, `up`) are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "warn,rdkafka=off,librdkafka=off,openorder=info,platform=info,order_service=info,inventory_service=info,notification_service=info",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Colour codes only for a person at a terminal: not into a file or a pipe (`up`'s logs,
/// journald, CI), and never with `NO_COLOR` set (<https://no-color.org>).
pub fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
