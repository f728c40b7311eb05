//! The gauges a service computes off the request path. Every [`EVERY`] a task of the
//! runtime ([`Gauges::run`], started by [`crate::service::Runtime::serve`]) reads what
//! `GET /admin/status` reads ([`crate::status`]) and checks what `GET /health/ready` checks
//! ([`web::http::is_ready`]), and sets on `/metrics` (each series' `# HELP` is in [`telemetry::catalogue`]):
//!
//! - `openorder_consumer_lag_records{consumer,topic,partition}`: records not applied yet;
//! - `openorder_consumer_lag_seconds{consumer,topic,partition}`: the age of the oldest of
//!   them;
//! - `openorder_outbox_rows` and `openorder_outbox_oldest_age_seconds`: the outbox backlog;
//! - `openorder_ready`: 1 when `/health/ready` answers 200, else 0.
//!
//! Lag is per member, for the partitions assigned to it: a partition no longer assigned is
//! no longer served. The assignment, the committed offsets and the partitions' ends are
//! read on a blocking thread within [`crate::status::BOUND`]; the consumer's position and
//! the records it holds come from its loop ([`messaging::lanes::Progress`]), which knows
//! what it applied before the group commits it. When the brokers do not answer, the ends
//! read last stand in, so lag in seconds goes on growing while a record waits. The outbox
//! is one query; when it fails (or takes longer than the bound) its gauges keep their last
//! values.
//!
//! Lag in seconds is the age of the oldest record of the partition not applied yet. While
//! the loop holds that record (received, in the batch in hand or waiting in a retry lane)
//! its own timestamp dates it, to the millisecond. While the loop holds none but the
//! partition's end is past its position (records not fetched yet, or fetched and not yet
//! taken, as between two batches), the record was written before the first sample that saw
//! the end past that position ([`EndsSeen`]), so it is dated by that sample: a lower bound,
//! short by at most [`EVERY`]. It is 0 when the consumer is caught up.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use messaging::lanes::Standing;
use store::db::Database;
use telemetry::metrics::Metrics;
use tokio_util::sync::CancellationToken;

use crate::status::{PartitionLag, Watched};

/// How often the gauges are computed.
pub const EVERY: Duration = Duration::from_secs(5);

use telemetry::catalogue::{
    CONSUMER_LAG_RECORDS as LAG_RECORDS, CONSUMER_LAG_SECONDS as LAG_SECONDS, OUTBOX_OLDEST_AGE,
    OUTBOX_ROWS, READY,
};

/// The next offset the consumer applies in a partition: its loop's `next` (the loop knows
/// what it finished before the group commits it, within a second) or the group's
/// `committed` offset, whichever is further; never before the partition's `start`
/// (records retention removed are behind no one).
pub fn position(start: i64, committed: Option<i64>, next: Option<i64>) -> i64 {
    committed.max(next).map_or(start, |p| p.max(start))
}

/// Records not applied yet: the partition's `end` less `position`, and at least the
/// records the loop `held` unfinished (an end read too low, as the embedded broker may
/// report it, does not hide them).
pub fn lag_records(end: i64, position: i64, held: usize) -> i64 {
    let held = i64::try_from(held).unwrap_or(i64::MAX);
    (end - position).max(held).max(0)
}

/// The age in seconds, at `now_ms`, of the oldest record not applied yet, written at
/// `since_ms` (its timestamp, or the first sample that saw it; milliseconds since the
/// epoch): 0 when no record is behind, or nothing dates it.
pub fn lag_seconds(now_ms: i64, lag_records: i64, since_ms: Option<i64>) -> f64 {
    match since_ms {
        Some(since) if lag_records > 0 => seconds(now_ms - since),
        _ => 0.0,
    }
}

/// Milliseconds as seconds, never below 0 (a clock behind the broker's).
fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

/// Samples kept per partition: an hour's at [`EVERY`]. Past that the oldest is dropped,
/// and a record waiting longer is dated by the oldest kept (a lower bound still).
const ENDS_KEPT: usize = 720;

/// When samples first saw a partition's end past each value: the times at which its end
/// grew, for the ends the consumer's position has not reached yet. A record the loop has
/// not received was written before the first sample whose end was past it.
#[derive(Debug, Default)]
pub struct EndsSeen(VecDeque<(i64, i64)>);

impl EndsSeen {
    /// Notes the `end` read at `now_ms`, with the consumer at `position`: the samples whose
    /// end it has reached are forgotten (positions only move on).
    pub fn note(&mut self, now_ms: i64, end: i64, position: i64) {
        while self.0.front().is_some_and(|&(_, seen)| seen <= position) {
            self.0.pop_front();
        }
        if self.0.back().is_none_or(|&(_, seen)| end > seen) && end > position {
            self.0.push_back((now_ms, end));
        }
        while self.0.len() > ENDS_KEPT {
            self.0.pop_front();
        }
    }

    /// When a sample first saw the end past `position` (milliseconds since the epoch).
    pub fn first_past(&self, position: i64) -> Option<i64> {
        self.0
            .iter()
            .find(|&&(_, seen)| seen > position)
            .map(|&(at, _)| at)
    }
}

/// A consumer's name, a topic and a partition.
type PartitionKey = (&'static str, String, i32);

/// What is kept of one partition between samples.
#[derive(Debug)]
struct Tracked {
    /// Its offsets as read last (they stand in when the brokers do not answer).
    last: PartitionLag,
    ends: EndsSeen,
}

/// The lag gauges of every partition assigned to the consumers, kept between samples.
#[derive(Debug, Default)]
pub struct Lags {
    partitions: HashMap<PartitionKey, Tracked>,
}

impl Lags {
    /// Sets `consumer`'s lag gauges at `now_ms` from `read` (its partitions' offsets, as
    /// [`crate::status::consumer_lag`] reads them; None: the consumer has stopped) and
    /// `standings` (what its loop received and finished, read after `read`). A partition
    /// not in `read` is no longer served; a failed read keeps the partitions and the ends
    /// read last.
    pub fn set(
        &mut self,
        metrics: &Metrics,
        consumer: &'static str,
        read: Option<anyhow::Result<Vec<PartitionLag>>>,
        standings: &[Standing],
        now_ms: i64,
    ) {
        let partitions: Vec<PartitionLag> = match read {
            None => Vec::new(),
            Some(Ok(partitions)) => partitions,
            Some(Err(err)) => {
                tracing::debug!(
                    consumer, error = %format!("{err:#}"),
                    "consumer lag not read; the partitions' ends read last stand in"
                );
                self.partitions
                    .iter()
                    .filter(|(key, _)| key.0 == consumer)
                    .map(|(_, tracked)| tracked.last.clone())
                    .collect()
            }
        };
        for read in &partitions {
            let standing = standings
                .iter()
                .find(|s| s.topic == read.topic && s.partition == read.partition);
            let tracked = self
                .partitions
                .entry((consumer, read.topic.clone(), read.partition))
                .or_insert_with(|| Tracked {
                    last: read.clone(),
                    ends: EndsSeen::default(),
                });
            tracked.last = read.clone();
            let next = position(read.start, read.committed, standing.and_then(|s| s.next));
            // What the loop holds counts where its position is the one taken (after a
            // rebalance the group's may be further than what the loop saw).
            let held = standing.filter(|s| s.next == Some(next));
            let records = lag_records(read.end, next, held.map_or(0, |s| s.unfinished));
            tracked.ends.note(now_ms, read.end, next);
            let since = held
                .and_then(|s| s.oldest_unfinished_at)
                .or_else(|| tracked.ends.first_past(next));
            let partition = read.partition.to_string();
            let labels = [
                ("consumer", consumer),
                ("topic", read.topic.as_str()),
                ("partition", partition.as_str()),
            ];
            metrics.gauge(&LAG_RECORDS, &labels, records);
            metrics.gauge_f64(&LAG_SECONDS, &labels, lag_seconds(now_ms, records, since));
        }
        self.partitions.retain(|(name, topic, partition), _| {
            if *name != consumer
                || partitions
                    .iter()
                    .any(|p| &p.topic == topic && p.partition == *partition)
            {
                return true;
            }
            let partition = partition.to_string();
            let labels = [
                ("consumer", consumer),
                ("topic", topic.as_str()),
                ("partition", partition.as_str()),
            ];
            metrics.forget_gauge(&LAG_RECORDS, &labels);
            metrics.forget_gauge(&LAG_SECONDS, &labels);
            false
        });
    }
}

/// The periodic task.
pub struct Gauges {
    pub db: Database,
    pub health: web::http::Health,
    pub watched: Vec<Watched>,
    pub metrics: Metrics,
    pub lags: Lags,
}

impl Gauges {
    /// Sets the series at once and every [`EVERY`] until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.pass() => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(EVERY) => {}
            }
        }
    }

    /// One sample: the consumers' lag, the outbox and readiness, read side by side (each
    /// bounded by [`crate::status::BOUND`] or, for readiness, by its own checks' bounds).
    async fn pass(&mut self) {
        let lags =
            futures_util::future::join_all(self.watched.iter().map(crate::status::consumer_lag));
        let outbox = tokio::time::timeout(crate::status::BOUND, crate::status::outbox(&self.db));
        let ready = web::http::is_ready(&self.health);
        let (lags, outbox, ready) = tokio::join!(lags, outbox, ready);
        let now_ms = chrono::Utc::now().timestamp_millis();
        for (watched, read) in self.watched.iter().zip(lags) {
            // Read after the offsets, so that the loop's position is at least as fresh.
            let standings = watched.progress.standings();
            self.lags
                .set(&self.metrics, watched.name, read, &standings, now_ms);
        }
        match outbox {
            Ok(Ok(outbox)) => {
                self.metrics.gauge(&OUTBOX_ROWS, &[], outbox.pending);
                let age = seconds(outbox.oldest_age_ms.unwrap_or(0));
                self.metrics.gauge_f64(&OUTBOX_OLDEST_AGE, &[], age);
            }
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "outbox backlog not read; its gauges keep their last values")
            }
            Err(_) => tracing::debug!(
                "outbox backlog not read within {} s; its gauges keep their last values",
                crate::status::BOUND.as_secs()
            ),
        }
        self.metrics.gauge(&READY, &[], i64::from(ready));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(partition: i32, committed: Option<i64>, end: i64) -> PartitionLag {
        PartitionLag {
            topic: "order.created".into(),
            partition,
            committed,
            start: 0,
            end,
            lag: 0,
        }
    }

    fn standing(partition: i32, next: i64, unfinished: usize, at: Option<i64>) -> Standing {
        Standing {
            topic: "order.created".into(),
            partition,
            next: Some(next),
            unfinished,
            oldest_unfinished_at: at,
        }
    }

    /// The value of `name` for partition `partition` of consumer `c`, as `/metrics` serves it.
    fn served(
        metrics: &Metrics,
        series: telemetry::catalogue::Series,
        partition: i32,
    ) -> Option<String> {
        let name = series.name;
        let series =
            format!("{name}{{consumer=\"c\",partition=\"{partition}\",topic=\"order.created\"}} ");
        metrics
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(&series).map(str::to_string))
    }

    #[test]
    fn the_position_is_the_further_of_the_loops_and_the_groups_and_never_before_the_start() {
        assert_eq!(position(0, None, None), 0, "nothing known: the start");
        assert_eq!(position(5, None, None), 5);
        assert_eq!(position(0, Some(7), None), 7);
        assert_eq!(
            position(0, Some(7), Some(9)),
            9,
            "the loop is ahead of the commit"
        );
        assert_eq!(
            position(0, Some(12), Some(9)),
            12,
            "the group moved on after a rebalance"
        );
        assert_eq!(
            position(20, Some(12), Some(9)),
            20,
            "retention removed what was behind"
        );
    }

    #[test]
    fn lag_in_records_is_the_end_less_the_position_and_at_least_what_the_loop_holds() {
        assert_eq!(lag_records(10, 10, 0), 0);
        assert_eq!(lag_records(10, 4, 0), 6);
        assert_eq!(lag_records(10, 12, 0), 0, "never negative");
        assert_eq!(
            lag_records(4, 4, 3),
            3,
            "an end read too low hides nothing held"
        );
    }

    #[test]
    fn lag_in_seconds_is_the_age_of_the_oldest_record_behind_and_zero_when_caught_up() {
        assert_eq!(lag_seconds(10_000, 3, Some(7_500)), 2.5);
        assert_eq!(lag_seconds(10_000, 0, Some(7_500)), 0.0, "caught up");
        assert_eq!(lag_seconds(10_000, 3, None), 0.0, "nothing dates it");
        assert_eq!(
            lag_seconds(10_000, 3, Some(12_000)),
            0.0,
            "a clock behind: not negative"
        );
    }

    #[test]
    fn a_record_not_received_yet_is_dated_by_the_first_sample_that_saw_the_end_past_it() {
        let mut ends = EndsSeen::default();
        ends.note(0, 10, 10);
        assert_eq!(ends.first_past(10), None, "caught up: nothing noted");
        ends.note(5_000, 12, 10);
        ends.note(10_000, 12, 10);
        ends.note(15_000, 15, 10);
        assert_eq!(ends.first_past(10), Some(5_000), "the first sample past it");
        // The consumer reaches 12: offsets 12 to 14 appeared by the third sample.
        ends.note(20_000, 15, 12);
        assert_eq!(ends.first_past(12), Some(15_000));
        ends.note(25_000, 15, 15);
        assert_eq!(ends.first_past(15), None);
    }

    #[test]
    fn a_held_record_dates_the_lag_and_a_drained_partition_reads_zero() {
        let (metrics, mut lags) = (Metrics::default(), Lags::default());
        // Offset 3 of partition 0 waits in a lane (written at 1 s); 4 and 5 were applied.
        let held = [standing(0, 3, 1, Some(1_000))];
        lags.set(
            &metrics,
            "c",
            Some(Ok(vec![read(0, Some(3), 6)])),
            &held,
            31_000,
        );
        assert_eq!(served(&metrics, LAG_RECORDS, 0).as_deref(), Some("3"));
        assert_eq!(served(&metrics, LAG_SECONDS, 0).as_deref(), Some("30"));
        // It is dead-lettered: the loop stands after 5, before the group commits it.
        let drained = [standing(0, 6, 0, None)];
        lags.set(
            &metrics,
            "c",
            Some(Ok(vec![read(0, Some(3), 6)])),
            &drained,
            36_000,
        );
        assert_eq!(served(&metrics, LAG_RECORDS, 0).as_deref(), Some("0"));
        assert_eq!(served(&metrics, LAG_SECONDS, 0).as_deref(), Some("0"));
    }

    #[test]
    fn records_the_loop_has_not_received_are_dated_by_the_samples_and_keep_ageing_without_brokers()
    {
        let (metrics, mut lags) = (Metrics::default(), Lags::default());
        lags.set(&metrics, "c", Some(Ok(vec![read(1, Some(8), 8)])), &[], 0);
        assert_eq!(served(&metrics, LAG_SECONDS, 1).as_deref(), Some("0"));
        lags.set(
            &metrics,
            "c",
            Some(Ok(vec![read(1, Some(8), 9)])),
            &[],
            5_000,
        );
        assert_eq!(served(&metrics, LAG_RECORDS, 1).as_deref(), Some("1"));
        assert_eq!(served(&metrics, LAG_SECONDS, 1).as_deref(), Some("0"));
        let away = || Some(Err(anyhow::anyhow!("no answer")));
        lags.set(&metrics, "c", away(), &[], 12_500);
        assert_eq!(
            served(&metrics, LAG_RECORDS, 1).as_deref(),
            Some("1"),
            "the end read last"
        );
        assert_eq!(served(&metrics, LAG_SECONDS, 1).as_deref(), Some("7.5"));
    }

    #[test]
    fn a_partition_no_longer_assigned_is_no_longer_served() {
        let (metrics, mut lags) = (Metrics::default(), Lags::default());
        let both = vec![read(0, Some(1), 1), read(1, Some(1), 1)];
        lags.set(&metrics, "c", Some(Ok(both)), &[], 0);
        lags.set(&metrics, "other", Some(Ok(vec![read(2, None, 0)])), &[], 0);
        lags.set(
            &metrics,
            "c",
            Some(Ok(vec![read(1, Some(1), 1)])),
            &[],
            5_000,
        );
        assert_eq!(served(&metrics, LAG_RECORDS, 0), None);
        assert_eq!(served(&metrics, LAG_SECONDS, 0), None);
        assert_eq!(served(&metrics, LAG_RECORDS, 1).as_deref(), Some("0"));
        assert!(
            metrics.render().contains("consumer=\"other\""),
            "another consumer's partitions stay"
        );
        lags.set(&metrics, "c", None, &[], 10_000);
        assert_eq!(
            served(&metrics, LAG_RECORDS, 1),
            None,
            "the consumer stopped"
        );
    }
}
