//! The OTLP export's bounded queue, and its counts for `/metrics`.
//!
//! The SDK's batch processor drops a span silently when its queue is full. Here the
//! processor sits behind [`Admitted`], which counts the spans it holds (ended, not yet
//! through the exporter, [`Counted`]) and drops, counted, a span that would overflow it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Spans ended and not yet through the exporter (queued or being sent).
static WAITING: AtomicUsize = AtomicUsize::new(0);
/// Spans dropped because [`WAITING`] was at the queue's size; spans exported.
static DROPPED: AtomicU64 = AtomicU64::new(0);
static EXPORTED: AtomicU64 = AtomicU64::new(0);

/// The batch processor, behind a count of the spans it holds: a span that would find its
/// queue full is dropped here and counted (the SDK drops it silently), so `/metrics` can
/// say how many a slow or absent collector cost.
#[derive(Debug)]
pub(super) struct Admitted {
    pub(super) inner: opentelemetry_sdk::trace::BatchSpanProcessor,
    pub(super) queue: usize,
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
pub(super) struct Counted<E> {
    pub(super) inner: E,
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
        WAITING.fetch_sub(n, Ordering::Relaxed);
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
    if !super::exporting() {
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
