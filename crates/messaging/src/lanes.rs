//! The consumer loop's bookkeeping of what waits on what (see [`crate::consumer`]): per
//! partition, the **lanes** (one per key whose record failed, holding that key's records
//! received since, in order), the offsets not finished yet, and how far the partition's
//! offset may be stored. Pure data: the loop takes a lock around it and does the I/O.
//!
//! A record is finished once it is applied or dead-lettered. A partition's stored position
//! is the last offset before the first unfinished one, so a record waiting in a lane keeps
//! the commit behind it while records of other keys after it go on: a restart reads the
//! waiting record again (and the ones after it, which dedupe absorbs).
//!
//! Memory is bounded: a partition with more than [`MAX_HELD`] records in its lanes is
//! paused at the client until they are down to half of it.
//!
//! What it knows is also what the lag gauges want: per partition, the next offset to apply
//! and the timestamp of the oldest record received and not finished ([`Standing`], read
//! through [`Progress`], which the loop shares with the runtime's gauges).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::record::Record;

/// Records a partition's lanes may hold before the partition is paused.
pub const MAX_HELD: usize = 256;

/// A topic and partition.
pub type PartitionId = (String, i32);
/// A record's key (records without one share one lane per partition).
pub type Key = Option<Vec<u8>>;

#[derive(Default)]
pub struct Lanes(HashMap<PartitionId, Partition>);

#[derive(Default)]
struct Partition {
    lanes: HashMap<Key, Lane>,
    /// Offsets received and not finished (in the loop's batch in hand, or in a lane), with
    /// the record's timestamp (milliseconds since the epoch, when it has one).
    unfinished: BTreeMap<i64, Option<i64>>,
    highest_finished: Option<i64>,
    stored: Option<i64>,
    /// Records in lanes (the failing ones included).
    held: usize,
    /// A record finished since the position was last offered.
    dirty: bool,
    paused: bool,
}

struct Lane {
    queue: VecDeque<Record>,
    /// Offset of the last record given to the lane (a record at or before it is one read
    /// again after a rebalance).
    last: i64,
}

/// Where a consumer stands in one partition, as its loop knows it: what it received and has
/// not finished (applied or dead-lettered), and so the next offset it will apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Standing {
    pub topic: String,
    pub partition: i32,
    /// The next offset to apply: the oldest record received and not finished, else the one
    /// after the last finished (None: nothing finished or held yet).
    pub next: Option<i64>,
    /// Records received and not finished: in the batch in hand, or waiting in a lane.
    pub unfinished: usize,
    /// The timestamp (milliseconds since the epoch) of the oldest of them, when there is one
    /// and it carries a timestamp.
    pub oldest_unfinished_at: Option<i64>,
}

/// The loop's bookkeeping, shared: the runtime makes one per consumer, gives it to the loop
/// ([`crate::consumer::ConsumerLoop::progress`]) and reads [`Progress::standings`] from it
/// for the lag gauges. Cheap to clone.
#[derive(Clone, Default)]
pub struct Progress(pub(crate) Arc<Mutex<Lanes>>);

impl Progress {
    /// Where the consumer stands in each partition it received records of.
    pub fn standings(&self) -> Vec<Standing> {
        self.0.lock().expect("never poisoned").standings()
    }
}

/// What the loop must tell the client after a change.
#[derive(Debug, Default, PartialEq)]
pub struct Actions {
    pub pause: Vec<PartitionId>,
    pub resume: Vec<PartitionId>,
}

fn id(record: &Record) -> PartitionId {
    (record.topic.clone(), record.partition)
}

impl Lanes {
    /// Takes a batch as received: a record whose key has a lane is queued there, a record
    /// already unfinished (read again after a rebalance) is dropped, the rest are returned
    /// (marked unfinished: the loop applies them and calls [`Lanes::finished`]).
    pub fn route(
        &mut self,
        batch: impl IntoIterator<Item = Record>,
        actions: &mut Actions,
    ) -> Vec<Record> {
        let batch = batch.into_iter();
        let mut healthy = Vec::with_capacity(batch.size_hint().0);
        for record in batch {
            let partition = self.0.entry(id(&record)).or_default();
            if partition.unfinished.contains_key(&record.offset) {
                continue;
            }
            match partition.lanes.get_mut(&record.key) {
                Some(lane) if record.offset <= lane.last => {}
                Some(lane) => {
                    lane.last = record.offset;
                    partition.unfinished.insert(record.offset, record.timestamp);
                    lane.queue.push_back(record);
                    partition.held += 1;
                    if partition.held > MAX_HELD && !partition.paused {
                        partition.paused = true;
                        actions
                            .pause
                            .push(id(lane.queue.back().expect("just pushed")));
                    }
                }
                None => {
                    partition.unfinished.insert(record.offset, record.timestamp);
                    healthy.push(record);
                }
            }
        }
        healthy
    }

    /// Whether `record` (unfinished, from the loop's batch) must go to a lane that was
    /// opened for its key since the batch was routed; if so it is queued there.
    pub fn queue_if_waiting(&mut self, record: &Record) -> bool {
        let Some(partition) = self.0.get_mut(&id(record)) else {
            return false;
        };
        let Some(lane) = partition.lanes.get_mut(&record.key) else {
            return false;
        };
        lane.last = lane.last.max(record.offset);
        lane.queue.push_back(record.clone());
        partition.held += 1;
        true
    }

    /// Opens a lane for `record`'s key, starting with `record` (unfinished, it just
    /// failed); the caller works through it.
    pub fn open(&mut self, record: &Record) {
        let partition = self.0.entry(id(record)).or_default();
        partition.lanes.insert(
            record.key.clone(),
            Lane {
                queue: VecDeque::new(),
                last: record.offset,
            },
        );
        partition.held += 1;
    }

    /// The next record of the lane of `key` in `partition`, or None when it is empty (the
    /// lane is then closed: the key's next records go to the loop's batches again).
    pub fn next(&mut self, partition: &PartitionId, key: &Key) -> Option<Record> {
        let p = self.0.get_mut(partition)?;
        let lane = p.lanes.get_mut(key)?;
        match lane.queue.pop_front() {
            Some(record) => Some(record),
            None => {
                p.lanes.remove(key);
                None
            }
        }
    }

    /// `record` is applied or dead-lettered (`from_lane`: it was held in a lane).
    pub fn finished(&mut self, record: &Record, from_lane: bool, actions: &mut Actions) {
        let Some(p) = self.0.get_mut(&id(record)) else {
            return;
        };
        p.unfinished.remove(&record.offset);
        p.highest_finished = p.highest_finished.max(Some(record.offset));
        p.dirty = true;
        if from_lane {
            p.held = p.held.saturating_sub(1);
            if p.paused && p.held <= MAX_HELD / 2 {
                p.paused = false;
                actions.resume.push(id(record));
            }
        }
    }

    /// The partitions with records finished since the last call, with the offset to store
    /// (the last one before the first unfinished record). A position is offered again even
    /// when it did not move: after a rebalance the client forgets what was stored for a
    /// partition it lost, and the records read again must store it anew. It is not offered
    /// while records read again before it are unfinished (it would move backwards).
    pub fn positions(&mut self) -> Vec<(PartitionId, i64)> {
        let mut out = Vec::new();
        for (id, p) in &mut self.0 {
            if !std::mem::take(&mut p.dirty) {
                continue;
            }
            let position = match p.unfinished.keys().next() {
                Some(first) => Some(first - 1),
                None => p.highest_finished,
            };
            if position >= p.stored && position >= Some(0) {
                p.stored = position;
                out.push((id.clone(), position.expect("checked above")));
            }
        }
        out
    }

    /// Where each partition received from stands ([`Standing`]), by topic and partition.
    pub fn standings(&self) -> Vec<Standing> {
        let mut out: Vec<Standing> = self
            .0
            .iter()
            .map(|((topic, partition), p)| {
                let oldest = p.unfinished.iter().next();
                Standing {
                    topic: topic.clone(),
                    partition: *partition,
                    next: oldest
                        .map(|(offset, _)| *offset)
                        .or(p.highest_finished.map(|o| o + 1)),
                    unfinished: p.unfinished.len(),
                    oldest_unfinished_at: oldest.and_then(|(_, at)| *at),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    /// Is any lane open?
    #[cfg(test)]
    pub fn any_open(&self) -> bool {
        self.0.values().any(|p| !p.lanes.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64, key: &str) -> Record {
        Record {
            topic: "t".into(),
            partition,
            offset,
            timestamp: None,
            key: Some(key.as_bytes().to_vec()),
            payload: None,
            headers: Vec::new(),
        }
    }

    fn offsets(records: &[Record]) -> Vec<i64> {
        records.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn a_failing_key_holds_back_its_own_records_and_the_commit_but_not_other_keys() {
        let mut lanes = Lanes::default();
        let mut actions = Actions::default();
        let healthy = lanes.route(
            vec![record(0, 0, "a"), record(0, 1, "b"), record(0, 2, "c")],
            &mut actions,
        );
        assert_eq!(offsets(&healthy), [0, 1, 2]);
        // 0 applied, 1 fails: a lane for "b"; 2 applied.
        lanes.finished(&healthy[0], false, &mut actions);
        lanes.open(&healthy[1]);
        lanes.finished(&healthy[2], false, &mut actions);
        assert_eq!(
            lanes.positions(),
            [(("t".into(), 0), 0)],
            "stored up to 0 only"
        );
        // Later records: "b"'s go to its lane, the others to the batch.
        let healthy = lanes.route(vec![record(0, 3, "b"), record(0, 4, "a")], &mut actions);
        assert_eq!(offsets(&healthy), [4]);
        lanes.finished(&healthy[0], false, &mut actions);
        assert_eq!(
            lanes.positions(),
            [(("t".into(), 0), 0)],
            "still behind offset 1 (offered again, unmoved)"
        );
        // The lane finishes 1, then 3, then closes.
        let key = Some(b"b".to_vec());
        let p = ("t".to_string(), 0);
        lanes.finished(&record(0, 1, "b"), true, &mut actions);
        assert_eq!(lanes.positions(), [(p.clone(), 2)]);
        let next = lanes.next(&p, &key).unwrap();
        assert_eq!(next.offset, 3);
        lanes.finished(&next, true, &mut actions);
        assert!(lanes.next(&p, &key).is_none());
        assert!(!lanes.any_open());
        assert_eq!(lanes.positions(), [(p, 4)]);
        assert_eq!(actions, Actions::default(), "nothing paused");
    }

    #[test]
    fn records_read_again_after_a_rebalance_are_dropped() {
        let mut lanes = Lanes::default();
        let mut actions = Actions::default();
        let healthy = lanes.route(vec![record(1, 5, "x")], &mut actions);
        lanes.open(&healthy[0]);
        let queued = lanes.route(vec![record(1, 6, "x")], &mut actions);
        assert!(queued.is_empty());
        let again = lanes.route(vec![record(1, 5, "x"), record(1, 6, "x")], &mut actions);
        assert!(again.is_empty());
        let p = ("t".to_string(), 1);
        let key = Some(b"x".to_vec());
        assert_eq!(lanes.next(&p, &key).unwrap().offset, 6);
        assert!(lanes.next(&p, &key).is_none(), "6 was queued once");
    }

    #[test]
    fn a_position_the_client_refused_is_offered_again_when_its_records_come_back() {
        let mut lanes = Lanes::default();
        let mut actions = Actions::default();
        let healthy = lanes.route(vec![record(2, 7, "a"), record(2, 8, "b")], &mut actions);
        for r in &healthy {
            lanes.finished(r, false, &mut actions);
        }
        let p = ("t".to_string(), 2);
        assert_eq!(lanes.positions(), [(p.clone(), 8)]);
        // Revoked: the client refused the store. Assigned again, the records come back
        // from 7, and the unmoved position is offered again once they finish.
        let again = lanes.route(vec![record(2, 7, "a"), record(2, 8, "b")], &mut actions);
        assert_eq!(
            offsets(&again),
            [7, 8],
            "applied again (dedupe absorbs them)"
        );
        for r in &again {
            lanes.finished(r, false, &mut actions);
        }
        assert_eq!(lanes.positions(), [(p, 8)], "stored again");
    }

    #[test]
    fn records_read_again_after_a_revoke_store_their_position_anew() {
        let mut lanes = Lanes::default();
        let mut actions = Actions::default();
        let p = ("t".to_string(), 3);
        let healthy = lanes.route(vec![record(3, 0, "a"), record(3, 1, "b")], &mut actions);
        for r in &healthy {
            lanes.finished(r, false, &mut actions);
        }
        assert_eq!(lanes.positions(), [(p.clone(), 1)]);
        // The broker was away: nothing was committed, the partition was revoked and given
        // back, and the client (which forgot the stored offset) reads from 0 again.
        let again = lanes.route(vec![record(3, 0, "a")], &mut actions);
        assert!(lanes.positions().is_empty(), "nothing finished yet");
        lanes.finished(&again[0], false, &mut actions);
        assert_eq!(lanes.positions(), [(p, 1)], "stored again");
    }

    #[test]
    fn a_partition_holding_too_many_records_is_paused_until_they_are_half_done() {
        let mut lanes = Lanes::default();
        let mut actions = Actions::default();
        let first = lanes.route(vec![record(0, 0, "k")], &mut actions);
        lanes.open(&first[0]);
        let more: Vec<Record> = (1..=MAX_HELD as i64).map(|o| record(0, o, "k")).collect();
        lanes.route(more, &mut actions);
        assert_eq!(actions.pause, [("t".to_string(), 0)]);
        lanes.finished(&first[0], true, &mut actions);
        let p = ("t".to_string(), 0);
        let key = Some(b"k".to_vec());
        while actions.resume.is_empty() {
            let next = lanes.next(&p, &key).unwrap();
            lanes.finished(&next, true, &mut actions);
        }
        assert_eq!(actions.resume, [p]);
    }

    #[test]
    fn a_partition_stands_at_its_oldest_unfinished_record_with_that_records_timestamp() {
        let mut lanes = Lanes::default();
        let mut actions = Actions::default();
        let stamped = |offset: i64, key: &str, at: i64| Record {
            timestamp: Some(at),
            ..record(0, offset, key)
        };
        let healthy = lanes.route(
            vec![
                stamped(4, "a", 1_000),
                stamped(5, "b", 2_000),
                stamped(6, "c", 3_000),
            ],
            &mut actions,
        );
        // 4 applied; 5 fails and waits in a lane; 6 applied.
        lanes.finished(&healthy[0], false, &mut actions);
        lanes.open(&healthy[1]);
        lanes.finished(&healthy[2], false, &mut actions);
        let standing = Standing {
            topic: "t".into(),
            partition: 0,
            next: Some(5),
            unfinished: 1,
            oldest_unfinished_at: Some(2_000),
        };
        assert_eq!(lanes.standings(), std::slice::from_ref(&standing));
        // The lane finishes 5: nothing is held, the next offset is the one after 6.
        lanes.finished(&healthy[1], true, &mut actions);
        assert_eq!(
            lanes.standings(),
            [Standing {
                next: Some(7),
                unfinished: 0,
                oldest_unfinished_at: None,
                ..standing
            }]
        );
    }

    #[test]
    fn progress_shares_what_the_loop_knows() {
        let progress = Progress::default();
        let mut actions = Actions::default();
        assert!(progress.standings().is_empty(), "nothing received yet");
        // The loop's handle and the gauges' are one.
        let loops = progress.clone();
        let healthy = loops
            .0
            .lock()
            .unwrap()
            .route(vec![record(1, 0, "k")], &mut actions);
        assert_eq!(healthy.len(), 1);
        let standings = progress.standings();
        assert_eq!(standings.len(), 1);
        assert_eq!((standings[0].next, standings[0].unfinished), (Some(0), 1));
        assert_eq!(standings[0].oldest_unfinished_at, None, "no timestamp");
    }
}
