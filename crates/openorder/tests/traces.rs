//! One order is one trace, checked against a fake OTLP collector on loopback (OTLP/HTTP
//! protobuf, decoded here as a collector decodes it). The POST continues the caller's
//! `traceparent`; `order.created` carries the request's context through the outbox;
//! inventory-service's processing of it, the `inventory.reserved` it writes, order-service's
//! and notification-service's processing of that, and the webhook request are all in the
//! same trace, each the child of the one before: with `openorder up` on the embedded broker
//! (a process of its own) and with the services on Apache Kafka and PostgreSQL (in this
//! process, whose telemetry is set up once for all such tests, [`in_process`]). A batch is
//! one span linked to each record, with a span per record inside it; a replay links back;
//! JSON log lines carry the ids of their span.
//!
//! A test binary of its own, apart from `tests/e2e`: it sets the OpenTelemetry variables
//! and installs this process's telemetry ([`in_process`]), which every other test's
//! services, and the processes they start, would pick up. It shares `e2e`'s support.

#[path = "e2e/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use support::receivers::{Behaviour, WebhookReceiver};
use support::{BrokerKind, DbKind, Stack, StackOptions, UpPorts, UpProcess};

/// Every span the collector received, and the `service.name` of each one's resource (by
/// span id).
#[derive(Clone, Default)]
struct Collector(
    Arc<Mutex<Vec<Span>>>,
    Arc<Mutex<std::collections::HashMap<Vec<u8>, String>>>,
);

impl Collector {
    /// Starts the collector on a thread and runtime of its own (it outlives any one
    /// test's runtime); returns its base URL.
    fn start(&self) -> String {
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

    fn spans(&self) -> Vec<Span> {
        self.0.lock().unwrap().clone()
    }

    /// The `service.name` `span` was reported under.
    fn service_of(&self, span: &Span) -> String {
        self.1
            .lock()
            .unwrap()
            .get(&span.span_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The spans of trace `trace_id` once `complete` holds for them (at most 60 s).
    async fn wait_trace(&self, trace_id: &str, complete: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        self.wait(|s| hex(&s.trace_id) == trace_id, complete).await
    }

    /// The spans `keep` selects once `complete` holds for them (at most 60 s).
    async fn wait(
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans called `name`; a messaging span's topic may carry the deployment's prefix
/// (`send t1a2b.order.created` is `send order.created`).
fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| is_named(s, name)).collect()
}

fn is_named(span: &Span, name: &str) -> bool {
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

/// A trace id of the test's own (32 hex digits).
fn new_trace_id() -> String {
    format!("{:032x}", rand::random::<u128>() | 1)
}

/// POSTs `order` to the order-service at `base`, with a `traceparent` in trace
/// `trace_id` (the caller's span 00f067aa0ba902b7); the order must be accepted.
async fn post_traced(
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

/// The spans of one order's trace: from its POST to both consumers of `inventory.reserved`.
fn has_every_hop(spans: &[Span]) -> bool {
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
fn assert_one_chain(spans: &[Span], caller_span: &str) {
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
fn assert_transactions_on(spans: &[Span], system: &str) {
    let transactions = named(spans, "TRANSACTION");
    assert!(!transactions.is_empty(), "transaction spans in the trace");
    for t in transactions {
        assert_eq!(t.kind, 3, "CLIENT");
        assert_eq!(attribute(t, "db.system.name").as_deref(), Some(system));
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
async fn one_order_is_one_trace_from_the_request_through_every_hop_to_the_webhook() {
    let collector = Collector::default();
    let endpoint = collector.start();
    let hook = WebhookReceiver::start(Behaviour::FailFirst(0)).await;
    let data = support::temp_dir("traces");
    let ports = UpPorts::free().expect("free ports");
    let up = UpProcess::start_with_env(
        &data,
        &ports,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            (
                "OPENORDER_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            ("OPENORDER_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8"),
        ],
    )
    .await;
    let trace_id = new_trace_id();
    let http = reqwest::Client::new();
    post_traced(
        &http,
        &up.order_url,
        &trace_id,
        json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 1}],
                      "contact": {"webhookUrl": hook.url}}),
    )
    .await;
    let spans = collector
        .wait_trace(&trace_id, |spans| {
            has_every_hop(spans) && !named(spans, "POST").is_empty()
        })
        .await;
    assert_one_chain(&spans, "00f067aa0ba902b7");
    assert_transactions_on(&spans, "sqlite");

    // Under `up` the three services share a process, yet each is a service of its own.
    let services_of = |name: &str| -> std::collections::BTreeSet<String> {
        named(&spans, name)
            .iter()
            .map(|s| collector.service_of(s))
            .collect()
    };
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    assert_eq!(services_of("POST /api/orders"), set(&["order-service"]));
    assert_eq!(services_of("send order.created"), set(&["order-service"]));
    assert_eq!(
        services_of("process order.created"),
        set(&["inventory-service", "notification-service"])
    );
    assert_eq!(
        services_of("send inventory.reserved"),
        set(&["inventory-service"])
    );
    assert_eq!(
        services_of("process inventory.reserved"),
        set(&["order-service", "notification-service"])
    );
    assert_eq!(services_of("POST"), set(&["notification-service"]));
    // A span that names no service is its parent's: each transaction is its service's.
    let mut of_services = std::collections::BTreeSet::new();
    for t in named(&spans, "TRANSACTION") {
        let parent = spans
            .iter()
            .find(|s| s.span_id == t.parent_span_id)
            .unwrap();
        assert_eq!(collector.service_of(t), collector.service_of(parent));
        of_services.insert(collector.service_of(t));
    }
    assert!(of_services.contains("order-service") && of_services.contains("inventory-service"));

    // The webhook request continues the trace: its traceparent is the client span's.
    let client = named(&spans, "POST")[0];
    assert_eq!(client.kind, 3, "CLIENT");
    assert_eq!(
        attribute(client, "http.response.status_code").as_deref(),
        Some("204")
    );
    assert_eq!(
        attribute(client, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    let received = hook.wait_requests(1).await;
    assert_eq!(
        received[0].header("traceparent"),
        format!("00-{trace_id}-{}-01", hex(&client.span_id)),
        "the receiver can continue the trace"
    );

    // What reached the collector is counted.
    let counted = |series| support::metric(&http, &up.order_url, series);
    let exported = counted("openorder_trace_spans_exported_total").await;
    assert!(exported.is_some_and(|n| n > 0), "{exported:?}");
    let dropped = counted("openorder_trace_spans_dropped_total").await;
    assert_eq!(dropped, Some(0));
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_the_sampler_leaves_out_make_no_span_and_reach_the_webhook_still_left_out() {
    let collector = Collector::default();
    let endpoint = collector.start();
    let hook = WebhookReceiver::start(Behaviour::FailFirst(0)).await;
    let data = support::temp_dir("traces-left-out");
    let ports = UpPorts::free().expect("free ports");
    let up = UpProcess::start_with_env(
        &data,
        &ports,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            // New traces are left out; a caller's decision is followed.
            ("OTEL_TRACES_SAMPLER", "parentbased_always_off"),
            (
                "OPENORDER_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            ("OPENORDER_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let order = json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 1}],
                       "contact": {"webhookUrl": hook.url}});
    // One order without a traceparent (a new trace, left out here), then, once it is
    // through (so that each record is applied alone, not in a batch of its own trace), one
    // whose caller left its trace out (flags 00).
    let caller_left_out = new_trace_id();
    let mut received = Vec::new();
    for traceparent in [
        None,
        Some(format!("00-{caller_left_out}-00f067aa0ba902b7-00")),
    ] {
        let mut request = http.post(format!("{}/api/orders", up.order_url));
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let response = request.json(&order).send().await.unwrap();
        assert_eq!(response.status(), 202);
        received = hook.wait_requests(received.len() + 1).await;
    }
    let mut traces = Vec::new();
    for request in &received {
        let traceparent = request.header("traceparent");
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        assert_eq!(
            (parts[0], parts[2].len(), parts[3]),
            ("00", 16, "00"),
            "the webhook request continues a trace, still left out: {traceparent}"
        );
        traces.push(parts[1].to_string());
    }
    assert_eq!(
        traces[1], caller_left_out,
        "the caller's trace id travels on"
    );
    assert_ne!(traces[0], caller_left_out);

    // An order its caller sampled is traced all the same; once its spans are in, any of
    // the two before it would be too.
    let sampled = new_trace_id();
    post_traced(&http, &up.order_url, &sampled, order).await;
    hook.wait_requests(3).await;
    collector
        .wait_trace(&sampled, |spans| {
            has_every_hop(spans) && !named(spans, "POST").is_empty()
        })
        .await;
    let others: Vec<String> = collector
        .spans()
        .iter()
        .filter(|s| hex(&s.trace_id) != sampled)
        .map(|s| format!("{} in {}", s.name, hex(&s.trace_id)))
        .collect();
    assert!(others.is_empty(), "spans of traces left out: {others:?}");
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_carry_the_trace_and_span_ids_of_their_span_without_a_collector() {
    let data = support::temp_dir("json-logs");
    let ports = UpPorts::free().expect("free ports");
    // RUST_LOG named here: this process's own (see [`in_process`]) would pass down.
    let log_filter = platform::telemetry::default_log();
    let up = UpProcess::start_with_env(
        &data,
        &ports,
        &[("OPENORDER_LOG_FORMAT", "json"), ("RUST_LOG", &log_filter)],
    )
    .await;
    let trace_id = new_trace_id();
    let http = reqwest::Client::new();
    post_traced(
        &http,
        &up.order_url,
        &trace_id,
        json!({"userId": 7, "items": [{"sku": "ABC-001", "qty": 1}]}),
    )
    .await;
    let log = data.with_extension("log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let reserved = lines
            .iter()
            .any(|l| l["message"] == "order reserved" && l["trace_id"] == trace_id.as_str());
        if reserved {
            break lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `order reserved` line in trace {trace_id}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    up.stop();
    let ours: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["trace_id"] == trace_id.as_str())
        .collect();
    for line in &ours {
        for key in ["timestamp", "level", "target", "message", "spans"] {
            assert!(!line[key].is_null(), "{key} in {line}");
        }
        let span_id = line["span_id"].as_str().unwrap();
        assert_eq!(span_id.len(), 16, "{line}");
        assert_ne!(
            span_id, "00f067aa0ba902b7",
            "the line's own span, not the caller's"
        );
    }
    let reserved = ours
        .iter()
        .find(|l| l["message"] == "order reserved")
        .unwrap();
    assert_eq!(reserved["level"], "INFO");
    assert!(reserved["fields"]["order_id"].is_i64(), "{reserved}");
    // Lines outside any span are JSON too, without ids.
    assert!(lines
        .iter()
        .any(|l| l["trace_id"].is_null() && l["message"].as_str().is_some()));
}

/// The collector the in-process services of this binary export to: telemetry is set up
/// once per process, so every test here that runs a [`Stack`] shares it (each looks only
/// at its own traces).
fn in_process() -> &'static Collector {
    static COLLECTOR: OnceLock<Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let collector = Collector::default();
        let endpoint = collector.start();
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
        std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
        std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "200");
        // The services' lines go to stderr, past the harness's capture: warnings only.
        if std::env::var_os("RUST_LOG").is_none() {
            std::env::set_var("RUST_LOG", "warn,rdkafka=off,librdkafka=off");
        }
        platform::telemetry::init("openorder-tests", platform::telemetry::LogFormat::Text);
        assert!(platform::telemetry::traces_enabled());
        collector
    })
}

async fn kafka_stack() -> Option<Stack> {
    in_process();
    Stack::spawn(BrokerKind::Kafka, DbKind::Postgres, StackOptions::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_on_apache_kafka_with_postgresql_too() {
    let collector = in_process();
    let Some(stack) = kafka_stack().await else {
        return;
    };
    let trace_id = new_trace_id();
    post_traced(
        &stack.http,
        &stack.order_url,
        &trace_id,
        json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 1}]}),
    )
    .await;
    let spans = collector.wait_trace(&trace_id, has_every_hop).await;
    assert_one_chain(&spans, "00f067aa0ba902b7");
    assert_transactions_on(&spans, "postgresql");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_one_span_linked_to_each_record_with_a_span_per_record_inside_it() {
    let collector = in_process();
    let Some(stack) = kafka_stack().await else {
        return;
    };
    let topic = stack.topics().order_created();
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &stack.broker.bootstrap)
        .set("linger.ms", "300")
        .create()
        .unwrap();
    // Records sent together are fetched together, and so applied as one batch; tried a
    // few times, in case the consumer fetched the first of them alone.
    for _round in 0..5 {
        let traces: Vec<String> = (0..5).map(|_| new_trace_id()).collect();
        let base = 800_000_000 + rand::random_range(0..99_999_999i64);
        let sends = traces.iter().enumerate().map(|(i, trace_id)| {
            let order_id = base + i as i64;
            let value = serde_json::to_vec(&contracts::OrderCreated {
                event_id: contracts::new_event_id(),
                order_id,
                user_id: 5,
                items: vec![contracts::LineItem {
                    sku: "ABC-001".into(),
                    qty: 1,
                }],
                created_at: chrono::Utc::now(),
                contact: None,
            })
            .unwrap();
            let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
            let event_id = contracts::new_event_id().to_string();
            let headers = rdkafka::message::OwnedHeaders::new()
                .insert(rdkafka::message::Header {
                    key: "traceparent",
                    value: Some(traceparent.as_bytes()),
                })
                .insert(rdkafka::message::Header {
                    key: "event-id",
                    value: Some(event_id.as_bytes()),
                });
            let key = order_id.to_string();
            let producer = producer.clone();
            let topic = topic.clone();
            async move {
                producer
                    .send(
                        rdkafka::producer::FutureRecord::to(&topic)
                            .key(&key)
                            .payload(&value)
                            .headers(headers),
                        Duration::from_secs(10),
                    )
                    .await
                    .expect("record produced");
            }
        });
        futures_util::future::join_all(sends).await;
        let linked_to =
            |span: &Span| -> Vec<String> { span.links.iter().map(|l| hex(&l.trace_id)).collect() };
        let ours = |span: &Span| {
            traces.contains(&hex(&span.trace_id))
                || linked_to(span).iter().any(|t| traces.contains(t))
        };
        // Each record's processing: a span in its own trace (applied alone), or a record
        // span linked to it inside a batch's.
        let spans = collector
            .wait(
                |s| s.name == format!("process {topic}") && ours(s),
                |spans| {
                    traces.iter().all(|t| {
                        spans.iter().any(|s| {
                            &hex(&s.trace_id) == t
                                || (s.links.len() == 1 && &hex(&s.links[0].trace_id) == t)
                        })
                    })
                },
            )
            .await;
        // inventory-service's batch (notification-service reads order.created too).
        let Some(batch) = spans.iter().find(|s| {
            s.links.len() >= 2
                && attribute(s, "messaging.consumer.group.name")
                    .is_some_and(|g| g.ends_with("inventory-service"))
        }) else {
            continue;
        };
        let count: usize = attribute(batch, "messaging.batch.message_count")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(count, batch.links.len(), "a link per record");
        assert!(
            !traces.contains(&hex(&batch.trace_id)),
            "the batch's trace is its own, not one of its records'"
        );
        let inside: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent_span_id == batch.span_id)
            .collect();
        assert_eq!(inside.len(), count, "a span per record inside the batch's");
        for span in inside {
            assert_eq!(span.links.len(), 1, "linked to its own record's context");
            assert!(batch
                .links
                .iter()
                .any(|l| l.trace_id == span.links[0].trace_id));
            assert!(attribute(span, "messaging.kafka.offset").is_some());
            assert!(attribute(span, "messaging.message.id").is_some());
        }
        // What a record of the batch caused hangs under that record's span.
        let record_spans: std::collections::HashSet<Vec<u8>> = spans
            .iter()
            .filter(|s| s.parent_span_id == batch.span_id)
            .map(|s| s.span_id.clone())
            .collect();
        let sent = collector
            .wait(
                |s| {
                    s.trace_id == batch.trace_id
                        && (is_named(s, "send inventory.reserved")
                            || is_named(s, "send inventory.rejected"))
                },
                |sent| sent.len() >= count,
            )
            .await;
        let reserved_parent: std::collections::HashSet<Vec<u8>> =
            sent.iter().map(|s| s.parent_span_id.clone()).collect();
        assert_eq!(
            reserved_parent, record_spans,
            "each decision's event is sent under its own record's span"
        );
        stack.stop().await;
        return;
    }
    panic!("five rounds of records sent together were never applied as one batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_dead_letter_starts_a_span_linked_to_the_trace_of_the_record_that_failed() {
    let collector = in_process();
    let Some(stack) = kafka_stack().await else {
        return;
    };
    let trace_id = new_trace_id();
    let response = post_traced(
        &stack.http,
        &stack.order_url,
        &trace_id,
        json!({"userId": 3, "items": [{"sku": "FAIL", "qty": 1}]}),
    )
    .await;
    let id: i64 = response.json::<serde_json::Value>().await.unwrap()["orderId"]
        .as_i64()
        .unwrap();
    assert_eq!(stack.settled_order(id).await["status"], "FAILED");
    // Each failed try is a process span that says why.
    collector
        .wait_trace(&trace_id, |spans| {
            named(spans, "process order.created").iter().any(|s| {
                attribute(s, "error.type").as_deref() == Some("openorder.SimulatedFailure")
            })
        })
        .await;
    // The dead letter keeps the traceparent of the record that failed.
    let topics = stack.topics();
    let letter = stack
        .wait_record(&topics.order_created_dlt(), &id.to_string())
        .await;
    assert!(letter
        .header_text("traceparent")
        .is_some_and(|t| t.contains(&trace_id)));
    let replayed = stack
        .http
        .post(format!("{}/admin/dlt/replay", stack.inventory_url))
        .json(&json!({"topic": topics.order_created_dlt(), "orderId": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 200);
    let created = topics.order_created();
    // The operator's request links to the failed record's trace, and the replayed record
    // continues the request's trace: the replay is found from either end.
    let requests = collector
        .wait(
            |s| s.name == "POST /admin/dlt/replay",
            |spans| {
                spans
                    .iter()
                    .any(|s| s.links.iter().any(|l| hex(&l.trace_id) == trace_id))
            },
        )
        .await;
    let request = requests
        .iter()
        .find(|s| s.links.iter().any(|l| hex(&l.trace_id) == trace_id))
        .unwrap();
    assert_ne!(hex(&request.trace_id), trace_id, "a trace of its own");
    collector
        .wait_trace(&hex(&request.trace_id), |spans| {
            !named(spans, &format!("process {created}")).is_empty()
        })
        .await;
    stack.stop().await;
}
