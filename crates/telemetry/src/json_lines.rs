//! `--log-format json`: one JSON object per line, for log collectors.
//!
//! `{"timestamp", "level", "target", "message", "fields": {…}, "spans": [names, outermost
//! first], "trace_id", "span_id"}`. The two ids are those of the innermost OpenOrder span
//! the line was written in (W3C hex, as the traces show them), so a line can be found from
//! its trace and the other way round; a line outside any span has neither.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub(super) struct JsonLines;

/// An event's fields as JSON values; `message` apart.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".into(), Value::String(meta.level().to_string()));
        line.insert("target".into(), Value::String(meta.target().to_string()));
        line.insert(
            "message".into(),
            Value::String(fields.message.unwrap_or_default()),
        );
        if !fields.fields.is_empty() {
            line.insert("fields".into(), Value::Object(fields.fields));
        }
        if let Some(scope) = ctx.event_scope() {
            let mut names = Vec::new();
            let mut ids = None;
            for span in scope {
                names.push(Value::String(span.name().to_string()));
                if ids.is_none() {
                    let extensions = span.extensions();
                    ids = extensions
                        .get::<tracing_opentelemetry::OtelData>()
                        .and_then(|data| Some((data.trace_id()?, data.span_id()?)))
                        .filter(|(trace_id, _)| *trace_id != opentelemetry::TraceId::INVALID);
                }
            }
            names.reverse();
            line.insert("spans".into(), Value::Array(names));
            if let Some((trace_id, span_id)) = ids {
                line.insert("trace_id".into(), Value::String(trace_id.to_string()));
                line.insert("span_id".into(), Value::String(span_id.to_string()));
            }
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}
