//! The overview's figures over time, for its charts ("Lag in time"). A background task
//! ([`spawn`], started with the console) takes a [`Sample`] every
//! `--console-history-every` (5 s by default, as often as the services refresh their
//! gauges) and the console keeps the last [`KEPT`] of them, none older than [`WINDOW_MS`]
//! (15 minutes at 5 s). A sample holds:
//!
//! - per consumer (the `consumer` label, e.g. `inventory-order-events`), its lag in seconds
//!   (the most over its partitions) and in records (summed over them);
//! - per service, its outbox's rows and the age of its oldest row;
//! - the age of the oldest PENDING order (order-service's);
//! - the records kept in each dead-letter topic, from the brokers.
//!
//! The services' figures are their gauges, read from each one's `GET /metrics` (Prometheus
//! text; only the lines of the series above are read, [`parse_line`]), within
//! [`METRICS_BOUND`] and at most [`crate::services::MAX_METRICS`] bytes of it. A service
//! that does not answer, or asks for an operator token (`--protect-metrics`), leaves a gap
//! in its charts, not a zero.
//!
//! From the samples, [`clearing`]: how long a consumer's backlog takes to clear at the rate
//! it fell over the last minute. The console's `pages::chart` draws the charts.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use platform::telemetry::catalogue;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::Sources;

/// The default of `--console-history-every`: as often as the services refresh their gauges.
pub const EVERY: Duration = Duration::from_secs(5);
/// Samples kept: 15 minutes at [`EVERY`].
pub const KEPT: usize = 180;
/// No sample older than this (milliseconds before the newest) is kept: 15 minutes.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// The shortest `--console-history-every`: each sample is a read of the brokers and three
/// requests, which a test may make often, but not in a tight loop.
const SHORTEST_EVERY: Duration = Duration::from_millis(100);
/// Longest a service's `/metrics` is waited for.
pub const METRICS_BOUND: Duration = Duration::from_secs(2);
/// Longest the dead-letter topics' counts are waited for (the read is bounded itself:
/// a free reader within 10 s, then the brokers' own timeouts).
const BROKERS_BOUND: Duration = Duration::from_secs(20);
/// The span of samples a backlog's rate is read from ([`clearing`]).
const RATE_OVER_MS: i64 = 60_000;

/// order-service's gauge of its oldest PENDING order (set every 10 s).
pub const PENDING_OLDEST_AGE: &str = catalogue::ORDERS_PENDING_OLDEST_AGE.name;
const LAG_SECONDS: &str = catalogue::CONSUMER_LAG_SECONDS.name;
const LAG_RECORDS: &str = catalogue::CONSUMER_LAG_RECORDS.name;
const OUTBOX_ROWS: &str = catalogue::OUTBOX_ROWS.name;
const OUTBOX_OLDEST_AGE: &str = catalogue::OUTBOX_OLDEST_AGE.name;
const READY: &str = catalogue::READY.name;

/// The series a sample reads from `/metrics`; the lines of any other are skipped.
const WANTED: [&str; 6] = [
    LAG_SECONDS,
    LAG_RECORDS,
    OUTBOX_ROWS,
    OUTBOX_OLDEST_AGE,
    PENDING_OLDEST_AGE,
    READY,
];

/// How often the console samples its charts' figures (`openorder console` and `openorder
/// up`).
#[derive(Args, Clone, Debug)]
pub struct HistoryArgs {
    /// How often the console samples the figures its overview charts (consumers' lag, the
    /// outboxes' and the oldest PENDING order's age, dead letters kept): `5s`, `500ms`, or
    /// seconds; at least 100ms. It keeps 180 samples, at most 15 minutes of them.
    #[arg(long, env = "OPENORDER_CONSOLE_HISTORY_EVERY", default_value = "5s", value_parser = parse_every)]
    pub console_history_every: Duration,
}

impl Default for HistoryArgs {
    fn default() -> Self {
        Self {
            console_history_every: EVERY,
        }
    }
}

/// A duration as `--shutdown-timeout` takes one, and no shorter than [`SHORTEST_EVERY`].
fn parse_every(text: &str) -> Result<Duration, String> {
    let every = platform::shutdown::parse_duration(text)?;
    if every < SHORTEST_EVERY {
        return Err(format!(
            "{text:?} is too short: the console samples at most every {} ms",
            SHORTEST_EVERY.as_millis()
        ));
    }
    Ok(every)
}

/// The overview's figures at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// When it was taken (milliseconds since the epoch).
    pub at_ms: i64,
    /// Each service's figures, answered or not.
    pub services: Vec<ServiceSample>,
    /// Records kept in each dead-letter topic (None: the brokers were not read).
    pub dead_letters: Option<Vec<TopicCount>>,
    /// Why the brokers were not read, if they were not.
    pub broker_error: Option<String>,
}

/// One service's figures in a sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSample {
    pub name: String,
    /// Its gauges (None: its `/metrics` could not be read, a gap in its charts).
    pub gauges: Option<ServiceGauges>,
    /// Why not, then.
    pub error: Option<String>,
}

/// A service's gauges, as its `/metrics` served them; a series it did not serve (yet) is
/// None.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceGauges {
    pub consumers: Vec<ConsumerLag>,
    pub outbox_rows: Option<f64>,
    pub outbox_oldest_age_seconds: Option<f64>,
    /// order-service's only.
    pub pending_oldest_age_seconds: Option<f64>,
    pub ready: Option<bool>,
}

/// One consumer's lag over the partitions assigned to it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerLag {
    pub consumer: String,
    /// The age of the oldest record not applied yet, the most over its partitions.
    pub lag_seconds: Option<f64>,
    /// Records not applied yet, summed over its partitions.
    pub lag_records: Option<f64>,
}

/// Records kept in one topic.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicCount {
    pub topic: String,
    pub records: i64,
}

impl Sample {
    /// `service`'s gauges in this sample (None: it did not answer).
    pub fn gauges(&self, service: &str) -> Option<&ServiceGauges> {
        self.services
            .iter()
            .find(|s| s.name == service)?
            .gauges
            .as_ref()
    }

    /// `consumer`'s lag, whichever service it belongs to.
    pub fn consumer(&self, consumer: &str) -> Option<&ConsumerLag> {
        self.services
            .iter()
            .filter_map(|s| s.gauges.as_ref())
            .flat_map(|g| &g.consumers)
            .find(|c| c.consumer == consumer)
    }

    /// Records kept in the dead-letter topic `topic` (None: the brokers were not read, or
    /// the topic was not there).
    pub fn dead_letters_in(&self, topic: &str) -> Option<f64> {
        self.dead_letters
            .as_ref()?
            .iter()
            .find(|t| t.topic == topic)
            .map(|t| t.records as f64)
    }
}

impl ServiceGauges {
    /// `consumer`'s entry, added if it has none yet.
    fn consumer_mut(&mut self, consumer: &str) -> &mut ConsumerLag {
        let at = match self.consumers.iter().position(|c| c.consumer == consumer) {
            Some(at) => at,
            None => {
                self.consumers.push(ConsumerLag {
                    consumer: consumer.to_string(),
                    lag_seconds: None,
                    lag_records: None,
                });
                self.consumers.len() - 1
            }
        };
        &mut self.consumers[at]
    }
}

/// The samples kept, oldest first.
pub struct History {
    every: Duration,
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// An empty history sampled every `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// How often a sample is taken.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Keeps `sample` ([`keep`]).
    pub fn push(&self, sample: Sample) {
        keep(&mut self.samples.lock().expect("never poisoned"), sample);
    }

    /// The samples kept, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .expect("never poisoned")
            .iter()
            .cloned()
            .collect()
    }
}

/// Adds `sample` (the newest) to `samples`, dropping the oldest past [`KEPT`] and any older
/// than [`WINDOW_MS`] before it.
pub fn keep(samples: &mut VecDeque<Sample>, sample: Sample) {
    let oldest = sample.at_ms - WINDOW_MS;
    samples.push_back(sample);
    while samples.len() > KEPT || samples.front().is_some_and(|s| s.at_ms < oldest) {
        samples.pop_front();
    }
}

/// One line of Prometheus text: a series' name, its labels and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Line<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

impl Line<'_> {
    /// The value of its label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one line of Prometheus text, `name{key="value",…} value [timestamp]`, when its
/// series is one of `wanted`. None for a comment (`#`), a blank line, another series, a
/// value that is not a finite number, or a line it cannot read: such a line is skipped,
/// and the rest of the text still counts.
pub fn parse_line<'a>(line: &'a str, wanted: &[&str]) -> Option<Line<'a>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let (name, rest) = line.split_at(name_end);
    if !wanted.contains(&name) {
        return None;
    }
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inside) => labels(inside)?,
        None => (Vec::new(), rest),
    };
    let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
    value.is_finite().then_some(Line {
        name,
        labels,
        value,
    })
}

/// A series' labels, read from just after its `{`: each `key="value"` (the value's `\\`,
/// `\"` and `\n` unescaped), and what follows the closing `}`.
fn labels(mut text: &str) -> Option<(Vec<(&str, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, after) = text.split_once('=')?;
        let quoted = after.trim_start().strip_prefix('"')?;
        let mut chars = quoted.char_indices();
        let mut value = String::new();
        let end = loop {
            let (at, c) = chars.next()?;
            match c {
                '"' => break at,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((key.trim(), value));
        // Past the closing quote (one byte).
        text = &quoted[end + 1..];
    }
}

/// A service's gauges from its `/metrics` text.
pub fn read_gauges(text: &str) -> ServiceGauges {
    let mut gauges = ServiceGauges::default();
    for line in text.lines().filter_map(|l| parse_line(l, &WANTED)) {
        match line.name {
            LAG_SECONDS | LAG_RECORDS => {
                let Some(consumer) = line.label("consumer") else {
                    continue;
                };
                let lag = gauges.consumer_mut(consumer);
                if line.name == LAG_SECONDS {
                    // The oldest record behind, whichever partition it is on.
                    let most = lag.lag_seconds.map_or(line.value, |s| s.max(line.value));
                    lag.lag_seconds = Some(most);
                } else {
                    lag.lag_records = Some(lag.lag_records.unwrap_or(0.0) + line.value);
                }
            }
            OUTBOX_ROWS => gauges.outbox_rows = Some(line.value),
            OUTBOX_OLDEST_AGE => gauges.outbox_oldest_age_seconds = Some(line.value),
            PENDING_OLDEST_AGE => gauges.pending_oldest_age_seconds = Some(line.value),
            READY => gauges.ready = Some(line.value >= 1.0),
            _ => {}
        }
    }
    gauges
}

/// A chart's point: when, and the value then (None: a gap).
pub type Point = (i64, Option<f64>);

/// The points of one figure over `samples`, picked from each by `value`.
pub fn series(samples: &[Sample], value: impl Fn(&Sample) -> Option<f64>) -> Vec<Point> {
    samples.iter().map(|s| (s.at_ms, value(s))).collect()
}

/// The time the samples span: the first's and the last's.
pub fn span(samples: &[Sample]) -> Option<(i64, i64)> {
    Some((samples.first()?.at_ms, samples.last()?.at_ms))
}

/// Every consumer the samples name, with its service, in the order first seen.
pub fn consumers(samples: &[Sample]) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for service in samples.iter().flat_map(|s| &s.services) {
        for lag in service.gauges.iter().flat_map(|g| &g.consumers) {
            if !seen.iter().any(|(_, c)| *c == lag.consumer) {
                seen.push((service.name.clone(), lag.consumer.clone()));
            }
        }
    }
    seen
}

/// Every dead-letter topic the samples name, by name.
pub fn dead_letter_topics(samples: &[Sample]) -> Vec<String> {
    let mut topics: Vec<String> = samples
        .iter()
        .filter_map(|s| s.dead_letters.as_ref())
        .flatten()
        .map(|t| t.topic.clone())
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

/// When a consumer's backlog clears, at the rate it moved over the last minute.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clearing {
    /// No record behind.
    CaughtUp,
    /// It falls: cleared in about this long, at that rate.
    In(Duration),
    /// It grows by this many records a second.
    Growing(f64),
    /// It holds (moved by less than one record over the minute).
    NotDraining,
}

impl fmt::Display for Clearing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CaughtUp => f.write_str("caught up"),
            Self::In(left) => {
                // Rounded up: "0 s" would say it is cleared.
                let whole = left
                    .as_secs()
                    .saturating_add(u64::from(left.subsec_nanos() > 0));
                let seconds = i64::try_from(whole).unwrap_or(i64::MAX);
                write!(f, "clears in about {}", crate::age(seconds))
            }
            Self::Growing(rate) if *rate < 1.0 => write!(f, "growing by {rate:.2} records/s"),
            Self::Growing(rate) => write!(f, "growing by {rate:.1} records/s"),
            Self::NotDraining => f.write_str("not draining"),
        }
    }
}

/// When the backlog whose records lag is `series` clears: caught up when the latest lag is
/// 0; else from the slope of the line fitted (least squares) to the samples of the minute
/// before the latest: falling at r records/s, it clears in lag / r; growing, or moving by
/// less than one record over the samples' span, it does not. None while there is no lag
/// read, or one sample only of a lag above 0 (no rate yet). Gaps are skipped.
pub fn clearing(series: &[Point]) -> Option<Clearing> {
    let points: Vec<(i64, f64)> = series
        .iter()
        .filter_map(|&(at, value)| value.map(|v| (at, v)))
        .collect();
    let &(last_at, lag) = points.last()?;
    if lag <= 0.0 {
        return Some(Clearing::CaughtUp);
    }
    // Seconds before the latest sample (0 for it, negative before).
    let recent: Vec<(f64, f64)> = points
        .iter()
        .filter(|(at, _)| *at >= last_at - RATE_OVER_MS)
        .map(|&(at, v)| ((at - last_at) as f64 / 1000.0, v))
        .collect();
    let spanned = -recent.first()?.0;
    if recent.len() < 2 || spanned <= 0.0 {
        return None;
    }
    let rate = slope(&recent)?;
    let clearing = if rate * spanned <= -1.0 {
        let left = Duration::try_from_secs_f64(lag / -rate).unwrap_or(Duration::MAX);
        Clearing::In(left)
    } else if rate * spanned >= 1.0 {
        Clearing::Growing(rate)
    } else {
        Clearing::NotDraining
    };
    Some(clearing)
}

/// The slope of the least-squares line through `points` (None when they share one x).
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let (mut xx, mut xy) = (0.0, 0.0);
    for (x, y) in points {
        xx += (x - mean_x) * (x - mean_x);
        xy += (x - mean_x) * (y - mean_y);
    }
    (xx > 0.0).then(|| xy / xx)
}

/// What keeps a [`History`] besides reading its samples' [`Sources`]: the console.
pub trait Sampled: Sources {
    /// The samples kept.
    fn history(&self) -> &History;
}

/// Samples every [`History::every`] until `stop`, or until the console is gone (the task
/// holds it weakly: a console dropped without being served stops it too).
pub fn spawn<S: Sampled>(console: &Arc<S>, stop: CancellationToken) {
    let weak = Arc::downgrade(console);
    // Never 0 (an interval of 0 panics), whatever `History::new` was given.
    let every = console.history().every().max(SHORTEST_EVERY);
    tokio::spawn(async move {
        // The first after one interval: the services starting with the console do not
        // serve their gauges yet, and a console stopped at once has no read left running.
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // A slow sample delays the next rather than bunching those missed.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let Some(console) = weak.upgrade() else {
                return;
            };
            let sample = tokio::select! {
                () = stop.cancelled() => return,
                sample = take(&console) => sample,
            };
            console.history().push(sample);
        }
    });
}

/// One sample: each service's `/metrics` and the dead-letter topics, read side by side.
async fn take<S: Sources>(console: &Arc<S>) -> Sample {
    let at_ms = chrono::Utc::now().timestamp_millis();
    let services = console.services();
    let gauges = futures_util::future::join_all(services.all().map(|(name, url)| async move {
        let text = services.metrics(url, METRICS_BOUND).await;
        service_sample(name, text)
    }));
    let (read, dead_letters) = tokio::join!(gauges, dead_letters(console));
    let (dead_letters, broker_error) = match dead_letters {
        Ok(topics) => (Some(topics), None),
        Err(err) => (None, Some(err)),
    };
    Sample {
        at_ms,
        services: read,
        dead_letters,
        broker_error,
    }
}

/// `name`'s figures from its `/metrics` text, or the gap and why.
fn service_sample(name: &str, text: anyhow::Result<String>) -> ServiceSample {
    match text {
        Ok(text) => ServiceSample {
            name: name.to_string(),
            gauges: Some(read_gauges(&text)),
            error: None,
        },
        Err(err) => {
            tracing::debug!(service = name, error = %format!("{err:#}"), "no sample of its gauges");
            ServiceSample {
                name: name.to_string(),
                gauges: None,
                error: Some(format!("{err:#}")),
            }
        }
    }
}

/// Records kept in each dead-letter topic, read from the brokers off the async workers
/// (as the overview reads them), or why they were not.
async fn dead_letters<S: Sources>(console: &Arc<S>) -> Result<Vec<TopicCount>, String> {
    let reader = console.clone();
    let read = crate::blocking(move || reader.readers().topics());
    match tokio::time::timeout(BROKERS_BOUND, read).await {
        Ok(Ok(topics)) => Ok(dead_letter_counts(topics)),
        Ok(Err(err)) => Err(format!("the brokers could not be read: {err:#}")),
        Err(_) => Err(format!(
            "the brokers did not answer within {} s",
            BROKERS_BOUND.as_secs()
        )),
    }
}

/// The records kept in each dead-letter topic among `topics`.
fn dead_letter_counts(topics: Vec<crate::records::TopicInfo>) -> Vec<TopicCount> {
    topics
        .into_iter()
        .filter(|t| t.name.ends_with(contracts::topics::DLT_SUFFIX))
        .map(|t| TopicCount {
            topic: t.name,
            records: t.records,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/metrics` as a service serves it, with lines of other series and a few it cannot
    /// read.
    const METRICS: &str = "\
# HELP openorder_consumer_lag_records Records of the partition the consumer has not applied yet.
# TYPE openorder_consumer_lag_records gauge
openorder_consumer_lag_records{consumer=\"inventory-order-events\",topic=\"order.created\",partition=\"0\"} 4
openorder_consumer_lag_records{consumer=\"inventory-order-events\",topic=\"order.created\",partition=\"1\"} 6
openorder_consumer_lag_records{consumer=\"inventory-order-cancelled\",topic=\"order.cancelled\",partition=\"0\"} 0
# TYPE openorder_consumer_lag_seconds gauge
openorder_consumer_lag_seconds{consumer=\"inventory-order-events\",topic=\"order.created\",partition=\"0\"} 2.5
openorder_consumer_lag_seconds{consumer=\"inventory-order-events\",topic=\"order.created\",partition=\"1\"} 7.25
openorder_consumer_lag_seconds{consumer=\"inventory-order-cancelled\",topic=\"order.cancelled\",partition=\"0\"} 0
openorder_consumer_lag_seconds{topic=\"order.created\",partition=\"2\"} 99
openorder_outbox_oldest_age_seconds 1.5
openorder_outbox_rows 3
openorder_outbox_rows_broken
openorder_ready NaN
openorder_ready 1
openorder_records_dead_lettered_total{topic=\"order.created\",class=\"x\"} 12
openorder_http_request_duration_seconds_bucket{route=\"/metrics\",le=\"0.001\"} 2
";

    fn lag(consumer: &str, seconds: f64, records: f64) -> ConsumerLag {
        ConsumerLag {
            consumer: consumer.into(),
            lag_seconds: Some(seconds),
            lag_records: Some(records),
        }
    }

    fn one_in(topic: &str) -> TopicCount {
        TopicCount {
            topic: topic.to_string(),
            records: 1,
        }
    }

    fn sample(at_ms: i64) -> Sample {
        Sample {
            at_ms,
            ..Default::default()
        }
    }

    #[test]
    fn a_metrics_line_is_read_with_its_labels_and_value_when_its_series_is_wanted() {
        let wanted = [LAG_SECONDS, OUTBOX_ROWS];
        let line = parse_line(
            "openorder_consumer_lag_seconds{consumer=\"c\",partition=\"0\"} 1.5 1700000000000",
            &wanted,
        )
        .expect("a wanted line");
        assert_eq!(line.name, LAG_SECONDS);
        assert_eq!(line.label("consumer"), Some("c"));
        assert_eq!(line.label("partition"), Some("0"));
        assert_eq!(line.value, 1.5);
        let bare = parse_line("openorder_outbox_rows 3", &wanted).expect("no labels");
        assert_eq!((bare.labels.len(), bare.value), (0, 3.0));
    }

    #[test]
    fn a_label_value_keeps_its_escaped_quotes_backslashes_commas_and_braces() {
        let line = parse_line(
            r#"openorder_outbox_rows{a="x\"y",b="back\\slash",c="one,two}",d="line\nbreak",} 2"#,
            &[OUTBOX_ROWS],
        )
        .expect("read");
        assert_eq!(line.label("a"), Some("x\"y"));
        assert_eq!(line.label("b"), Some("back\\slash"));
        assert_eq!(line.label("c"), Some("one,two}"));
        assert_eq!(line.label("d"), Some("line\nbreak"));
        assert_eq!(line.value, 2.0);
    }

    #[test]
    fn comments_other_series_and_lines_that_cannot_be_read_are_skipped() {
        let wanted = [OUTBOX_ROWS];
        for line in [
            "",
            "   ",
            "# HELP openorder_outbox_rows Rows.",
            "# TYPE openorder_outbox_rows gauge",
            "openorder_outbox_rows_total 3",
            "openorder_ready 1",
            "openorder_outbox_rows",
            "openorder_outbox_rows three",
            "openorder_outbox_rows NaN",
            "openorder_outbox_rows +Inf",
            "openorder_outbox_rows{a=\"unterminated} 3",
            "openorder_outbox_rows{a=unquoted} 3",
            "openorder_outbox_rows{a=\"x\"}",
        ] {
            assert_eq!(parse_line(line, &wanted), None, "{line:?}");
        }
    }

    #[test]
    fn a_services_gauges_are_its_consumers_most_lag_in_seconds_and_summed_records() {
        let gauges = read_gauges(METRICS);
        assert_eq!(
            gauges.consumers,
            [
                lag("inventory-order-events", 7.25, 10.0),
                lag("inventory-order-cancelled", 0.0, 0.0),
            ]
        );
        assert_eq!(gauges.outbox_rows, Some(3.0));
        assert_eq!(gauges.outbox_oldest_age_seconds, Some(1.5));
        assert_eq!(gauges.pending_oldest_age_seconds, None, "not served");
        assert_eq!(gauges.ready, Some(true));
    }

    #[test]
    fn the_history_keeps_the_last_180_samples_and_none_older_than_15_minutes() {
        let mut samples = VecDeque::new();
        for i in 0..200 {
            keep(&mut samples, sample(i * 1_000));
        }
        assert_eq!(samples.len(), KEPT);
        assert_eq!(samples.front().map(|s| s.at_ms), Some(20_000));
        keep(&mut samples, sample(199_000 + WINDOW_MS - 1_000));
        assert_eq!(
            samples.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
            [198_000, 199_000, 199_000 + WINDOW_MS - 1_000],
            "older than 15 minutes before the newest: dropped"
        );
    }

    #[test]
    fn a_service_that_does_not_answer_leaves_a_gap_not_a_zero() {
        let answered = |at_ms: i64, records: f64| Sample {
            at_ms,
            services: vec![service_sample(
                "inventory-service",
                Ok(format!(
                    "openorder_consumer_lag_records{{consumer=\"c\",partition=\"0\"}} {records}\n"
                )),
            )],
            ..Default::default()
        };
        let away = Sample {
            at_ms: 2_000,
            services: vec![service_sample(
                "inventory-service",
                Err(anyhow::anyhow!("http://x/metrics unreachable")),
            )],
            ..Default::default()
        };
        let samples = [answered(1_000, 3.0), away, answered(3_000, 1.0)];
        let records = series(&samples, |s| s.consumer("c").and_then(|c| c.lag_records));
        assert_eq!(
            records,
            [(1_000, Some(3.0)), (2_000, None), (3_000, Some(1.0))]
        );
        assert_eq!(
            consumers(&samples),
            [("inventory-service".to_string(), "c".to_string())]
        );
        assert_eq!(
            samples[1].services[0].error.as_deref(),
            Some("http://x/metrics unreachable")
        );
    }

    #[test]
    fn the_dead_letter_topics_are_those_any_sample_counted() {
        let counted = |at_ms: i64, topics: &[&str]| {
            let counts = topics.iter().map(|t| one_in(t)).collect();
            Sample {
                at_ms,
                dead_letters: Some(counts),
                ..Default::default()
            }
        };
        let samples = [
            counted(0, &["order.created.DLT"]),
            sample(1_000),
            counted(2_000, &["payment.DLT", "order.created.DLT"]),
        ];
        assert_eq!(
            dead_letter_topics(&samples),
            ["order.created.DLT", "payment.DLT"]
        );
        assert_eq!(samples[0].dead_letters_in("payment.DLT"), None);
        assert_eq!(samples[2].dead_letters_in("payment.DLT"), Some(1.0));
    }

    /// A lag in records sampled every 5 s for a minute, from `first` by `step` a sample.
    fn every_5_s(first: f64, step: f64) -> Vec<Point> {
        (0..=12)
            .map(|i| (i * 5_000, Some(first + step * i as f64)))
            .collect()
    }

    #[test]
    fn a_backlog_at_zero_is_caught_up() {
        assert_eq!(clearing(&every_5_s(120.0, -10.0)), Some(Clearing::CaughtUp));
        assert_eq!(clearing(&[(0, Some(0.0))]), Some(Clearing::CaughtUp));
    }

    #[test]
    fn a_falling_backlog_clears_in_its_lag_over_the_rate_it_falls_at() {
        // 130 records a minute ago, falling by 2 a second: 10 left, 5 s to go.
        let Some(Clearing::In(left)) = clearing(&every_5_s(130.0, -10.0)) else {
            panic!("a falling backlog clears");
        };
        assert!((left.as_secs_f64() - 5.0).abs() < 0.01, "{left:?}");
        assert_eq!(Clearing::In(left).to_string(), "clears in about 5 s");
    }

    #[test]
    fn a_growing_backlog_says_by_how_much_and_one_that_holds_is_not_draining() {
        let Some(Clearing::Growing(rate)) = clearing(&every_5_s(10.0, 5.0)) else {
            panic!("a growing backlog");
        };
        assert!((rate - 1.0).abs() < 1e-9, "{rate}");
        assert_eq!(
            Clearing::Growing(rate).to_string(),
            "growing by 1.0 records/s"
        );
        assert_eq!(clearing(&every_5_s(7.0, 0.0)), Some(Clearing::NotDraining));
        assert_eq!(Clearing::NotDraining.to_string(), "not draining");
    }

    #[test]
    fn only_the_last_minute_counts_and_gaps_are_skipped() {
        // It fell fast long ago, and has held at 40 for the last minute, with gaps.
        let mut series: Vec<Point> = (0..12)
            .map(|i| (i * 5_000, Some(400.0 - 30.0 * i as f64)))
            .collect();
        series.extend((0..=12).map(|i| {
            let at = 120_000 + i * 5_000;
            (at, (i % 3 != 1).then_some(40.0))
        }));
        assert_eq!(clearing(&series), Some(Clearing::NotDraining));
    }

    #[test]
    fn there_is_no_estimate_without_a_rate() {
        assert_eq!(clearing(&[]), None);
        assert_eq!(clearing(&[(0, None), (5_000, None)]), None);
        assert_eq!(clearing(&[(0, None), (5_000, Some(3.0))]), None);
        assert_eq!(
            clearing(&[(0, Some(9.0)), (90_000, Some(3.0))]),
            None,
            "the one before is more than a minute older"
        );
    }

    #[test]
    fn the_sample_interval_is_read_as_other_durations_and_not_shorter_than_100_ms() {
        assert_eq!(parse_every("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_every("200ms"), Ok(Duration::from_millis(200)));
        assert!(parse_every("50ms").is_err());
        assert!(parse_every("often").is_err());
        assert_eq!(HistoryArgs::default().console_history_every, EVERY);
    }
}
