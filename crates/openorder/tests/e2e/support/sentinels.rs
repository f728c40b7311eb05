//! Sentinels: records the tests put behind others on the same partition, to wait on
//! events instead of time. A consumer applies a partition in order and commits past a
//! record only once it is finished, so once a service has committed past a sentinel,
//! every record before it on its partition was processed, and what that wrote is out.

use std::time::Duration;

use serde_json::Value;

use super::{order_created, unique_sku, DltRecord, Stack};

impl Stack {
    /// A fresh order id (900,000,000 and up, never one order-service gives) whose records
    /// share a partition with those keyed `key`. A consumer applies a partition in order,
    /// so a record of it produced after one keyed `key` is a sentinel: once its effect
    /// shows, the earlier record was processed. (Each event is keyed by its own orderId,
    /// as the contract says, so a sentinel cannot simply borrow the key.)
    pub fn order_id_beside(&self, key: &str) -> i64 {
        let partition = self.partition_of(key);
        loop {
            let id = 900_000_000 + rand::random_range(0..99_999_999i64);
            if id.to_string() != key && self.partition_of(&id.to_string()) == partition {
                return id;
            }
        }
    }

    /// Produces, as order-service would write it, the `order.created` of a sentinel: a fresh
    /// order beside `key` ([`Stack::order_id_beside`]) of one unit of a fresh SKU (stocked
    /// with one), with `contact` if any. Nothing is waited for.
    pub async fn produce_sentinel_order(&self, key: &str, contact: Option<Value>) -> Sentinel {
        let id = self.order_id_beside(key);
        let sku = unique_sku("SENTINEL");
        self.set_stock(&sku, 1).await;
        let event_id = contracts::new_event_id();
        let mut value = serde_json::to_value(order_created(id, event_id, &sku, 1)).unwrap();
        if let Some(contact) = contact {
            value["contact"] = contact;
        }
        let event_id = event_id.to_string();
        let at = self
            .produce_keyed(
                &self.topics().order_created(),
                &id.to_string(),
                value.to_string().as_bytes(),
                &[("event-id", &event_id), ("event-type", "order.created")],
            )
            .await;
        Sentinel { id, sku, at }
    }

    /// A sentinel behind the records keyed `key` on `order.created`
    /// ([`Stack::produce_sentinel_order`]), waited for until inventory-service has reserved it
    /// and committed past it ([`Stack::wait_consumed`]): every record of its partition before
    /// it, those keyed `key` included, is finished by then (applied, or dead-lettered; one
    /// set aside to be retried holds the commit back until it is done). Returns its id.
    pub async fn order_created_sentinel(&self, key: &str) -> i64 {
        let sentinel = self.produce_sentinel_order(key, None).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.stock(&sentinel.sku).await["reserved"] != 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the sentinel order {} was not reserved in 60 s",
                sentinel.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait_consumed(
            &self.inventory_url,
            &self.topics().order_created(),
            sentinel.at,
        )
        .await;
        sentinel.id
    }

    /// Two sentinels behind the records keyed `key` on `order.created`, the second followed
    /// one hop on: once the first is through inventory-service
    /// ([`Stack::order_created_sentinel`]), every decision it made on the records before it
    /// is in its outbox, so its decision on the second comes after them on the partition of
    /// `inventory.reserved` they share (the relay publishes in the outbox's order). Waits
    /// until order-service and notification-service have committed past that decision:
    /// whatever inventory-service decided on the records keyed `key` has been applied by
    /// both. Returns the second sentinel's id (it is notified by then).
    pub async fn decision_sentinel(&self, key: &str) -> i64 {
        self.order_created_sentinel(key).await;
        let second = self.order_created_sentinel(key).await;
        let topic = self.topics().inventory_reserved();
        let decision = self.wait_record(&topic, &second.to_string()).await;
        for base_url in [&self.order_url, &self.notification_url] {
            self.wait_consumed(base_url, &topic, (decision.partition, decision.offset))
                .await;
        }
        second
    }

    /// Waits (at most 60 s) until every consumer of the service at `base_url` that reads
    /// partition `partition` of `topic` has committed past `offset`, as its
    /// `GET /admin/status` reports: every record of that partition up to `offset` is
    /// finished by then (applied, or dead-lettered), its effects committed. A record set
    /// aside to be retried holds its partition's commit back until it is done.
    pub async fn wait_consumed(
        &self,
        base_url: &str,
        topic: &str,
        (partition, offset): (i32, i64),
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status: Value = self.get_json(format!("{base_url}/admin/status")).await;
            let committed: Vec<Option<i64>> = status["consumers"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["partitions"].as_array().into_iter().flatten())
                .filter(|p| p["topic"] == topic && p["partition"] == partition)
                .map(|p| p["committed"].as_i64())
                .collect();
            let past = |c: &Option<i64>| matches!(c, Some(c) if *c > offset);
            if !committed.is_empty() && committed.iter().all(past) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{base_url} did not commit past offset {offset} of {topic}/{partition} in 60 s: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (at most 60 s) until the outbox of the service at `base_url` has no row left
    /// to publish, as its `GET /admin/status` reports: every event it wrote before is on
    /// its topic by then (the relay publishes in the outbox's order).
    pub async fn outbox_drained(&self, base_url: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status: Value = self.get_json(format!("{base_url}/admin/status")).await;
            if status["outbox"]["pending"] == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{base_url} still has events to publish after 60 s: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every dead letter on `order.created.DLT` of the records keyed `key` on
    /// `order.created`, from either group that reads it, without a reading window: a
    /// sentinel behind them ([`Stack::produce_sentinel_order`]) is waited for until
    /// inventory-service and notification-service have both committed past it. A record's
    /// dead letter is written before the commit past it, so each one of the records before
    /// the sentinel is on the DLT by then; the DLT is read to its end.
    pub async fn dead_letters_keyed(&self, key: &str) -> Vec<DltRecord> {
        let sentinel = self.produce_sentinel_order(key, None).await;
        let topics = self.topics();
        for base_url in [&self.inventory_url, &self.notification_url] {
            self.wait_consumed(base_url, &topics.order_created(), sentinel.at)
                .await;
        }
        self.records_with_key_to_end(&topics.order_created_dlt(), key)
            .await
    }
}

/// A sentinel order ([`Stack::produce_sentinel_order`]).
pub struct Sentinel {
    pub id: i64,
    pub sku: String,
    /// Where its `order.created` went (partition, offset).
    pub at: (i32, i64),
}
