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

#[path = "traces/batches.rs"]
mod batches;
#[path = "traces/chain.rs"]
mod chain;
#[path = "traces/collector.rs"]
mod collector;

use std::sync::OnceLock;
use std::time::Duration;

use chain::{
    assert_one_chain, assert_transactions_on, has_every_hop, has_every_hop_and_the_webhook,
    new_trace_id, post_in_a_new_trace, post_traced,
};
use collector::{attribute, hex, named, Collector};
use serde_json::json;
use support::receivers::{Behaviour, WebhookReceiver};
use support::{BrokerKind, DbKind, Stack, StackOptions, UpPorts, UpProcess};

/// Spans exported as OTLP/HTTP protobuf.
const PROTOBUF: &[(&str, &str)] = &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")];

/// New traces left out; a caller's decision followed.
const LEFT_OUT: &[(&str, &str)] = &[("OTEL_TRACES_SAMPLER", "parentbased_always_off")];

/// `openorder up` on a data directory named for `label`, exporting its spans to a collector
/// of the test's own, its webhooks allowed to a receiver on loopback; `env` besides. With a
/// client to call it.
async fn up_traced(
    label: &str,
    env: &[(&str, &str)],
) -> (Collector, WebhookReceiver, UpProcess, reqwest::Client) {
    let collector = Collector::default();
    let endpoint = collector.start();
    let hook = WebhookReceiver::start(Behaviour::FailFirst(0)).await;
    let data = support::temp_dir(label);
    let ports = UpPorts::free().expect("free ports");
    let mut all = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        (
            "OPENORDER_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        ("OPENORDER_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8"),
    ];
    all.extend_from_slice(env);
    let up = UpProcess::start_with_env(&data, &ports, &all).await;
    (collector, hook, up, reqwest::Client::new())
}

/// An order of user 42 for one `ABC-001`, its contact the webhook receiver `hook`.
fn order_to(hook: &WebhookReceiver) -> serde_json::Value {
    json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 1}],
           "contact": {"webhookUrl": hook.url}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_from_the_request_through_every_hop_to_the_webhook() {
    let (collector, hook, up, http) = up_traced("traces", PROTOBUF).await;
    let trace_id = post_in_a_new_trace(&http, &up.order_url, order_to(&hook)).await;
    let spans = collector
        .wait_trace(&trace_id, has_every_hop_and_the_webhook)
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
    // New traces are left out; a caller's decision is followed.
    let (collector, hook, up, http) = up_traced("traces-left-out", LEFT_OUT).await;
    let order = order_to(&hook);
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
    let sampled = post_in_a_new_trace(&http, &up.order_url, order).await;
    hook.wait_requests(3).await;
    collector
        .wait_trace(&sampled, has_every_hop_and_the_webhook)
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
    let http = reqwest::Client::new();
    let order = json!({"userId": 7, "items": [{"sku": "ABC-001", "qty": 1}]});
    let trace_id = post_in_a_new_trace(&http, &up.order_url, order).await;
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
    let order = json!({"userId": 42, "items": [{"sku": "ABC-001", "qty": 1}]});
    let trace_id = post_in_a_new_trace(&stack.http, &stack.order_url, order).await;
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
    let producer = batches::producer(&stack.broker.bootstrap);
    // Records sent together are fetched together, and so applied as one batch; tried a
    // few times, in case the consumer fetched the first of them alone.
    for _round in 0..5 {
        let traces: Vec<String> = (0..5).map(|_| new_trace_id()).collect();
        batches::send_together(&producer, &topic, &traces).await;
        let spans = batches::processing_spans(collector, &topic, &traces).await;
        // inventory-service's batch (notification-service reads order.created too).
        let Some(batch) = batches::inventory_batch(&spans) else {
            continue;
        };
        let (count, record_spans) =
            batches::assert_a_linked_span_per_record_inside(batch, &spans, &traces);
        batches::assert_each_decision_is_sent_under_its_records_span(
            collector,
            batch,
            count,
            record_spans,
        )
        .await;
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
