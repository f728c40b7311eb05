//! The lowest layer: logs, traces and metrics, which every other crate reports through,
//! and the clock every stored time is written with ([`now_text`]).
//!
//! - [`metrics`]: the counters and gauges served as Prometheus text on `/metrics`, each one
//!   of the [`catalogue`]'s series.
//! - `sampling`: [`parent_or_root`] and [`left_out`]; `context`: trace context in headers,
//!   records and rows ([`trace_text`], [`set_parent`]); `lines`: the log lines under traces.
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub mod catalogue;
mod context;
mod export;
mod json_lines;
mod lines;
pub mod metrics;
mod sampling;

pub use context::{
    context_from, context_from_text, context_headers_of, current_context_headers, set_parent,
    trace_text,
};
pub use export::export_counts;
pub use sampling::{left_out, left_out_span, parent_or_root, span_left_out};

use lines::Lines;
use sampling::{root_ratio, FOLLOWS_PARENT, ROOT_RATIO};

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
pub const OWN_TARGETS: [&str; 12] = [
    "openorder",
    "platform",
    "telemetry",
    "store",
    "kafka_clients",
    "messaging",
    "dead_letters",
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

/// The current time as stored in databases and events: UTC, RFC 3339, milliseconds.
/// One fixed width, so that text order is time order.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
