//! Waiters: woken for their own order only, bounded in number, ended when the service
//! stops; and order ids through notification payloads.

use std::time::Duration;

use super::notify::{order_ids_of, payloads, MAX_PAYLOAD};
use super::*;

#[test]
fn ids_go_in_payloads_under_the_limit_and_come_back_out() {
    let ids: Vec<i64> = (1_000_000_000..1_000_002_000).collect();
    let sent = payloads(&ids);
    assert!(sent.len() > 1, "2,000 ids of 10 digits need several");
    assert!(sent.iter().all(|p| p.len() <= MAX_PAYLOAD));
    let back: Vec<i64> = sent.iter().flat_map(|p| order_ids_of(p)).collect();
    assert_eq!(back, ids);
    assert_eq!(payloads(&[42]), ["42"]);
    assert_eq!(order_ids_of("1,x,3"), [1, 3]);
}

#[tokio::test]
async fn a_watcher_wakes_when_its_order_is_told_and_not_for_another() {
    let waits = Waits::new(4, CancellationToken::new(), Metrics::default());
    let mut watcher = waits.admit().unwrap().watch(7);
    waits.tell(&[8]);
    let soon = Some(Instant::now() + Duration::from_millis(50));
    assert_eq!(watcher.next(soon).await, Woke::TimedOut);
    waits.tell(&[7]);
    let later = Some(Instant::now() + Duration::from_secs(5));
    assert_eq!(watcher.next(later).await, Woke::Told);
    waits.tell_everyone();
    assert_eq!(watcher.next(later).await, Woke::Told);
}

#[tokio::test]
async fn slots_are_bounded_and_freed_with_their_watchers() {
    let waits = Waits::new(2, CancellationToken::new(), Metrics::default());
    let first = waits.admit().unwrap().watch(1);
    let second = waits.admit().unwrap().watch(1);
    assert_eq!(waits.waiting(), 2);
    assert!(waits.admit().is_err(), "a third waiter is refused");
    drop(first);
    assert_eq!(lock(&waits.inner.orders).len(), 1, "order 1 still watched");
    drop(second);
    assert!(lock(&waits.inner.orders).is_empty(), "no watcher, no entry");
    assert_eq!(waits.waiting(), 0);
    assert!(waits.admit().is_ok());
}

#[tokio::test]
async fn every_wait_ends_when_the_service_stops() {
    let stop = CancellationToken::new();
    let waits = Waits::new(1, stop.clone(), Metrics::default());
    let mut watcher = waits.admit().unwrap().watch(1);
    let waiting = tokio::spawn(async move { watcher.next(None).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    stop.cancel();
    let woke = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the wait ended")
        .unwrap();
    assert_eq!(woke, Woke::Stopping);
}
