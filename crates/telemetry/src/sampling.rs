//! Sampling decided where a trace begins, before any span is made ([`parent_or_root`]), and
//! what a trace the sampler left out still makes ([`left_out`], [`left_out_span`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{set_parent, traces_enabled};

/// Does the sampler follow a parent's decision (the default, `parentbased_*`)? Then a
/// child of a context the sampler left out is recorded by no one ([`left_out`]).
pub(crate) static FOLLOWS_PARENT: AtomicBool = AtomicBool::new(true);

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
pub(crate) static ROOT_RATIO: AtomicU64 = AtomicU64::new(0x3FF0_0000_0000_0000); // 1.0

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
pub(crate) fn root_ratio() -> Option<f64> {
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
