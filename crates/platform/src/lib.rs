//! What every OpenOrder service shares, so that each service holds only its own domain: one
//! name for the layer crates below, each depending only on those before it.
//!
//! | crate | what it is for | here as |
//! |---|---|---|
//! | `telemetry` | logs, traces, metrics, the clock | [`telemetry`], [`metrics`], [`now_text`] |
//! | `store` | SQLite and PostgreSQL, the outbox table, dedupe, retention, storage faults, error classes | [`db`], [`outbox`], [`dedupe`], [`retention`], [`storage`], [`failure`], [`wal_writes`] |
//! | `kafka-clients` | client settings and flags, topics, broker readiness, backoff | [`kafka`], [`backoff`] |
//! | `messaging` | records, router, consumer loop, lanes, stalls, dead letters written, outbox relay | [`record`], [`router`], [`consumer`], [`lanes`], [`stalls`], [`relay`] |
//! | `dead-letters` | dead letters listed, shown, edited, replayed and redriven (and written, from `messaging`) | [`dead_letters`] |
//! | `web` | HTTP: flags, problems, middleware, health, OpenAPI, auth, the dead-letter API | [`http`], [`auth`] |
//! | `runtime` | start-up, waiting for dependencies, shutdown, status, lag and readiness gauges | [`service`], [`starting`], [`shutdown`], [`status`], [`gauges`], [`fd_limit`], [`config`] |
//!
//! A test (`layers_depend_only_on_those_below`) keeps the order.

pub use dead_letters;
pub use kafka_clients as kafka;
pub use kafka_clients::backoff;
pub use messaging::{consumer, lanes, record, relay, router, stalls};
pub use runtime::{config, fd_limit, gauges, service, shutdown, starting, status};
pub use store::{db, dedupe, failure, outbox, retention, storage, wal_writes};
pub use telemetry::{self, metrics, now_text};
pub use web::{auth, http};

pub use tokio_util::sync::CancellationToken;

#[cfg(test)]
mod tests {
    /// The layer crates, lowest first, with their manifests.
    const LAYERS: [(&str, &str); 7] = [
        ("telemetry", include_str!("../../telemetry/Cargo.toml")),
        ("store", include_str!("../../store/Cargo.toml")),
        (
            "kafka-clients",
            include_str!("../../kafka-clients/Cargo.toml"),
        ),
        ("messaging", include_str!("../../messaging/Cargo.toml")),
        (
            "dead-letters",
            include_str!("../../dead-letters/Cargo.toml"),
        ),
        ("web", include_str!("../../web/Cargo.toml")),
        ("runtime", include_str!("../../runtime/Cargo.toml")),
    ];

    /// The layer crates a manifest depends on (a line `<name>.workspace = true` or
    /// `<name> = …` in any dependency table).
    fn layers_named(manifest: &str) -> Vec<&'static str> {
        LAYERS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| {
                manifest.lines().any(|line| {
                    let line = line.trim();
                    line.starts_with(&format!("{name}.")) || line.starts_with(&format!("{name} ="))
                })
            })
            .collect()
    }

    #[test]
    fn layers_depend_only_on_those_below() {
        for (position, (name, manifest)) in LAYERS.iter().enumerate() {
            let below: Vec<&str> = LAYERS[..position].iter().map(|(n, _)| *n).collect();
            for dependency in layers_named(manifest) {
                assert!(
                    below.contains(&dependency),
                    "{name} depends on {dependency}, which is not below it ({below:?})"
                );
            }
        }
    }

    #[test]
    fn every_layer_logs_at_info_by_default() {
        for (name, _) in LAYERS {
            let target = name.replace('-', "_");
            assert!(
                telemetry::OWN_TARGETS.contains(&target.as_str()),
                "{target} is not among telemetry::OWN_TARGETS: its info lines would be dropped"
            );
        }
    }

    #[test]
    fn the_check_sees_a_layer_named_in_a_manifest() {
        let manifest = "[dependencies]\nstore.workspace = true\nweb = { path = \"../web\" }\n";
        assert_eq!(layers_named(manifest), ["store", "web"]);
    }
}
