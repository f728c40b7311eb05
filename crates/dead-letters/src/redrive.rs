//! The automatic redrive policy, off by default: dead letters whose failure was transient
//! (the consumer marked them `openorder-failure-kind: transient`, or their class is one the
//! operator named) are replayed once they are `after` old, each at most up to a cap on its
//! `openorder-replay-count`, and no more than a budget a minute over all of them.
//!
//! It reads the DLTs and the parking lots: a redriven record that fails again is parked
//! ([`crate::write`]), and the policy takes it from there again after the delay, until its
//! replay count reaches the cap. Past the cap a parked record stays, for a person to mend
//! and replay deliberately. Every redrive is in the replay ledger (`by`: `auto-redrive`),
//! so a dead letter is redriven once; the history headers say which were automatic.
//!
//! One instance should run it (inventory-service's `--auto-redrive`): two would read the
//! same ledger and could both send a dead letter they read at the same moment.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use kafka_clients::KafkaArgs;
use messaging::record::Record;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::read::{
    dlt_topics, parked_topics, read_all, read_with_ledger, send_all, LetterHeaders, ReplayResult,
    Sending,
};

/// Who the ledger and the history headers say replayed a record the policy redrove.
pub const BY: &str = "auto-redrive";

/// The policy's limits.
#[derive(Clone, Debug)]
pub struct AutoRedrive {
    /// A dead letter is redriven once it is this old (its time in the DLT or parking lot).
    pub after: Duration,
    /// Largest `openorder-replay-count` a redriven record carries: a record is redriven
    /// until its count reaches this (replays by hand count too).
    pub max_replays: u32,
    /// Most records redriven in any minute, over all topics.
    pub per_minute: u32,
    /// Error classes (`kafka_dlt-exception-fqcn`) taken besides the dead letters marked
    /// transient: for dead letters written before the kind was recorded, or a class known
    /// to pass.
    pub classes: Vec<String>,
}

impl AutoRedrive {
    /// How often the dead-letter topics are read: the delay, between 200 ms and 10 s.
    pub fn every(&self) -> Duration {
        self.after
            .clamp(Duration::from_millis(200), Duration::from_secs(10))
    }

    /// Is `letter` of a kind the policy redrives (transient, or of a class named)?
    pub fn takes(&self, letter: &Record) -> bool {
        letter.failure_kind().as_deref() == Some("transient")
            || letter
                .error_class()
                .is_some_and(|class| self.classes.contains(&class))
    }

    /// Is `letter` due now (`now_ms`): of a kind it takes, at least `after` old, under the
    /// cap, with its value, and not in the ledger (`done`) yet?
    pub fn due(&self, letter: &Record, now_ms: i64, done: &HashMap<String, u32>) -> bool {
        let old_enough = letter
            .timestamp
            .is_some_and(|at| now_ms.saturating_sub(at) >= self.after.as_millis() as i64);
        self.takes(letter)
            && old_enough
            && letter.replay_count() < self.max_replays
            && letter.value_omitted().is_none()
            && !done.contains_key(&letter.position())
    }
}

/// The budget: how many records were sent in the last minute.
#[derive(Debug)]
pub struct Budget {
    per_minute: u32,
    sent: VecDeque<Instant>,
}

impl Budget {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            sent: VecDeque::new(),
        }
    }

    /// How many more may be sent at `now`.
    pub fn room(&mut self, now: Instant) -> usize {
        while self
            .sent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
        {
            self.sent.pop_front();
        }
        (self.per_minute as usize).saturating_sub(self.sent.len())
    }

    /// `n` were sent at `now`.
    pub fn spend(&mut self, now: Instant, n: usize) {
        self.sent.extend(std::iter::repeat_n(now, n));
    }
}

/// Runs the policy until `stop`: a pass every [`AutoRedrive::every`].
pub async fn run(
    kafka: KafkaArgs,
    policy: AutoRedrive,
    metrics: telemetry::metrics::Metrics,
    stop: CancellationToken,
) {
    tracing::info!(
        after_ms = policy.after.as_millis() as u64,
        max_replays = policy.max_replays,
        per_minute = policy.per_minute,
        "automatic redrive on"
    );
    let mut budget = Budget::new(policy.per_minute);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(policy.every()) => {}
        }
        match pass(&kafka, &policy, &mut budget).await {
            Ok(results) => {
                for r in results.iter().filter(|r| r.outcome == "replayed") {
                    metrics.inc(
                        &telemetry::catalogue::RECORDS_AUTO_REDRIVEN,
                        &[("topic", &r.target_topic)],
                    );
                    tracing::info!(position = %r.position, to = %r.target_topic, replay_count = r.replay_count, "dead letter redriven automatically");
                }
            }
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), "automatic redrive pass failed")
            }
        }
    }
}

/// One pass: what is due, within the budget, sent.
pub async fn pass(
    kafka: &KafkaArgs,
    policy: &AutoRedrive,
    budget: &mut Budget,
) -> anyhow::Result<Vec<ReplayResult>> {
    let room = budget.room(Instant::now());
    if room == 0 {
        return Ok(Vec::new());
    }
    let (letters, done) = read_with_ledger(&kafka.broker, |args| {
        let mut letters = Vec::new();
        for topic in dlt_topics(args)?.into_iter().chain(parked_topics(args)?) {
            letters.extend(read_all(args, &topic)?);
        }
        Ok(letters)
    })
    .await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let due: Vec<&Record> = letters
        .iter()
        .filter(|d| policy.due(d, now_ms, &done))
        .take(room)
        .collect();
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let how = Sending {
        dry_run: false,
        force: false,
        max_replays: policy.max_replays,
        rate: None,
        by: BY,
        edit: None,
    };
    let results = send_all(kafka, &due, &done, &how).await?;
    let sent = results.iter().filter(|r| r.outcome == "replayed").count();
    budget.spend(Instant::now(), sent);
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::headers;

    fn letter(kind: Option<&str>, class: &str, replay_count: u32, at: i64) -> Record {
        let mut hs = vec![(
            headers::DLT_EXCEPTION_FQCN.to_string(),
            Some(class.as_bytes().to_vec()),
        )];
        if let Some(kind) = kind {
            hs.push((
                headers::FAILURE_KIND.to_string(),
                Some(kind.as_bytes().to_vec()),
            ));
        }
        if replay_count > 0 {
            hs.push((
                headers::REPLAY_COUNT.to_string(),
                Some(replay_count.to_string().into_bytes()),
            ));
        }
        Record {
            topic: "order.created.PARKED".into(),
            partition: 0,
            offset: i64::from(replay_count),
            timestamp: Some(at),
            key: Some(b"7".to_vec()),
            payload: Some(b"{}".to_vec()),
            headers: hs,
        }
    }

    fn policy() -> AutoRedrive {
        AutoRedrive {
            after: Duration::from_secs(60),
            max_replays: 3,
            per_minute: 2,
            classes: vec!["openorder.Named".into()],
        }
    }

    #[test]
    fn only_transient_failures_or_named_classes_are_taken() {
        let p = policy();
        assert!(p.takes(&letter(
            Some("transient"),
            "openorder.SimulatedFailure",
            0,
            0
        )));
        assert!(!p.takes(&letter(
            Some("permanent"),
            "openorder.UndecodableRecord",
            0,
            0
        )));
        assert!(!p.takes(&letter(None, "openorder.SimulatedFailure", 0, 0)));
        assert!(p.takes(&letter(None, "openorder.Named", 0, 0)));
    }

    #[test]
    fn a_dead_letter_is_due_after_the_delay_under_the_cap_and_once() {
        let p = policy();
        let now = 1_000_000;
        let done = HashMap::new();
        let fresh = letter(Some("transient"), "c", 0, now - 59_000);
        let old = letter(Some("transient"), "c", 0, now - 60_000);
        assert!(!p.due(&fresh, now, &done), "before the delay");
        assert!(p.due(&old, now, &done));
        let at_cap = letter(Some("transient"), "c", 3, now - 60_000);
        assert!(!p.due(&at_cap, now, &done), "the cap stops it");
        assert!(p.due(&letter(Some("transient"), "c", 2, now - 60_000), now, &done));
        let mut done = HashMap::new();
        done.insert(old.position(), 1);
        assert!(!p.due(&old, now, &done), "in the ledger already");
    }

    #[test]
    fn the_budget_allows_so_many_a_minute() {
        let mut budget = Budget::new(2);
        let start = Instant::now();
        assert_eq!(budget.room(start), 2);
        budget.spend(start, 2);
        assert_eq!(budget.room(start + Duration::from_secs(59)), 0);
        assert_eq!(budget.room(start + Duration::from_secs(60)), 2);
    }
}
