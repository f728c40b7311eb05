//! A fake OTLP collector on loopback (OTLP/HTTP protobuf, decoded as a collector decodes
//! it) that keeps every span it receives, and what the tests ask of spans: their names,
//! ids and attributes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// Every span the collector received, and the `service.name` of each one's resource (by
/// span id).
#[derive(Clone, Default)]
pub struct Collector(
    Arc<Mutex<Vec<Span>>>,
    Arc<Mutex<std::collections::HashMap<Vec<u8>, String>>>,
);

impl Collector {
    /// Starts the collector on a thread and runtime of its own (it outlives any one
    /// test's runtime); returns its base URL.
    pub fn start(&self) -> String {
        let (tx, rx) = std::sync::mpsc::channel();
        let this = self.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    tx.send(this.serve().await).unwrap();
                    std::future::pending::<()>().await
                })
        });
        rx.recv().unwrap()
    }

    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let spans = self.0.clone();
        let services = self.1.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let spans = spans.clone();
                let services = services.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut all = spans.lock().unwrap();
                    let mut of = services.lock().unwrap();
                    for resource in request.resource_spans {
                        let service = resource
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|a| a.key == "service.name")
                            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => Some(s.clone()),
                                _ => None,
                            })
                            .unwrap_or_default();
                        for scope in resource.scope_spans {
                            for span in &scope.spans {
                                of.insert(span.span_id.clone(), service.clone());
                            }
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

    pub fn spans(&self) -> Vec<Span> {
        self.0.lock().unwrap().clone()
    }

    /// The `service.name` `span` was reported under.
    pub fn service_of(&self, span: &Span) -> String {
        self.1
            .lock()
            .unwrap()
            .get(&span.span_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The spans of trace `trace_id` once `complete` holds for them (at most 60 s).
    pub async fn wait_trace(
        &self,
        trace_id: &str,
        complete: impl Fn(&[Span]) -> bool,
    ) -> Vec<Span> {
        self.wait(|s| hex(&s.trace_id) == trace_id, complete).await
    }

    /// The spans `keep` selects once `complete` holds for them (at most 60 s).
    pub async fn wait(
        &self,
        keep: impl Fn(&Span) -> bool,
        complete: impl Fn(&[Span]) -> bool,
    ) -> Vec<Span> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let spans: Vec<Span> = self.spans().into_iter().filter(|s| keep(s)).collect();
            if complete(&spans) {
                return spans;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the spans are incomplete: {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `bytes` in lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans called `name`; a messaging span's topic may carry the deployment's prefix
/// (`send t1a2b.order.created` is `send order.created`).
pub fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| is_named(s, name)).collect()
}

/// Is `span` called `name` (as [`named`] says)?
pub fn is_named(span: &Span, name: &str) -> bool {
    if span.name == name {
        return true;
    }
    match name.split_once(' ') {
        Some((op @ ("send" | "process"), topic)) => span
            .name
            .strip_prefix(op)
            .is_some_and(|rest| rest.ends_with(&format!(".{topic}"))),
        _ => false,
    }
}

/// The value of `span`'s attribute `key`, as text.
pub fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            other => Some(format!("{other:?}")),
        }
    })
}
