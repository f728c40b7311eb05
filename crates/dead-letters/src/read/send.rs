//! Sending replays: each dead letter republished with its replay headers (and its edit),
//! paced to a rate, and recorded in the replay ledger.

use std::collections::HashMap;
use std::time::Duration;

use contracts::headers;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{Edit, LetterHeaders, ReplayResult, Replayed, LEDGER};
use kafka_clients::KafkaArgs;
use messaging::record::Record;

/// How the selected dead letters are sent.
pub(crate) struct Sending<'a> {
    pub dry_run: bool,
    pub force: bool,
    pub max_replays: u32,
    /// Records a second, at most.
    pub rate: Option<f64>,
    pub by: &'a str,
    /// The edit of the one selected dead letter.
    pub edit: Option<&'a Edit>,
}

/// Sends `letters` (each unless the ledger `done` has it, its cap is passed or it has no
/// value), each recorded in the ledger, paced to `how.rate`: the n-th record sent goes no
/// sooner than (n − 1) / rate seconds after the first.
pub(crate) async fn send_all(
    args: &KafkaArgs,
    letters: &[&Record],
    done: &HashMap<String, u32>,
    how: &Sending<'_>,
) -> anyhow::Result<Vec<ReplayResult>> {
    let ledger_topic = args.topics().group(LEDGER);
    if !how.dry_run && !letters.is_empty() {
        kafka_clients::ensure_topics(
            args,
            std::slice::from_ref(&ledger_topic),
            &Default::default(),
        )
        .await?;
    }
    let producer = kafka_clients::producer(args, "openorder-dlt-replay")?;
    let pace = how
        .rate
        .and_then(|r| Duration::try_from_secs_f64(1.0 / r).ok());
    let start = tokio::time::Instant::now();
    let mut sent: u32 = 0;
    let mut results = Vec::new();
    for letter in letters {
        let count = letter.replay_count() + 1;
        let mut result = ReplayResult {
            position: letter.position(),
            order_id: letter.order_id(),
            target_topic: letter.original_topic(),
            replay_count: count,
            outcome: String::new(),
            edited: how.edit.is_some(),
        };
        result.outcome = if letter.value_omitted().is_some() {
            "value-omitted".into()
        } else if done.contains_key(&letter.position()) && !how.force {
            "already-replayed".into()
        } else if count > how.max_replays {
            "over-cap".into()
        } else if how.dry_run {
            "would-replay".into()
        } else {
            if let Some(pace) = pace {
                tokio::time::sleep_until(start + pace * sent).await;
            }
            let step = Replayed {
                from: letter.position(),
                error: letter.dead_letter_error(),
                attempts: letter.attempts(),
                replay_count: count,
                by: how.by.to_string(),
                at: telemetry::now_text(),
                edited: how.edit.is_some(),
            };
            publish(
                &producer,
                letter,
                &result.target_topic,
                count,
                how.edit,
                &step,
            )
            .await?;
            record(&producer, &ledger_topic, letter, &result, &step, how.edit).await?;
            sent += 1;
            "replayed".into()
        };
        results.push(result);
    }
    Ok(results)
}

async fn publish(
    producer: &FutureProducer,
    letter: &Record,
    target: &str,
    count: u32,
    edit: Option<&Edit>,
    step: &Replayed,
) -> anyhow::Result<()> {
    let count = count.to_string();
    let step = serde_json::to_string(step)?;
    let trace = replay_context(letter);
    let mut hs = OwnedHeaders::new();
    for (k, v) in &letter.headers {
        if k.starts_with("kafka_dlt-")
            || k.starts_with("openorder-dlt-")
            || k == headers::ATTEMPTS
            || k == headers::REPLAY_COUNT
            || k == headers::FAILURE_KIND
        {
            continue;
        }
        // The replay's own context replaces the original's (which its span links to).
        let traced = k.eq_ignore_ascii_case("traceparent") || k.eq_ignore_ascii_case("tracestate");
        if traced && !trace.is_empty() {
            continue;
        }
        hs = hs.insert(Header {
            key: k,
            value: v.as_deref(),
        });
    }
    hs = hs
        .insert(Header {
            key: headers::REPLAY_COUNT,
            value: Some(count.as_bytes()),
        })
        .insert(Header {
            key: headers::REPLAY_HISTORY,
            value: Some(step.as_bytes()),
        });
    if let Some(edit) = edit {
        hs = hs
            .insert(Header {
                key: headers::EDITED,
                value: Some("true".as_bytes()),
            })
            .insert(Header {
                key: headers::PATCH_SHA256,
                value: Some(edit.patch_sha256.as_bytes()),
            });
    }
    for (k, v) in &trace {
        hs = hs.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    let mut record = FutureRecord::<[u8], [u8]>::to(target).headers(hs);
    if let Some(key) = &letter.key {
        record = record.key(key);
    }
    let value = match edit {
        Some(edit) => Some(edit.value.as_slice()),
        None => letter.payload.as_deref(),
    };
    if let Some(value) = value {
        record = record.payload(value);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| {
            anyhow::anyhow!("Failed to republish {} to {target}: {e}", letter.position())
        })?;
    Ok(())
}

/// With traces on, links the current span (the operator's request) to the dead letter's
/// original context (it keeps the `traceparent` of the record that failed) and gives that
/// span's context for the replayed record: what the replay causes continues the
/// operator's trace, which links back to the failure. Empty without a current span (the
/// record then keeps its original context).
fn replay_context(letter: &Record) -> Vec<(String, String)> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let current = tracing::Span::current();
    let trace = telemetry::context_headers_of(&current);
    if trace.is_empty() {
        return trace;
    }
    let linked = letter.trace_context().span().span_context().clone();
    if linked.is_valid() {
        current.add_link(linked);
    }
    trace
}

async fn record(
    producer: &FutureProducer,
    ledger: &str,
    letter: &Record,
    result: &ReplayResult,
    step: &Replayed,
    edit: Option<&Edit>,
) -> anyhow::Result<()> {
    let mut entry = serde_json::json!({
        "position": result.position,
        "orderId": result.order_id,
        "targetTopic": result.target_topic,
        "replayCount": result.replay_count,
        "by": step.by,
        "at": step.at,
        "edited": edit.is_some(),
    });
    if let Some(edit) = edit {
        entry["patch"] = edit.patch.clone();
        entry["patchSha256"] = serde_json::json!(edit.patch_sha256);
    }
    let entry = entry.to_string();
    let key = letter.position();
    producer
        .send(
            FutureRecord::to(ledger).key(&key).payload(&entry),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("Failed to record the replay of {key}: {e}"))?;
    Ok(())
}
