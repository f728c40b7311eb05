//! The OTLP export's bounded queue, and its counts for `/metrics`.
//!
//! The SDK's batch processor drops a span silently when its queue is full. Here the
//! processor sits behind [`Admitted`], which counts the spans it holds (ended, not yet
//! through the exporter, [`Counted`]) and drops, counted, a span that would overflow it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Spans ended and not yet through the exporter (queued or being sent).
static WAITING: AtomicUsize = AtomicUsize::new(0);
/// Spans dropped because [`WAITING`] was at the queue's size; spans exported.
static DROPPED: AtomicU64 = AtomicU64::new(0);
static EXPORTED: AtomicU64 = AtomicU64::new(0);

/// The batch processors (one per service when several services share the process, as
/// under `up`), behind a count of the spans they hold: a span that would find the queue
/// full is dropped here and counted (the SDK drops it silently), so `/metrics` can say how
/// many a slow or absent collector cost.
///
/// Which service a span belongs to: its own [`super::SERVICE`] attribute (the spans that
/// begin a service's work: HTTP server, `process`, `send`, the webhook's request), else its
/// parent's in this process; spans of neither go to the first processor (the process's own
/// name). Each processor's exporter reports its service as `service.name`.
#[derive(Debug)]
pub(super) struct Admitted {
    /// `(service, processor)`; the first is the process's own.
    pub(super) by_service: Vec<(String, opentelemetry_sdk::trace::BatchSpanProcessor)>,
    pub(super) queue: usize,
    /// The service index of each span started and not yet ended (when there are several).
    pub(super) of_span: Mutex<HashMap<opentelemetry::trace::SpanId, usize>>,
}

impl Admitted {
    /// The service index of a span starting under `cx`, remembered until it ends: its
    /// parent's in this process, else the one its attribute names.
    fn start(&self, span: &opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) -> usize {
        use opentelemetry::trace::{Span as _, TraceContextExt};
        let id = span.span_context().span_id();
        let parent = cx.span().span_context().clone();
        if parent.is_valid() && !parent.is_remote() {
            let mut of_span = lock(&self.of_span);
            if let Some(&i) = of_span.get(&parent.span_id()) {
                of_span.insert(id, i);
                return i;
            }
        }
        // A span that begins a service's work (its parent remote, or none): rarer, and
        // its attributes are read only by copying them out.
        let i = span
            .exported_data()
            .and_then(|data| {
                let named = data
                    .attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == super::SERVICE)?
                    .value
                    .as_str()
                    .into_owned();
                self.by_service.iter().position(|(s, _)| *s == named)
            })
            .unwrap_or(0);
        lock(&self.of_span).insert(id, i);
        i
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl opentelemetry_sdk::trace::SpanProcessor for Admitted {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        let i = if self.by_service.len() > 1 {
            self.start(span, cx)
        } else {
            0
        };
        self.by_service[i].1.on_start(span, cx);
    }

    fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
        let i = if self.by_service.len() > 1 {
            lock(&self.of_span)
                .remove(&span.span_context.span_id())
                .unwrap_or(0)
        } else {
            0
        };
        if WAITING.fetch_add(1, Ordering::Relaxed) >= self.queue {
            WAITING.fetch_sub(1, Ordering::Relaxed);
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.by_service[i].1.on_end(span);
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        for (_, p) in &self.by_service {
            p.force_flush()?;
        }
        Ok(())
    }

    fn shutdown_with_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        // Each is given the whole bound, and they are shut down side by side, so that
        // together they take no longer than it.
        std::thread::scope(|scope| {
            let shutdowns: Vec<_> = self
                .by_service
                .iter()
                .map(|(_, p)| scope.spawn(move || p.shutdown_with_timeout(timeout)))
                .collect();
            let mut result = Ok(());
            for shutdown in shutdowns {
                match shutdown.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => result = Err(err),
                    Err(_) => {
                        result = Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                            "a span processor's shutdown panicked".into(),
                        ))
                    }
                }
            }
            result
        })
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        let first = self.by_service.first().map(|(s, _)| s.clone());
        for (service, p) in &mut self.by_service {
            if Some(&*service) == first.as_ref() {
                p.set_resource(resource);
                continue;
            }
            let own = opentelemetry_sdk::Resource::builder_empty()
                .with_attributes(
                    resource
                        .iter()
                        .map(|(k, v)| opentelemetry::KeyValue::new(k.clone(), v.clone())),
                )
                .with_service_name(service.clone())
                .build();
            p.set_resource(&own);
        }
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
        &crate::catalogue::TRACE_SPANS_EXPORTED,
        &[],
        EXPORTED.load(Ordering::Relaxed),
    );
    metrics.set_counter(
        &crate::catalogue::TRACE_SPANS_DROPPED,
        &[],
        DROPPED.load(Ordering::Relaxed),
    );
}
