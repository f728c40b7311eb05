//! One order is one trace: `openorder up` exporting to a fake OTLP collector on loopback
//! (OTLP/HTTP protobuf, decoded here as a collector decodes it). The POST continues the
//! caller's `traceparent`; `order.created` carries the request's context through the
//! outbox; inventory-service's processing of it, the `inventory.reserved` it writes, and
//! order-service's and notification-service's processing of that are all in the same trace,
//! each the child of the one before.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use support::{UpPorts, UpProcess};

/// Every span the collector received.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

impl Collector {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let spans = self.0.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let spans = spans.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut all = spans.lock().unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            all.extend(scope.spans);
                        }
                    }
                    axum::http::StatusCode::OK
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    fn spans(&self) -> Vec<Span> {
        self.0.lock().unwrap().clone()
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            other => Some(format!("{other:?}")),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_from_the_request_through_every_hop() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let data = support::temp_dir("traces");
    let ports = UpPorts::free();
    let up = UpProcess::start_with_env(
        &data,
        &ports,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/api/orders", up.order_url))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let wanted = [
        "POST /api/orders",
        "send order.created",
        "process order.created",
        "send inventory.reserved",
        "process inventory.reserved",
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let spans = loop {
        let spans: Vec<Span> = collector
            .spans()
            .into_iter()
            .filter(|s| hex(&s.trace_id) == trace_id)
            .collect();
        let processed_by_two = spans
            .iter()
            .filter(|s| s.name == "process inventory.reserved")
            .count()
            >= 2;
        if wanted.iter().all(|w| spans.iter().any(|s| s.name == *w)) && processed_by_two {
            break spans;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the trace is incomplete: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    up.stop();
    if std::env::var_os("OPENORDER_TEST_SHOW_TRACE").is_some() {
        for s in &spans {
            eprintln!(
                "{} {} <- {} {:?}",
                hex(&s.span_id),
                s.name,
                hex(&s.parent_span_id),
                s.kind
            );
        }
    }
    let by_name = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let server = by_name("POST /api/orders")[0];
    assert_eq!(
        hex(&server.parent_span_id),
        "00f067aa0ba902b7",
        "the caller's span is the parent"
    );
    assert_eq!(
        attribute(server, "http.route").as_deref(),
        Some("/api/orders")
    );
    assert_eq!(
        attribute(server, "http.response.status_code").as_deref(),
        Some("202")
    );
    let sent = by_name("send order.created")[0];
    assert_eq!(sent.kind, 4, "PRODUCER");
    assert!(attribute(sent, "messaging.message.id").is_some_and(|id| !id.is_empty()));
    let created = by_name("process order.created");
    assert!(!created.is_empty());
    for span in &created {
        assert_eq!(
            attribute(span, "messaging.system").as_deref(),
            Some("kafka")
        );
        assert!(attribute(span, "messaging.destination.name")
            .unwrap()
            .ends_with("order.created"));
    }
    // Each processing span hangs under a span of the hop before: the chain is unbroken.
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
