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
//! beyond that are dropped, and counted (`openorder_trace_spans_dropped_total` on
//! `/metrics`, beside `openorder_trace_spans_exported_total`). W3C trace context (`traceparent`, `tracestate`) is what travels
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
    let queue = std::env::var("OTEL_BSP_MAX_QUEUE_SIZE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2_048);
    let exporter = Counted {
        inner: exporter,
        waiting: WAITING.clone(),
    };
    let batch = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(Admitted {
            inner: batch,
            queue,
        })
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer = provider.tracer("openorder");
    let _ = PROVIDER.set(provider);
    Ok(tracer)
}

/// Spans ended and not yet through the exporter (queued or being sent).
static WAITING: std::sync::LazyLock<std::sync::Arc<std::sync::atomic::AtomicUsize>> =
    std::sync::LazyLock::new(Default::default);
/// Spans dropped because [`WAITING`] was at the queue's size; spans exported.
static DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static EXPORTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The batch processor, behind a count of the spans it holds: a span that would find its
/// queue full is dropped here and counted (the SDK drops it silently), so `/metrics` can
/// say how many a slow or absent collector cost.
#[derive(Debug)]
struct Admitted {
    inner: opentelemetry_sdk::trace::BatchSpanProcessor,
    queue: usize,
}

impl opentelemetry_sdk::trace::SpanProcessor for Admitted {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
        if WAITING.fetch_add(1, Ordering::Relaxed) >= self.queue {
            WAITING.fetch_sub(1, Ordering::Relaxed);
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting the spans it has taken off [`WAITING`].
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for Counted<E>
{
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let n = batch.len();
        let result = self.inner.export(batch).await;
        self.waiting.fetch_sub(n, Ordering::Relaxed);
        if result.is_ok() {
            EXPORTED.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            DROPPED.fetch_add(n as u64, Ordering::Relaxed);
        }
        result
    }

    fn shutdown_with_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// With traces exported, the exporter's counts into `metrics`:
/// `openorder_trace_spans_exported_total` and `openorder_trace_spans_dropped_total` (queue
/// full, or the collector refused or did not answer).
pub fn export_counts(metrics: &crate::metrics::Metrics) {
    if PROVIDER.get().is_none() {
        return;
    }
    metrics.set_counter(
        "openorder_trace_spans_exported_total",
        &[],
        EXPORTED.load(Ordering::Relaxed),
    );
    metrics.set_counter(
        "openorder_trace_spans_dropped_total",
        &[],
        DROPPED.load(Ordering::Relaxed),
    );
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
    context_headers_of(&tracing::Span::current())
}

/// The W3C trace context of `span`, as headers; empty when traces are off or `span` is
/// disabled.
pub fn context_headers_of(span: &tracing::Span) -> Vec<(String, String)> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !traces_enabled() || span.is_disabled() {
        return Vec::new();
    }
    let cx = span.context();
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

/// The trace context of `span` as text to store beside a row (a JSON object of the W3C
/// headers; empty when traces are off), read back by [`context_from_text`].
pub fn trace_text(span: &tracing::Span) -> String {
    let headers = context_headers_of(span);
    if headers.is_empty() {
        return String::new();
    }
    let map: std::collections::BTreeMap<String, String> = headers.into_iter().collect();
    serde_json::to_string(&map).expect("a string map serializes")
}

/// Makes `span` the child of the context stored by [`trace_text`] (left as it is for
/// empty or unreadable text).
pub fn set_parent_from_text(span: &tracing::Span, text: &str) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let Ok(map) = serde_json::from_str::<std::collections::BTreeMap<String, String>>(text) else {
        return;
    };
    let _ = span.set_parent(context_from(
        map.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ));
}
