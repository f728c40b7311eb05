// OpenOrder patch (change 12, vendor/README.md): the newest batches of each partition, kept
// in memory as they were produced, so that a fetch at the tail of a partition (what every
// consumer that keeps up asks for) is answered without reading the records and their
// headers back from the database and encoding them again. Fetching was the broker's largest
// cost: each record is read by every consumer group of its topic.
//
// What is kept is exactly what the database holds: a batch is added after its produce
// committed, with the base offset the produce gave it (the base offset and the partition
// leader epoch lie outside a batch's CRC, so they may be set), and only a run of batches
// that follow each other without a gap is kept per partition. A produce that does not
// continue the run (a transactional or control batch, which is never kept, or produces of
// one partition finishing out of order) starts a new run, so an offset the run does not
// cover is read from the database as before. Like Kafka, an answer starts with the whole
// batch holding the requested offset (clients skip the records before it) and carries at
// least one batch.
//
// Anything that removes or rewrites records (topic deletion or creation, retention and
// compaction, a transaction's end) forgets everything, and a produce that began before such
// a forgetting keeps nothing (its partition may be gone).

use std::collections::{HashMap, VecDeque};

use tansu_sans_io::record::deflated;

use crate::Topition;

/// The bytes of batches kept per partition; the oldest are dropped beyond it.
const BYTES_PER_PARTITION: usize = 512 * 1024;

#[derive(Debug, Default)]
pub(super) struct Tail {
    partitions: HashMap<Topition, Run>,
    /// How many times everything was forgotten.
    forgotten: u64,
}

/// Batches of one partition, each starting where the one before ended.
#[derive(Debug, Default)]
struct Run {
    batches: VecDeque<deflated::Batch>,
    bytes: usize,
}

/// A batch's size on the wire: its length plus the base offset and length fields.
fn size_of(batch: &deflated::Batch) -> usize {
    usize::try_from(batch.batch_length).unwrap_or_default() + 12
}

impl Tail {
    /// What a produce passes to [`Tail::produced`]: taken before it begins.
    pub(super) fn forgotten(&self) -> u64 {
        self.forgotten
    }

    /// Keeps `batch`, committed to `topition` at `base_offset`, if it may be served as is
    /// and nothing was forgotten since the produce began (`forgotten`).
    pub(super) fn produced(
        &mut self,
        forgotten: u64,
        transactional: bool,
        topition: &Topition,
        base_offset: i64,
        mut batch: deflated::Batch,
    ) {
        let plain = forgotten == self.forgotten
            && !transactional
            && !batch.is_transactional()
            && !batch.is_control()
            // The engine stores record n of a batch at base offset + n.
            && i64::from(batch.last_offset_delta) + 1 == i64::from(batch.record_count);
        if !plain {
            return;
        }
        batch.base_offset = base_offset;
        // As a batch read back from the database has it.
        batch.partition_leader_epoch = -1;
        let run = self.partitions.entry(topition.clone()).or_default();
        if run.batches.back().map(|last| last.max_offset() + 1) != Some(base_offset) {
            run.batches.clear();
            run.bytes = 0;
        }
        run.bytes += size_of(&batch);
        run.batches.push_back(batch);
        while run.bytes > BYTES_PER_PARTITION && run.batches.len() > 1 {
            let dropped = run.batches.pop_front().expect("more than one batch");
            run.bytes -= size_of(&dropped);
        }
    }

    /// The kept batches from the one holding `offset`, up to `max_bytes` (at least one);
    /// `None` if `offset` is not among the kept ones.
    pub(super) fn fetch(
        &self,
        topition: &Topition,
        offset: i64,
        max_bytes: u32,
    ) -> Option<Vec<deflated::Batch>> {
        let run = self.partitions.get(topition)?;
        if offset < run.batches.front()?.base_offset {
            return None;
        }
        let first = run.batches.partition_point(|batch| batch.max_offset() < offset);
        if first == run.batches.len() {
            return None;
        }
        let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let mut bytes = 0;
        let mut answer = Vec::new();
        for batch in run.batches.range(first..) {
            bytes += size_of(batch);
            if !answer.is_empty() && bytes > max_bytes {
                break;
            }
            answer.push(batch.clone());
        }
        Some(answer)
    }

    pub(super) fn forget_all(&mut self) {
        self.forgotten += 1;
        self.partitions.clear();
    }
}
