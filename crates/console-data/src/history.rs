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
//!
//! The sampler is in `sampler`, the reading of `/metrics` in `metrics`, the estimate of
//! when a backlog clears in `backlog`.

mod backlog;
mod metrics;
mod sampler;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

pub use backlog::{clearing, Clearing};
pub use metrics::{parse_line, read_gauges, Line, PENDING_OLDEST_AGE};
pub use sampler::{spawn, Sampled};

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

/// How often the console samples its charts' figures (`openorder console` and `openorder
/// up`).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Console")]
pub struct HistoryArgs {
    /// How often the console samples the figures its overview charts (consumers' lag, the
    /// outboxes' and the oldest PENDING order's age, dead letters kept): `5s`, `500ms`, or
    /// seconds; at least 100ms. It keeps 180 samples, at most 15 minutes of them.
    #[arg(long, env = "OPENORDER_CONSOLE_HISTORY_EVERY", default_value = "5s", value_parser = parse_every, hide_short_help = true)]
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

#[cfg(test)]
mod tests;
