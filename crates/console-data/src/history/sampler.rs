//! The sampler: a background task that takes a [`Sample`] every `--console-history-every`,
//! from each service's `/metrics` and the brokers' dead-letter topics, read side by side.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{read_gauges, History, Sample, ServiceSample, TopicCount};
use super::{METRICS_BOUND, SHORTEST_EVERY};
use crate::Sources;

/// Longest the dead-letter topics' counts are waited for (the read is bounded itself:
/// a free reader within 10 s, then the brokers' own timeouts).
const BROKERS_BOUND: Duration = Duration::from_secs(20);

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
pub(super) fn service_sample(name: &str, text: anyhow::Result<String>) -> ServiceSample {
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
