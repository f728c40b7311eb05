//! One order's trace: its `traceparent`, and the chain of spans from the request through
//! every hop, each the child of the one before.

use opentelemetry_proto::tonic::trace::v1::Span;

use super::collector::{attribute, hex, is_named, named};

/// A trace id of the test's own (32 hex digits).
pub fn new_trace_id() -> String {
    format!("{:032x}", rand::random::<u128>() | 1)
}

/// POSTs `order` to the order-service at `base`, with a `traceparent` in trace
/// `trace_id` (the caller's span 00f067aa0ba902b7); the order must be accepted.
pub async fn post_traced(
    http: &reqwest::Client,
    base: &str,
    trace_id: &str,
    order: serde_json::Value,
) -> reqwest::Response {
    let response = http
        .post(format!("{base}/api/orders"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response
}

/// POSTs `order` as [`post_traced`] does, in a new trace of the test's own; that trace's id.
pub async fn post_in_a_new_trace(
    http: &reqwest::Client,
    base: &str,
    order: serde_json::Value,
) -> String {
    let trace_id = new_trace_id();
    post_traced(http, base, &trace_id, order).await;
    trace_id
}

/// The spans of one order's trace: from its POST to both consumers of `inventory.reserved`.
pub fn has_every_hop(spans: &[Span]) -> bool {
    let wanted = [
        "POST /api/orders",
        "send order.created",
        "process order.created",
        "send inventory.reserved",
    ];
    wanted.iter().all(|w| spans.iter().any(|s| is_named(s, w)))
        && named(spans, "process inventory.reserved").len() >= 2
}

/// Each span of the chain hangs under a span of the hop before, the first under the
/// caller's: the chain is unbroken.
pub fn assert_one_chain(spans: &[Span], caller_span: &str) {
    if std::env::var_os("OPENORDER_TEST_SHOW_TRACE").is_some() {
        for s in spans {
            eprintln!(
                "{} {} <- {} {:?}",
                hex(&s.span_id),
                s.name,
                hex(&s.parent_span_id),
                s.kind
            );
        }
    }
    let server = named(spans, "POST /api/orders")[0];
    assert_eq!(
        hex(&server.parent_span_id),
        caller_span,
        "the caller's span is the parent"
    );
    assert_eq!(
        attribute(server, "http.route").as_deref(),
        Some("/api/orders")
    );
    assert_eq!(
        attribute(server, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attribute(server, "http.response.status_code").as_deref(),
        Some("202")
    );
    let sent = named(spans, "send order.created")[0];
    assert_eq!(sent.kind, 4, "PRODUCER");
    assert!(attribute(sent, "messaging.message.id").is_some_and(|id| !id.is_empty()));
    for span in spans.iter().filter(|s| s.name.starts_with("process ")) {
        assert_eq!(span.kind, 5, "CONSUMER");
        assert_eq!(
            attribute(span, "messaging.system").as_deref(),
            Some("kafka")
        );
        let topic = span.name.trim_start_matches("process ");
        assert!(attribute(span, "messaging.destination.name")
            .unwrap()
            .ends_with(topic));
        assert!(
            attribute(span, "messaging.consumer.group.name").is_some_and(|g| !g.is_empty()),
            "{} names its consumer group",
            span.name
        );
        for key in [
            "messaging.destination.partition.id",
            "messaging.kafka.offset",
            "messaging.kafka.message.key",
            "messaging.message.id",
        ] {
            assert!(attribute(span, key).is_some(), "{} has {key}", span.name);
        }
    }
    let groups: std::collections::HashSet<String> = named(spans, "process inventory.reserved")
        .iter()
        .filter_map(|s| attribute(s, "messaging.consumer.group.name"))
        .collect();
    assert_eq!(groups.len(), 2, "two groups process inventory.reserved");
    let ids: std::collections::HashSet<String> = spans.iter().map(|s| hex(&s.span_id)).collect();
    for span in spans
        .iter()
        .filter(|s| s.name.starts_with("process ") || s.name.starts_with("send "))
    {
        assert!(
            ids.contains(&hex(&span.parent_span_id)),
            "{} has its parent in the trace",
            span.name
        );
    }
}

/// The services' transactions are spans of the trace, naming their database.
pub fn assert_transactions_on(spans: &[Span], system: &str) {
    let transactions = named(spans, "TRANSACTION");
    assert!(!transactions.is_empty(), "transaction spans in the trace");
    for t in transactions {
        assert_eq!(t.kind, 3, "CLIENT");
        assert_eq!(attribute(t, "db.system.name").as_deref(), Some(system));
    }
}

/// [`has_every_hop`], and the webhook's request too.
pub fn has_every_hop_and_the_webhook(spans: &[Span]) -> bool {
    has_every_hop(spans) && !named(spans, "POST").is_empty()
}
