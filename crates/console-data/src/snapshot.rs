//! The overview's figures at one moment ([`Snapshot`]): each service's health, outbox
//! backlog and age and its consumers' lag, records and events/s per topic, dead letters
//! kept. Work is shared ([`Live`]): a snapshot younger than a second and a half is handed
//! out again rather than read again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

use crate::Sources;

/// The overview's figures at one moment.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub at_ms: i64,
    pub services: Vec<ServiceFigures>,
    pub topics: Vec<TopicFigures>,
    /// Records kept in the dead-letter topics.
    pub dead_letters: i64,
    /// Why the topics could not be read, if they could not.
    pub broker_error: Option<String>,
}

/// One service's figures: its health, its outbox, its consumers' lag.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceFigures {
    pub name: String,
    pub url: String,
    pub ready: bool,
    pub outbox_pending: Option<i64>,
    pub outbox_oldest_age_ms: Option<i64>,
    /// Consumer group → lag summed over its partitions.
    pub lag: Vec<(String, i64)>,
}

/// One topic's figures: its records, how fast they come, who reads it and how far behind.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicFigures {
    pub name: String,
    pub partitions: usize,
    pub records: i64,
    /// Records written per second since the previous snapshot.
    pub per_second: Option<f64>,
    /// Groups reading the topic (as the services report them) and their lag on it.
    pub groups: Vec<(String, i64)>,
}

/// A snapshot, when it was read, and each topic's end then (to count rates from).
type Taken = (Instant, Arc<Snapshot>, HashMap<String, i64>);

/// The latest snapshot, shared by everyone who watches the overview.
#[derive(Default)]
pub struct Live {
    latest: Mutex<Option<Taken>>,
}

/// Snapshots this fresh are shared rather than read again.
const FRESH: Duration = Duration::from_millis(1500);

impl Live {
    /// A snapshot at most [`FRESH`] old (read now when the last one is older).
    pub async fn snapshot<S: Sources>(
        &self,
        console: &Arc<S>,
        token: Option<&str>,
    ) -> Arc<Snapshot> {
        let mut latest = self.latest.lock().await;
        if let Some((at, snapshot, _)) = latest.as_ref() {
            if at.elapsed() < FRESH {
                return snapshot.clone();
            }
        }
        let previous = latest.take();
        let (snapshot, ends) = read(console, token, previous.as_ref()).await;
        let snapshot = Arc::new(snapshot);
        *latest = Some((Instant::now(), snapshot.clone(), ends));
        snapshot
    }
}

/// Reads a snapshot: each service's readiness and status side by side, then the topics
/// (their rates counted from the `previous` snapshot's ends).
async fn read<S: Sources>(
    console: &Arc<S>,
    token: Option<&str>,
    previous: Option<&Taken>,
) -> (Snapshot, HashMap<String, i64>) {
    let mut snapshot = Snapshot {
        at_ms: chrono::Utc::now().timestamp_millis(),
        ..Default::default()
    };
    let services = console.services();
    let mut group_lag: HashMap<(String, String), i64> = HashMap::new();
    // The three services are asked side by side (each status takes a broker round trip).
    let asked = futures_util::future::join_all(services.all().map(|(name, url)| async move {
        let (ready, status) = tokio::join!(services.ready(url), services.status(url, token));
        (name, url, ready, status)
    }))
    .await;
    for (name, url, ready, status) in asked {
        let mut lag: Vec<(String, i64)> = Vec::new();
        if let Some(s) = &status {
            for c in &s.consumers {
                let total: i64 = c.partitions.iter().map(|p| p.lag.max(0)).sum();
                lag.push((c.group.clone(), total));
                for p in &c.partitions {
                    *group_lag
                        .entry((p.topic.clone(), c.group.clone()))
                        .or_default() += p.lag.max(0);
                }
            }
        }
        snapshot.services.push(ServiceFigures {
            name: name.to_string(),
            url: url.to_string(),
            ready,
            outbox_pending: status.as_ref().map(|s| s.outbox.pending),
            outbox_oldest_age_ms: status.as_ref().and_then(|s| s.outbox.oldest_age_ms),
            lag,
        });
    }
    let console2 = console.clone();
    let mut ends = HashMap::new();
    match crate::blocking(move || console2.readers().topics()).await {
        Ok(topics) => {
            let elapsed = previous.map(|(at, _, _)| at.elapsed().as_secs_f64());
            for t in topics {
                let end: i64 = t.partitions.iter().map(|p| p.high).sum();
                let per_second = match (previous.and_then(|(_, _, e)| e.get(&t.name)), elapsed) {
                    (Some(before), Some(secs)) if secs > 0.0 => {
                        Some(((end - before).max(0) as f64) / secs)
                    }
                    _ => None,
                };
                ends.insert(t.name.clone(), end);
                if t.name.ends_with(contracts::topics::DLT_SUFFIX) {
                    snapshot.dead_letters += t.records;
                }
                let mut groups: Vec<(String, i64)> = group_lag
                    .iter()
                    .filter(|((topic, _), _)| *topic == t.name)
                    .map(|((_, g), lag)| (g.clone(), *lag))
                    .collect();
                groups.sort();
                snapshot.topics.push(TopicFigures {
                    partitions: t.partitions.len(),
                    records: t.records,
                    name: t.name,
                    per_second,
                    groups,
                });
            }
        }
        Err(err) => snapshot.broker_error = Some(format!("{err:#}")),
    }
    (snapshot, ends)
}
