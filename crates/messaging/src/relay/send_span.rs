//! The PRODUCER span of each outbox row the relay sends.

use std::collections::HashMap;

use contracts::headers;

use crate::spans::messaging_span;

/// With traces on, the PRODUCER span of one outbox row's record: `send <topic>`, the child
/// of the context the row was written in (semantic conventions 1.37: `messaging.system`,
/// `messaging.destination.name`, `messaging.kafka.message.key`, `messaging.message.id`),
/// from the relay's produce to the broker's acknowledgement. The record itself carries the
/// writing context, as stored.
pub(super) fn send_span(
    service: &str,
    topic: &str,
    key: &str,
    headers: &HashMap<String, String>,
) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !telemetry::traces_enabled() {
        return tracing::Span::none();
    }
    let parent = telemetry::parent_or_root(telemetry::context_from(
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ));
    if telemetry::left_out(&parent) {
        // The record carries the stored context as it is; a span here would be recorded
        // by no one.
        return tracing::Span::none();
    }
    let span = messaging_span!(
        "messaging.send",
        "send",
        "producer",
        service,
        topic,
        messaging.kafka.message.key = %key,
        messaging.message.id = headers.get(headers::EVENT_ID).map(String::as_str).unwrap_or(""),
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(parent);
    span
}
