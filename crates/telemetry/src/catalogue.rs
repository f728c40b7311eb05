//! Every series OpenOrder serves on `/metrics`, in one place: its name, type, labels, help
//! text and what sets it. [`Metrics`](crate::metrics::Metrics) serves only these (a series
//! not here cannot be set: the methods take a [`Series`]), and the book's list of series
//! (docs/book/src/operating/observability.md, between the `catalogue` markers) is
//! [`markdown`] of it: a test fails when they differ.
//!
//! Names follow Prometheus' conventions: base units (`_seconds`, `_bytes`), counters end in
//! `_total`, and a label's values are few (a topic, a consumer, a route as declared, never
//! an order id). Beside these, every service serves the `process_*` series of the library's
//! process collector ([`PROCESS`]).

/// What kind of series: how it is set and how Prometheus reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (from 0 at the process's start).
    Counter,
    /// A value set now and then.
    Gauge,
    /// Observations in the buckets of [`crate::metrics::BUCKETS`] (seconds).
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One series.
#[derive(Debug)]
pub struct Series {
    pub name: &'static str,
    pub kind: Kind,
    /// Its label names; every setting names each of them once.
    pub labels: &'static [&'static str],
    /// Its `# HELP` text.
    pub help: &'static str,
    /// What sets it, and when.
    pub set_by: &'static str,
}

pub const HTTP_REQUEST_DURATION: Series = Series {
    name: "openorder_http_request_duration_seconds",
    kind: Kind::Histogram,
    labels: &["method", "route", "status"],
    help: "Time from a request's arrival to its answer, less any time it waited on purpose \
           (Prefer: wait), by method, route as declared and status.",
    set_by: "`web::http`: every request to a route",
};

pub const HTTP_REQUESTS_SHED: Series = Series {
    name: "openorder_http_requests_shed_total",
    kind: Kind::Counter,
    labels: &[],
    help: "Requests refused at once with 503, over --max-in-flight-requests.",
    set_by: "`web::http`",
};

pub const RECORDS_REPLAYED: Series = Series {
    name: "openorder_records_replayed_total",
    kind: Kind::Counter,
    labels: &["topic"],
    help: "Dead letters replayed to their topic by an operator (HTTP API, openorder dlt, console).",
    set_by: "`web::http`: the dead-letter API",
};

pub const RECORDS_AUTO_REDRIVEN: Series = Series {
    name: "openorder_records_auto_redriven_total",
    kind: Kind::Counter,
    labels: &["topic"],
    help: "Dead letters replayed to their topic by the automatic redrive policy.",
    set_by: "`dead_letters::redrive`",
};

pub const RECORDS_RETRIED: Series = Series {
    name: "openorder_records_retried_total",
    kind: Kind::Counter,
    labels: &["topic", "class"],
    help: "Records whose handling failed and is tried again, by topic and failure class.",
    set_by: "`messaging::consumer`",
};

pub const RECORDS_DEAD_LETTERED: Series = Series {
    name: "openorder_records_dead_lettered_total",
    kind: Kind::Counter,
    labels: &["topic", "class"],
    help: "Records written to their topic's dead-letter topic, by topic and failure class.",
    set_by: "`messaging::consumer`",
};

pub const DEAD_LETTERS_VALUE_OMITTED: Series = Series {
    name: "openorder_dead_letters_value_omitted_total",
    kind: Kind::Counter,
    labels: &["topic"],
    help: "Dead letters written without the record's value (too large to keep).",
    set_by: "`messaging::consumer`",
};

pub const CONSUMER_BATCHES: Series = Series {
    name: "openorder_consumer_batches_total",
    kind: Kind::Counter,
    labels: &["consumer"],
    help: "Batches of records a consumer took to apply.",
    set_by: "`messaging::consumer`",
};

pub const CONSUMER_BATCH_RECORDS: Series = Series {
    name: "openorder_consumer_batch_records_total",
    kind: Kind::Counter,
    labels: &["consumer"],
    help: "Records in the batches a consumer took (over batches_total: the mean batch size).",
    set_by: "`messaging::consumer`",
};

pub const CONSUMER_BATCHES_ROLLED_BACK: Series = Series {
    name: "openorder_consumer_batches_rolled_back_total",
    kind: Kind::Counter,
    labels: &["consumer"],
    help: "Batches applied together that failed and were applied again record by record.",
    set_by: "`messaging::consumer`",
};

pub const CONSUMER_KEYS_SET_ASIDE: Series = Series {
    name: "openorder_consumer_keys_set_aside_total",
    kind: Kind::Counter,
    labels: &["consumer"],
    help: "Records set aside to wait behind an earlier record of their key still retrying.",
    set_by: "`messaging::consumer`",
};

pub const CONSUMER_KEYS_WAITING: Series = Series {
    name: "openorder_consumer_keys_waiting",
    kind: Kind::Gauge,
    labels: &["consumer"],
    help: "Keys whose records wait behind a failing record of theirs.",
    set_by: "`messaging::stalls`, as `/metrics` is rendered",
};

pub const CONSUMER_KEYS_STALLED: Series = Series {
    name: "openorder_consumer_keys_stalled",
    kind: Kind::Gauge,
    labels: &["consumer"],
    help: "Keys waiting longer than the stall threshold.",
    set_by: "`messaging::stalls`, as `/metrics` is rendered",
};

pub const CONSUMER_LAG_RECORDS: Series = Series {
    name: "openorder_consumer_lag_records",
    kind: Kind::Gauge,
    labels: &["consumer", "topic", "partition"],
    help: "Records of the partition the consumer has not applied yet: the partition's end \
           (high watermark) less the consumer's position (the offset after the last record it \
           applied or dead-lettered in order, or the group's committed offset if further), and \
           at least the records it holds unfinished. Per member, for the partitions assigned \
           to it; sampled every 5 s.",
    set_by: "`runtime::gauges`, every 5 s",
};

pub const CONSUMER_LAG_SECONDS: Series = Series {
    name: "openorder_consumer_lag_seconds",
    kind: Kind::Gauge,
    labels: &["consumer", "topic", "partition"],
    help: "Age in seconds of the oldest record of the partition the consumer has not applied \
           yet: now less that record's timestamp while the consumer holds it (received, in the \
           batch in hand or waiting in a retry lane); while it holds none but the partition's \
           end is past its position, now less the first sample that saw that (a lower bound, \
           short by at most 5 s); 0 when caught up. Per member, for the partitions assigned to \
           it; sampled every 5 s.",
    set_by: "`runtime::gauges`, every 5 s",
};

pub const OUTBOX_ROWS: Series = Series {
    name: "openorder_outbox_rows",
    kind: Kind::Gauge,
    labels: &[],
    help: "Rows in the outbox: events committed with their change and not yet acknowledged \
           by the brokers. Sampled every 5 s.",
    set_by: "`runtime::gauges`, every 5 s",
};

pub const OUTBOX_OLDEST_AGE: Series = Series {
    name: "openorder_outbox_oldest_age_seconds",
    kind: Kind::Gauge,
    labels: &[],
    help: "Age in seconds of the oldest outbox row (now less its created_at); 0 when the \
           outbox is empty. Sampled every 5 s.",
    set_by: "`runtime::gauges`, every 5 s",
};

pub const READY: Series = Series {
    name: "openorder_ready",
    kind: Kind::Gauge,
    labels: &[],
    help: "1 when GET /health/ready answers 200 (the database answers, and commits while its \
           commits were failing, and the brokers answer), else 0. Sampled every 5 s.",
    set_by: "`runtime::gauges`, every 5 s",
};

pub const STORAGE_COMMIT_FAILURES: Series = Series {
    name: "openorder_storage_commit_failures_total",
    kind: Kind::Counter,
    labels: &["fault"],
    help: "Commits that failed, by fault (full, read_only, unavailable, contention).",
    set_by: "`store::storage`, as `/metrics` is rendered",
};

pub const STORAGE_FAILING: Series = Series {
    name: "openorder_storage_failing",
    kind: Kind::Gauge,
    labels: &[],
    help: "1 while commits fail (until one succeeds again), else 0.",
    set_by: "`store::storage`, as `/metrics` is rendered",
};

pub const ROWS_PRUNED: Series = Series {
    name: "openorder_rows_pruned_total",
    kind: Kind::Counter,
    labels: &["table"],
    help: "Rows deleted by retention, by table.",
    set_by: "`store::retention`",
};

pub const TRACE_SPANS_EXPORTED: Series = Series {
    name: "openorder_trace_spans_exported_total",
    kind: Kind::Counter,
    labels: &[],
    help: "Trace spans the OTLP exporter handed to its collector (with traces exported).",
    set_by: "`telemetry`, as `/metrics` is rendered",
};

pub const TRACE_SPANS_DROPPED: Series = Series {
    name: "openorder_trace_spans_dropped_total",
    kind: Kind::Counter,
    labels: &[],
    help: "Trace spans dropped: the exporter's queue was full, or the collector refused or \
           did not answer (with traces exported).",
    set_by: "`telemetry`, as `/metrics` is rendered",
};

pub const ORDERS_REFUSED: Series = Series {
    name: "openorder_orders_refused_total",
    kind: Kind::Counter,
    labels: &["reason"],
    help: "Orders refused with 503 before being stored, by reason (busy: the intake's queue \
           was full).",
    set_by: "order-service's intake",
};

pub const ORDERS_EXPIRED: Series = Series {
    name: "openorder_orders_expired_total",
    kind: Kind::Counter,
    labels: &[],
    help: "PENDING orders expired after --expire-pending-after.",
    set_by: "order-service",
};

pub const ORDERS_STUCK: Series = Series {
    name: "openorder_orders_stuck",
    kind: Kind::Gauge,
    labels: &[],
    help: "Orders PENDING longer than --stuck-after. Sampled every 10 s.",
    set_by: "order-service, every 10 s",
};

pub const ORDERS_PENDING_OLDEST_AGE: Series = Series {
    name: "openorder_orders_pending_oldest_age_seconds",
    kind: Kind::Gauge,
    labels: &[],
    help: "Age in seconds of the oldest PENDING order; 0 when none is. Sampled every 10 s.",
    set_by: "order-service, every 10 s",
};

pub const ORDER_WAITERS: Series = Series {
    name: "openorder_order_waiters",
    kind: Kind::Gauge,
    labels: &[],
    help: "Requests waiting for an order's decision (Prefer: wait, or GET …?wait=). Sampled \
           every 10 s.",
    set_by: "order-service, every 10 s",
};

pub const ORDER_DECISION: Series = Series {
    name: "openorder_order_decision_seconds",
    kind: Kind::Histogram,
    labels: &["status"],
    help: "Time from an order's acceptance (its stored created_at, before the POST's 202) to \
           its decision committed by order-service (CONFIRMED, REJECTED or FAILED): the \
           POST to decision time, by status.",
    set_by: "order-service, as each decision commits",
};

pub const NOTIFICATION_ATTEMPTS: Series = Series {
    name: "openorder_notification_attempts_total",
    kind: Kind::Counter,
    labels: &["channel", "outcome"],
    help: "Attempts to deliver a notification, by channel (log, email, webhook, sms, push) \
           and outcome (sent: accepted by an SMS provider that reports delivery later; delivered, \
           retried, failed).",
    set_by: "notification-service's deliveries",
};

/// Every series, in the order the book lists them.
pub const ALL: &[&Series] = &[
    &HTTP_REQUEST_DURATION,
    &HTTP_REQUESTS_SHED,
    &RECORDS_REPLAYED,
    &RECORDS_AUTO_REDRIVEN,
    &RECORDS_RETRIED,
    &RECORDS_DEAD_LETTERED,
    &DEAD_LETTERS_VALUE_OMITTED,
    &CONSUMER_BATCHES,
    &CONSUMER_BATCH_RECORDS,
    &CONSUMER_BATCHES_ROLLED_BACK,
    &CONSUMER_KEYS_SET_ASIDE,
    &CONSUMER_KEYS_WAITING,
    &CONSUMER_KEYS_STALLED,
    &CONSUMER_LAG_RECORDS,
    &CONSUMER_LAG_SECONDS,
    &OUTBOX_ROWS,
    &OUTBOX_OLDEST_AGE,
    &READY,
    &STORAGE_COMMIT_FAILURES,
    &STORAGE_FAILING,
    &ROWS_PRUNED,
    &TRACE_SPANS_EXPORTED,
    &TRACE_SPANS_DROPPED,
    &ORDERS_REFUSED,
    &ORDERS_EXPIRED,
    &ORDERS_STUCK,
    &ORDERS_PENDING_OLDEST_AGE,
    &ORDER_WAITERS,
    &ORDER_DECISION,
    &NOTIFICATION_ATTEMPTS,
];

/// The process collector's series (the `prometheus` crate's, read from `/proc/self`), served
/// beside [`ALL`] by every service: name, type and what.
pub const PROCESS: &[(&str, Kind, &str)] = &[
    (
        "process_cpu_seconds_total",
        Kind::Counter,
        "user and system CPU time spent, in seconds",
    ),
    (
        "process_resident_memory_bytes",
        Kind::Gauge,
        "resident memory size, in bytes",
    ),
    (
        "process_virtual_memory_bytes",
        Kind::Gauge,
        "virtual memory size, in bytes",
    ),
    ("process_open_fds", Kind::Gauge, "open file descriptors"),
    (
        "process_max_fds",
        Kind::Gauge,
        "the limit of open file descriptors",
    ),
    ("process_threads", Kind::Gauge, "OS threads of the process"),
    (
        "process_start_time_seconds",
        Kind::Gauge,
        "start time of the process, in seconds since the Unix epoch",
    ),
];

/// The list of every series as a Markdown table (what the book shows between its
/// `catalogue` markers).
pub fn markdown() -> String {
    let mut out =
        String::from("| series | type | labels | what | set by |\n|---|---|---|---|---|\n");
    for s in ALL {
        let labels = s
            .labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            s.name,
            s.kind.as_str(),
            labels,
            s.help.replace('|', "\\|"),
            s.set_by
        ));
    }
    for (name, kind, what) in PROCESS {
        out.push_str(&format!(
            "| `{name}` | {} | | {what} | the process collector, as `/metrics` is rendered |\n",
            kind.as_str()
        ));
    }
    out
}

#[cfg(test)]
mod tests;
