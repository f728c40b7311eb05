//! W3C trace context (`traceparent`, `tracestate`) carried in headers, records and rows:
//! taken from a span, read back into a context, made a span's parent.

use crate::traces_enabled;

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
