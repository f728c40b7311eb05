//! The lowest layer: logs, traces and metrics, which every other crate reports through,
//! and the clock every stored time is written with ([`now_text`]).
//!
//! - [`metrics`]: the counters and gauges served as Prometheus text on `/metrics`, each one
//!   of the [`catalogue`]'s series.
//!
//! Logs: lines on stderr, filtered by `RUST_LOG` (default: `info` for OpenOrder, `warn`
//! for everything else, librdkafka's own log off: it repeats every connection refusal; our
//! loops report what matters once): for a person, in colour only at a terminal, or with
//! `--log-format json` one JSON object per line carrying the `trace_id` and `span_id` of
//! the span it was written in ([`json_lines`]; trace context is then kept even without a
//! collector, so that lines of one order can be found across the services).
//!
//! Traces (OpenTelemetry, off unless configured): with `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans go to that OTLP collector over
//! HTTP/protobuf (another `OTEL_EXPORTER_OTLP_PROTOCOL` is refused, traces then off, with a
//! line saying so), configured by the standard variables (`OTEL_SERVICE_NAME`,
//! `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`). The SDK's batch
//! processor exports from a thread of its own and keeps at most `OTEL_BSP_MAX_QUEUE_SIZE`
//! (2,048) spans waiting: a collector that is down or slow never holds up a service; spans
//! beyond that are dropped, and counted (`openorder_trace_spans_dropped_total` on
//! `/metrics`, beside `openorder_trace_spans_exported_total`). W3C trace context (`traceparent`, `tracestate`) is what travels
//! in HTTP requests and in records. Sampling is decided where a trace begins, before any
//! span is made ([`parent_or_root`]), and a trace left out makes spans only where its
//! context must travel on ([`left_out`]): tracing at 1 % costs little more than off.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub mod catalogue;
mod export;
mod json_lines;
pub mod metrics;

pub use export::export_counts;

/// The span attribute that names the service whose work a span begins (`order-service`,
/// …): under `up` it picks the service a span and its children are reported as.
pub const SERVICE: &str = "openorder.service";

static ENABLED: AtomicBool = AtomicBool::new(false);
static EXPORTING: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for a person (colour only at a terminal).
    #[default]
    Text,
    /// One JSON object per line, with `trace_id` and `span_id` inside a span
    /// ([`json_lines`]).
    Json,
}

/// Is trace context kept and passed on (in records and requests)? With OTLP configured,
/// or with JSON logs (whose lines carry the ids). When not, nothing pays for spans.
pub fn traces_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Does the sampler follow a parent's decision (the default, `parentbased_*`)? Then a
/// child of a context the sampler left out is recorded by no one ([`left_out`]).
static FOLLOWS_PARENT: AtomicBool = AtomicBool::new(true);

/// Is `cx` a trace the sampler left out (a valid context whose "sampled" flag is off, with
/// a sampler that follows the parent's decision)? Spans under it would be recorded by no
/// one, so the busy paths make none, or where its context must travel on (into a record,
/// an outbox row, a request) a bare one, without attributes: the context still passes on,
/// flag and all, so that the next service leaves the trace out too.
pub fn left_out(cx: &opentelemetry::Context) -> bool {
    use opentelemetry::trace::TraceContextExt;
    let span = cx.span();
    let context = span.span_context();
    FOLLOWS_PARENT.load(Ordering::Relaxed) && context.is_valid() && !context.is_sampled()
}

/// The share of new traces recorded (`OTEL_TRACES_SAMPLER_ARG` of a `parentbased_*`
/// sampler), as `f64` bits; decided here, before any span is made ([`parent_or_root`]).
static ROOT_RATIO: AtomicU64 = AtomicU64::new(0x3FF0_0000_0000_0000); // 1.0

/// The sampler's decision for a trace that begins here, taken before any span is made, so
/// that a trace left out costs only its ids: `parent` when it is a trace context; else,
/// for a new trace the sampler records, an empty context (the span made under it begins
/// the trace), or a new context already left out ([`left_out`]), whose ids travel on.
pub fn parent_or_root(parent: opentelemetry::Context) -> opentelemetry::Context {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    if parent.span().span_context().is_valid() || !FOLLOWS_PARENT.load(Ordering::Relaxed) {
        return parent;
    }
    let ratio = f64::from_bits(ROOT_RATIO.load(Ordering::Relaxed));
    if ratio >= 1.0 || rand::random::<f64>() < ratio {
        return parent;
    }
    let context = SpanContext::new(
        TraceId::from(rand::random::<u128>().max(1)),
        SpanId::from(rand::random::<u64>().max(1)),
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(context)
}

/// How the SDK's sampler is configured (`OTEL_TRACES_SAMPLER[_ARG]`): for the samplers
/// that follow a parent's decision (`parentbased_*`, the default), the share of new traces
/// to record, which [`parent_or_root`] applies; the SDK is then given
/// `ParentBased(AlwaysOn)`, to follow it. `None` for the samplers that decide alone, left
/// to the SDK.
fn root_ratio() -> Option<f64> {
    let sampler = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
    let arg = || {
        std::env::var("OTEL_TRACES_SAMPLER_ARG")
            .ok()
            .and_then(|a| a.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r))
            .unwrap_or(1.0)
    };
    match sampler.trim() {
        "always_on" | "always_off" | "traceidratio" => None,
        "parentbased_always_off" => Some(0.0),
        "parentbased_traceidratio" => Some(arg()),
        _ => Some(1.0),
    }
}

/// A span under `parent`, a trace [`left_out`]: recorded by no one and without attributes,
/// there only to carry that context on to what the work inside it causes (its records,
/// rows and requests).
pub fn left_out_span(parent: opentelemetry::Context) -> tracing::Span {
    let span = tracing::info_span!("openorder.left_out");
    set_parent(&span, parent);
    span
}

/// [`left_out`] for the context of `span` (false for a disabled span: there is none).
pub fn span_left_out(span: &tracing::Span) -> bool {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    traces_enabled() && !span.is_disabled() && left_out(&span.context())
}

/// Are spans sent to a collector?
fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
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

/// The crates (log targets) that are OpenOrder's own: their lines at `info` by default, and
/// their spans are what traces carry.
pub const OWN_TARGETS: [&str; 11] = [
    "openorder",
    "platform",
    "telemetry",
    "store",
    "kafka_clients",
    "messaging",
    "web",
    "runtime",
    "order_service",
    "inventory_service",
    "notification_service",
];

/// The log lines' filter when `RUST_LOG` sets none: `warn`, librdkafka's own log off, and
/// OpenOrder's crates at `info`.
pub fn default_log() -> String {
    format!("warn,rdkafka=off,librdkafka=off,{}", own_at("info"))
}

/// A `RUST_LOG` list putting every one of [`OWN_TARGETS`] at `level`.
pub fn own_at(level: &str) -> String {
    let ours: Vec<String> = OWN_TARGETS.iter().map(|t| format!("{t}={level}")).collect();
    ours.join(",")
}

/// The log lines when traces are on: they write only the events `logged` allows (the
/// global filter lets through the spans and events traces want too). A check in
/// `on_event`, not a per-layer filter (see [`init`]).
struct Lines<L> {
    inner: L,
    logged: tracing_subscriber::filter::Targets,
}

impl<S, L> tracing_subscriber::Layer<S> for Lines<L>
where
    S: tracing::Subscriber,
    L: tracing_subscriber::Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(
        &self,
        span: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(
        &self,
        span: &tracing::span::Id,
        follows: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if self.logged.would_enable(meta.target(), meta.level()) {
            self.inner.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(
        &self,
        old: &tracing::span::Id,
        new: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.inner.on_id_change(old, new, ctx);
    }
}

/// Installs the global subscriber once; later calls (tests, `up`) are no-ops. `service`
/// names the process in traces unless `OTEL_SERVICE_NAME` does.
pub fn init(service: &str, format: LogFormat) {
    use tracing_subscriber::Layer;
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(default_log);
    let lines = match format {
        // A line that cannot be written (stderr to a file on a full disk) is lost, not
        // reported with `eprintln!`, which panics when it cannot write either.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(colour())
            .with_writer(std::io::stderr)
            .log_internal_errors(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(json_lines::JsonLines)
            .with_writer(std::io::stderr)
            .log_internal_errors(false)
            .boxed(),
    };
    let export = otlp_configured();
    let traces = (export || format == LogFormat::Json)
        .then(|| tracer(service, export))
        .and_then(|t| match t {
            Ok(tracer) => Some(tracer),
            Err(err) => {
                eprintln!("traces are off: the OTLP exporter could not be set up: {err:#}");
                None
            }
        });
    // OpenOrder's own spans (RUST_LOG is for log lines): the request, record and send
    // spans, and the handlers' spans inside them.
    let ours = tracing_subscriber::filter::Targets::new()
        .with_targets(OWN_TARGETS.map(|target| (target, tracing::Level::INFO)));
    // The filters are not the log lines' own (`with_filter`): a per-layer filter kept
    // what it decided for a callsite that was asked about but never emitted
    // (`tracing::enabled!`, which sqlx asks before each statement) and then dropped the
    // next event on that thread: a service's first warning after a query went missing.
    // Without traces, RUST_LOG filters globally. With traces, the global filter lets
    // through what either wants, and the lines keep to RUST_LOG by a check of their own
    // ([`Lines`]; its directives read as targets and levels).
    let (global, lines): (Box<dyn Layer<_> + Send + Sync>, _) = if traces.is_none() {
        (EnvFilter::new(&spec).boxed(), lines)
    } else {
        let logged: tracing_subscriber::filter::Targets = spec.parse().unwrap_or_else(|_| {
            default_log()
                .parse()
                .expect("the default log filter is a valid list of targets")
        });
        let (either, traced) = (logged.clone(), ours.clone());
        let global = tracing_subscriber::filter::filter_fn(move |meta| {
            either.would_enable(meta.target(), meta.level())
                || traced.would_enable(meta.target(), meta.level())
        });
        (
            global.boxed(),
            Lines {
                inner: lines,
                logged,
            }
            .boxed(),
        )
    };
    let otel = traces.map(|tracer| {
        // Without the layer's extras on every span (the source location, the thread, busy
        // and idle time): none is a semantic convention the spans are read by, and each
        // is paid for in every span made and exported.
        tracing_opentelemetry::layer()
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_tracer(tracer)
            .with_filter(ours)
    });
    let installed = tracing_subscriber::registry()
        .with(global)
        .with(lines)
        .with(otel)
        .try_init();
    if installed.is_ok() && PROVIDER.get().is_some() {
        ENABLED.store(true, Ordering::Relaxed);
        EXPORTING.store(export, Ordering::Relaxed);
    }
}

/// The tracer: spans batched to the OTLP exporter when `export`, else kept only for their
/// ids (JSON logs).
fn tracer(service: &str, export: bool) -> anyhow::Result<opentelemetry_sdk::trace::Tracer> {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|n| !n.is_empty());
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !named {
        resource = resource.with_service_name(service.to_string());
    }
    let mut provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_resource(resource.build());
    match root_ratio() {
        Some(ratio) => {
            ROOT_RATIO.store(ratio.to_bits(), Ordering::Relaxed);
            provider = provider.with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(
                Box::new(opentelemetry_sdk::trace::Sampler::AlwaysOn),
            ));
        }
        None => FOLLOWS_PARENT.store(false, Ordering::Relaxed),
    }
    if export {
        let protocol = [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|p| !p.is_empty()));
        if let Some(protocol) = protocol.filter(|p| p != "http/protobuf") {
            anyhow::bail!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: OpenOrder exports \
                 http/protobuf (a collector's port 4318)"
            );
        }
        let queue = std::env::var("OTEL_BSP_MAX_QUEUE_SIZE")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(2_048);
        // `up` runs the three services in one process: each gets an exporter of its own,
        // so that each is a service of its own in the traces (unless OTEL_SERVICE_NAME
        // names them all).
        let mut services = vec![service.to_string()];
        if service == "openorder" && !named {
            services.extend(contracts::Service::ALL.iter().map(|s| s.name().to_string()));
        }
        let mut by_service = Vec::new();
        for name in services {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .build()?;
            let exporter = export::Counted { inner: exporter };
            let batch = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build();
            by_service.push((name, batch));
        }
        provider = provider.with_span_processor(export::Admitted {
            by_service,
            queue,
            of_span: Default::default(),
        });
    }
    let provider = provider.build();
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

/// The trace context stored by [`trace_text`] (none for empty or unreadable text).
pub fn context_from_text(text: &str) -> opentelemetry::Context {
    let Ok(map) = serde_json::from_str::<std::collections::BTreeMap<String, String>>(text) else {
        return opentelemetry::Context::new();
    };
    context_from(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Makes `span` the child of `parent` (a context from a record, a request or a row).
pub fn set_parent(span: &tracing::Span, parent: opentelemetry::Context) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let _ = span.set_parent(parent);
}

/// The current time as stored in databases and events: UTC, RFC 3339, milliseconds.
/// One fixed width, so that text order is time order.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
