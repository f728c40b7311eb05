//! Records applied as one batch: sent together (each in a trace of its own), the batch's
//! span linked to each record's, a span per record inside it, and what each record caused
//! under its record's span.

use std::collections::HashSet;
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;
use rdkafka::producer::FutureProducer;

use super::collector::{attribute, hex, is_named, Collector};

/// A producer to the brokers at `bootstrap` that lingers 300 ms, so that records sent
/// together go in one request.
pub fn producer(bootstrap: &str) -> FutureProducer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "300")
        .create()
        .unwrap()
}

/// Sends one `OrderCreated` to `topic` per trace of `traces`, all at once, each with a
/// `traceparent` in its trace and an order id of its own.
pub async fn send_together(producer: &FutureProducer, topic: &str, traces: &[String]) {
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
        let topic = topic.to_string();
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
}

/// The spans of `topic`'s processing that belong to `traces` (in one, or linked to one),
/// once each record's processing is among them: a span in its own trace (applied alone),
/// or a record span linked to it inside a batch's.
pub async fn processing_spans(collector: &Collector, topic: &str, traces: &[String]) -> Vec<Span> {
    let linked_to =
        |span: &Span| -> Vec<String> { span.links.iter().map(|l| hex(&l.trace_id)).collect() };
    let ours = |span: &Span| {
        traces.contains(&hex(&span.trace_id)) || linked_to(span).iter().any(|t| traces.contains(t))
    };
    collector
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
        .await
}

/// inventory-service's batch span among `spans`, if the records were applied as one.
pub fn inventory_batch(spans: &[Span]) -> Option<&Span> {
    spans.iter().find(|s| {
        s.links.len() >= 2
            && attribute(s, "messaging.consumer.group.name")
                .is_some_and(|g| g.ends_with("inventory-service"))
    })
}

/// The batch is a trace of its own, linked to each record of `traces` it holds, with a span
/// per record inside it linked to that record's; how many records it holds, and the ids of
/// the record spans.
pub fn assert_a_linked_span_per_record_inside(
    batch: &Span,
    spans: &[Span],
    traces: &[String],
) -> (usize, HashSet<Vec<u8>>) {
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
    let record_spans: HashSet<Vec<u8>> = spans
        .iter()
        .filter(|s| s.parent_span_id == batch.span_id)
        .map(|s| s.span_id.clone())
        .collect();
    (count, record_spans)
}

/// What a record of the batch caused hangs under that record's span: each of the `count`
/// decisions' events is sent under one of `record_spans`, and they under all of them.
pub async fn assert_each_decision_is_sent_under_its_records_span(
    collector: &Collector,
    batch: &Span,
    count: usize,
    record_spans: HashSet<Vec<u8>>,
) {
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
    let reserved_parent: HashSet<Vec<u8>> = sent.iter().map(|s| s.parent_span_id.clone()).collect();
    assert_eq!(
        reserved_parent, record_spans,
        "each decision's event is sent under its own record's span"
    );
}
