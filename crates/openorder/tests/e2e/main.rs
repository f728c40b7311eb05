//! The end-to-end tests of OpenOrder, as one test binary (one link of everything instead of
//! one per file): each former `tests/<name>.rs` is the module `<name>` here, its tests named
//! `<name>::<test>`. Run one file's tests with `cargo test -p openorder --test e2e flow::`,
//! one test by its full name, or all of them with `--test e2e`.
//!
//! The tests run side by side in one process, so none may change what the process shares:
//! its environment (`std::env::set_var`), its working directory, or a global tracing
//! subscriber beyond [`support::init_tracing`]'s (the same for all, installed once).
//! Three files stay binaries of their own: `tests/traces.rs` sets the OpenTelemetry
//! variables and installs the process's telemetry for the services it runs in-process, which
//! every other test's services (and the children they start) would then pick up;
//! `tests/bench.rs` and `tests/chaos.rs` each run the whole system hard for a minute or more
//! and would load the timing bounds of the tests beside them (they link almost nothing, so
//! they cost little to build).

mod support;

mod api_docs;
mod api_fuzz;
mod auth;
mod broker_requests;
mod broker_retention;
mod console;
mod console_browser;
mod console_tls;
mod dead_letters;
mod faults;
mod flow;
mod foreign_records;
mod kafka_security;
mod lag;
mod metrics_exposition;
mod notifications;
mod order_waits_postgres;
mod partitioning;
mod poison;
mod postgres_tls;
mod retention;
mod secrets;
mod stops;
mod upgrade;
mod web_push;
