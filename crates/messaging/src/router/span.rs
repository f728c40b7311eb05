//! The CONSUMER spans of the runs of records the router applies, and of each record in them.

use super::Item;
use crate::record::Record;
use crate::spans::messaging_span;

/// With traces on, the CONSUMER span of a run of records of one topic: `process <topic>`
/// (semantic conventions 1.37: `messaging.system`, `messaging.operation.type`,
/// `messaging.destination.name`, `messaging.consumer.group.name`, and for one record its
/// partition, offset, key and event id). A record applied alone: its span is the run's,
/// the child of the context the record carries. A run of several: the run's span is linked
/// to each record's context, and each record gets a `process <topic>` span of its own
/// inside it, linked to its context (the conventions' rule for batches). Events written
/// for a record carry its span's context ([`Delivered::span`](super::Delivered::span)).
/// Under a trace the sampler left out, bare spans or none ([`telemetry::left_out`]).
pub(super) fn process_span(run: &mut [Item<'_>], service: &str, group: &str) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !telemetry::traces_enabled() {
        return tracing::Span::none();
    }
    let Some(first) = run.first() else {
        return tracing::Span::none();
    };
    let topic = first.record.topic.clone();
    // The run's span (its parent the current span, as a span made here without one would
    // have) names the service and counts the run; a record's span inside it does neither.
    let span = |parent: Option<tracing::Id>, service: Option<&str>, count: Option<usize>| {
        messaging_span!(
            parent: parent,
            "messaging.process",
            "process",
            "consumer",
            service,
            topic,
            messaging.consumer.group.name = group,
            messaging.batch.message_count = count,
            error.type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            messaging.destination.partition.id = tracing::field::Empty,
            messaging.kafka.offset = tracing::field::Empty,
            messaging.kafka.message.key = tracing::field::Empty,
            messaging.message.id = tracing::field::Empty,
        )
    };
    let describe = |span: &tracing::Span, record: &Record| {
        span.record(
            "messaging.destination.partition.id",
            record.partition.to_string(),
        );
        span.record("messaging.kafka.offset", record.offset);
        if let Some(key) = record
            .key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
        {
            span.record("messaging.kafka.message.key", key);
        }
        if let Some(id) = record.header(contracts::headers::EVENT_ID) {
            span.record("messaging.message.id", id);
        }
    };
    if let [only] = run {
        let cx = telemetry::parent_or_root(only.record.trace_context());
        if telemetry::left_out(&cx) {
            // Recorded by no one: a bare span, there only to carry the record's context
            // on to what it causes.
            let bare = telemetry::left_out_span(cx);
            only.span = bare.clone();
            return bare;
        }
        let run_span = span(tracing::Span::current().id(), Some(service), Some(1));
        describe(&run_span, only.record);
        let _ = run_span.set_parent(cx);
        only.span = run_span.clone();
        return run_span;
    }
    // A batch begins a trace of its own (linked to its records').
    let root = telemetry::parent_or_root(opentelemetry::Context::new());
    if telemetry::left_out(&root) {
        // Left out by the sampler: no span per record either; what the records cause
        // continues the batch's context, left out too.
        let bare = telemetry::left_out_span(root);
        for item in run.iter_mut() {
            item.span = bare.clone();
        }
        return bare;
    }
    let run_span = span(
        tracing::Span::current().id(),
        Some(service),
        Some(run.len()),
    );
    use opentelemetry::trace::TraceContextExt;
    for item in run.iter_mut() {
        let linked = item.record.trace_context().span().span_context().clone();
        let own = span(run_span.id(), None, None);
        describe(&own, item.record);
        if linked.is_valid() {
            run_span.add_link(linked.clone());
            own.add_link(linked);
        }
        item.span = own;
    }
    run_span
}
