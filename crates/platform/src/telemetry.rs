//! Tracing set-up: human-readable lines on stderr, filtered by `RUST_LOG`
//! (default: `info` for OpenOrder, `warn` for everything else, librdkafka's own log off:
//! it repeats every connection refusal; our loops report what matters once).

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
        .with_writer(std::io::stderr)
        .try_init();
}
