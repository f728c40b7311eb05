//! Logging and traces.
//!
//! Logs: human-readable lines on stderr, filtered by `RUST_LOG` (default: `info` for
//! OpenOrder, `warn` for everything else, librdkafka's own log off: it repeats every
//! connection refusal; our loops report what matters once), in colour only at a terminal.
//!
//! Traces (OpenTelemetry, off unless configured): with `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans go to that OTLP collector over
//! HTTP/protobuf, configured by the standard variables (`OTEL_SERVICE_NAME`,
//! `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`). The SDK's batch
//! processor exports from a thread of its own and keeps at most `OTEL_BSP_MAX_QUEUE_SIZE`
//! (2,048) spans waiting: a collector that is down or slow never holds up a service; spans
//! beyond that are dropped. W3C trace context (`traceparent`, `tracestate`) is what travels
//! in HTTP requests and in records.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

/// Are traces exported? (When not, nothing pays for spans it would not send.)
pub fn traces_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty()))
        && std::env::var("OTEL_TRACES_EXPORTER").as_deref() != Ok("none")
}

/// Installs the global subscriber once; later calls (tests, `up`) are no-ops. `service`
/// names the process in traces unless `OTEL_SERVICE_NAME` does.
pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "warn,rdkafka=off,librdkafka=off,openorder=info,platform=info,order_service=info,inventory_service=info,notification_service=info",
        )
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(colour())
        .with_writer(std::io::stderr);
    let traces = otlp_configured()
        .then(|| tracer(service))
        .and_then(|t| match t {
            Ok(tracer) => Some(tracer),
            Err(err) => {
                eprintln!("traces are off: the OTLP exporter could not be set up: {err:#}");
                None
            }
        });
    use tracing_subscriber::Layer;
    let otel = traces.map(|tracer| {
        // OpenOrder's own spans (the filter above is for log lines): the request, record
        // and send spans, and the handlers' spans inside them.
        let ours = tracing_subscriber::filter::Targets::new()
            .with_target("platform", tracing::Level::INFO)
            .with_target("openorder", tracing::Level::INFO)
            .with_target("order_service", tracing::Level::INFO)
            .with_target("inventory_service", tracing::Level::INFO)
            .with_target("notification_service", tracing::Level::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(ours)
    });
    let installed = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
    if installed.is_ok() && PROVIDER.get().is_some() {
        ENABLED.store(true, Ordering::Relaxed);
    }
}

fn tracer(service: &str) -> anyhow::Result<opentelemetry_sdk::trace::Tracer> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_string());
    }
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer = provider.tracer("openorder");
    let _ = PROVIDER.set(provider);
    Ok(tracer)
}

/// Sends the spans still queued, for at most `bound` (at exit; blocking: call it off the
/// async threads).
pub fn flush(bound: std::time::Duration) {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown_with_timeout(bound);
    }
}

/// Colour codes only for a person at a terminal: not into a file or a pipe (`up`'s logs,
/// journald, CI), and never with `NO_COLOR` set (<https://no-color.org>).
pub fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The W3C trace context of the current span, as headers (`traceparent`, `tracestate`);
/// empty when traces are off or there is no span.
pub fn current_context_headers() -> Vec<(String, String)> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !traces_enabled() {
        return Vec::new();
    }
    let cx = tracing::Span::current().context();
    let mut carrier = std::collections::HashMap::<String, String>::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.into_iter().collect()
}

/// The trace context carried by `headers` (a record's or a request's), if any.
pub fn context_from<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> opentelemetry::Context {
    let carrier: std::collections::HashMap<String, String> = headers
        .filter(|(k, _)| {
            k.eq_ignore_ascii_case("traceparent") || k.eq_ignore_ascii_case("tracestate")
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier))
}
