//! Queueing the deliveries of routed notices: one per channel each goes to (and push
//! subscription), each once, each due when the user's timing says; the log's written at
//! once, the dispatcher woken for the rest when the transaction commits.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use platform::consumer::HandleError;
use platform::db::Tx;

use super::{idempotency_key, Notifier, Routing};
use crate::delivery::channels::log::LogChannel;
use crate::delivery::channels::{lane, per_recipient};
use crate::schedule::{Decision, Schedule, HELD_DIGEST};
use crate::store::{self, NewDelivery};

/// The deliveries of a batch of routed notices, before they are queued.
struct Batch {
    deliveries: Vec<NewDelivery>,
    /// For each delivery, the notice it is of (its place among the routed).
    routing_of: Vec<usize>,
    /// Deliveries to gather into a digest, by user and lane (the channel; for push, the
    /// channel and the subscription): their places among `deliveries`, in the order routed.
    digests: BTreeMap<(i64, String), Vec<usize>>,
}

impl Notifier {
    /// Queues the deliveries of the routed notifications, each once, each due when the
    /// user's timing says ([`crate::schedule`]: at once, after quiet hours, or gathered into
    /// a digest); writes the log's right away (see [`crate::delivery::channels::log`]) and
    /// remembers to wake the dispatcher after the commit for the others.
    pub(super) async fn queue(
        &self,
        tx: &mut Tx,
        routed: &[Routing<'_>],
        schedules: &HashMap<i64, Schedule>,
    ) -> Result<(), HandleError> {
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let mut batch = batch(routed, schedules, now);
        open_or_join_digests(tx, &mut batch, now_ms).await?;
        if batch.deliveries.is_empty() {
            return Ok(());
        }
        let mut added = store::queue_deliveries(tx, &batch.deliveries).await?;
        let late = late_joiners(routed, &batch, &added);
        if !late.is_empty() {
            added.extend(store::queue_deliveries(tx, &late).await?);
        }
        self.log_and_wake(tx, routed, &batch, &added);
        Ok(())
    }

    /// Writes the log's deliveries among those queued (`added`) and counts them; for any
    /// other, the dispatcher is woken when the transaction commits.
    fn log_and_wake(
        &self,
        tx: &mut Tx,
        routed: &[Routing<'_>],
        batch: &Batch,
        added: &HashSet<String>,
    ) {
        let mut logged = 0;
        for (d, &i) in batch.deliveries.iter().zip(&batch.routing_of) {
            if !added.contains(&d.idempotency_key) {
                continue;
            }
            if d.sent {
                let r = &routed[i];
                let text = &r.plan.rendered.text;
                self.channels
                    .log
                    .write(r.order_id, r.kind, &d.recipient, text);
                logged += 1;
            } else {
                // The dispatcher sends it once the consumer's transaction committed (or
                // when it comes due).
                tx.wake_on_commit(&self.dispatcher);
            }
        }
        if logged > 0 {
            self.metrics.add(
                &platform::telemetry::catalogue::NOTIFICATION_ATTEMPTS,
                &[("channel", LogChannel::NAME), ("outcome", "delivered")],
                logged,
            );
        }
    }
}

/// One delivery per routed notice and recipient, the log's sent, each other due when the
/// user's schedule says at `now`; those to gather into a digest noted by user and lane.
fn batch(routed: &[Routing<'_>], schedules: &HashMap<i64, Schedule>, now: DateTime<Utc>) -> Batch {
    let now_ms = now.timestamp_millis();
    let mut batch = Batch {
        deliveries: Vec::new(),
        routing_of: Vec::new(),
        digests: BTreeMap::new(),
    };
    for (i, r) in routed.iter().enumerate() {
        let schedule = schedules.get(&r.user_id);
        for (channel, recipient) in &r.plan.recipients {
            let channel: &'static str = channel;
            let mut d = NewDelivery::plain(
                r.id,
                r.order_id,
                r.user_id,
                channel,
                recipient.clone(),
                idempotency_key(r.event_id, &lane(channel, recipient)),
                now_ms,
            );
            if channel == LogChannel::NAME {
                d.sent = true;
            } else if let Some(schedule) = schedule {
                match schedule.decide(r.kind, now) {
                    Decision::Due { at, held } => {
                        d.due_ms = at.timestamp_millis();
                        d.held = held;
                    }
                    Decision::Digest { window_due } => {
                        d.due_ms = window_due.timestamp_millis();
                        d.held = Some(HELD_DIGEST);
                        batch
                            .digests
                            .entry((r.user_id, lane(channel, recipient)))
                            .or_default()
                            .push(batch.deliveries.len());
                    }
                }
            }
            batch.deliveries.push(d);
            batch.routing_of.push(i);
        }
    }
    batch
}

/// Each group of the batch's digests joins the user's open window on its lane, or its first
/// delivery opens one (and carries the digest, under the digest's key) and the rest join it.
async fn open_or_join_digests(
    tx: &mut Tx,
    batch: &mut Batch,
    now_ms: i64,
) -> Result<(), HandleError> {
    let deliveries = &mut batch.deliveries;
    for ((user_id, lane_key), members) in &batch.digests {
        let first = &deliveries[members[0]];
        let recipient = per_recipient(first.channel).then_some(first.recipient.as_str());
        let open = store::open_digest(tx, *user_id, first.channel, recipient, now_ms).await?;
        let (key, due_ms, joining) = match open {
            Some(open) => (open.key, open.due_ms, &members[..]),
            None => {
                let key = crate::delivery::digest::key(*user_id, lane_key, now_ms);
                let first = &mut deliveries[members[0]];
                first.idempotency_key = key.clone();
                first.digest = Some(key.clone());
                first.digest_start = Some(now_ms);
                (key, first.due_ms, &members[1..])
            }
        };
        for &m in joining {
            let d = &mut deliveries[m];
            d.gathered = true;
            d.digest = Some(key.clone());
            d.due_ms = due_ms;
        }
    }
    Ok(())
}

/// The deliveries that were to open a window whose key was taken already (another
/// transaction opened the same user's window on the same channel in the same millisecond):
/// each notice joins that window instead.
fn late_joiners(
    routed: &[Routing<'_>],
    batch: &Batch,
    added: &HashSet<String>,
) -> Vec<NewDelivery> {
    let mut late = Vec::new();
    for (d, &i) in batch.deliveries.iter().zip(&batch.routing_of) {
        if d.digest_start.is_some() && !added.contains(&d.idempotency_key) {
            let mut joining = NewDelivery::plain(
                d.notification_id,
                d.order_id,
                routed[i].user_id,
                d.channel,
                d.recipient.clone(),
                idempotency_key(routed[i].event_id, &lane(d.channel, &d.recipient)),
                d.due_ms,
            );
            joining.gathered = true;
            joining.held = Some(HELD_DIGEST);
            joining.digest = d.digest.clone();
            late.push(joining);
        }
    }
    late
}
