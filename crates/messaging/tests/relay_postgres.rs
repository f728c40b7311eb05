//! The outbox relay on PostgreSQL, against a real server and a real Kafka broker: while
//! another holds the outbox lock (a relay of another instance mid-pass), a relay publishes
//! nothing and leaves the rows; once the lock is free, it publishes them, in id order, and
//! deletes them.

use std::time::Duration;

use messaging::relay::{Relay, RelayOutcome};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Message};
use sqlx::Row;
use store::db::{Database, Schema};

/// The relay's advisory lock key (`messaging::relay`'s `OUTBOX_LOCK`: "order_ob").
const OUTBOX_LOCK: i64 = 0x6f72_6465_725f_6f62;

/// Test servers, or None when external servers are skipped.
fn servers() -> Option<(String, String)> {
    match (
        std::env::var("OPENORDER_TEST_POSTGRES_URL"),
        std::env::var("OPENORDER_TEST_KAFKA_BOOTSTRAP"),
    ) {
        (Ok(postgres), Ok(kafka)) => Some((postgres, kafka)),
        _ => {
            assert!(
                std::env::var_os("OPENORDER_TEST_SKIP_EXTERNAL").is_some(),
                "OPENORDER_TEST_POSTGRES_URL and OPENORDER_TEST_KAFKA_BOOTSTRAP are not set: run the tests with scripts/test.sh (or set OPENORDER_TEST_SKIP_EXTERNAL=1)"
            );
            None
        }
    }
}

async fn database(base: &str) -> Database {
    sqlx::any::install_default_drivers();
    let name = format!("relay_{}", std::process::id()) + &format!("_{}", nanos());
    let admin = sqlx::AnyPool::connect(base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    Database::connect(&url, 4, &Schema(&[store::outbox::TABLE]))
        .await
        .unwrap()
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn topic(bootstrap: &str) -> String {
    let name = format!("relay-test-{}", nanos());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(&name, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    name
}

async fn enqueue(db: &Database, topic: &str, keys: &[&str]) {
    for key in keys {
        sqlx::query(
            "INSERT INTO outbox (topic, record_key, payload, headers, created_at) VALUES ($1, $2, $3, '{}', '2026-12-07T00:00:00.000Z')",
        )
        .bind(topic)
        .bind(*key)
        .bind(format!("{{\"key\":\"{key}\"}}"))
        .execute(&db.pool)
        .await
        .unwrap();
    }
}

async fn waiting(db: &Database) -> i64 {
    sqlx::query("SELECT count(*) FROM outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// A fresh database and topic, and a relay between them that passes every `poll_interval`
/// when nothing wakes it; with the Kafka bootstrap address. None when external servers are
/// skipped.
async fn relay_under_test(poll_interval: Duration) -> Option<(String, Database, String, Relay)> {
    let (postgres, bootstrap) = servers()?;
    let db = database(&postgres).await;
    let topic = topic(&bootstrap).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    let relay = Relay::new(
        "relay-test",
        db.clone(),
        producer,
        db.relay_waker(),
        100,
        poll_interval,
    );
    Some((bootstrap, db, topic, relay))
}

/// The keys on `topic`, in offset order (all of them, read for at most 10 s).
fn published(bootstrap: &str, topic: &str, expected: usize) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("relay-test-{}", nanos()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut keys = Vec::new();
    while keys.len() < expected && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            keys.push(String::from_utf8_lossy(message.key().unwrap_or_default()).to_string());
        }
    }
    // A moment more, so that a record too many would be seen.
    if let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) {
        keys.push(String::from_utf8_lossy(message.key().unwrap_or_default()).to_string());
    }
    keys
}

/// A transaction holding the relay's lock, as another instance's relay mid-pass does.
async fn holding_the_outbox_lock(db: &Database) -> sqlx::Transaction<'static, sqlx::Any> {
    let mut other = db.pool.begin().await.unwrap();
    let locked: bool = sqlx::query("SELECT pg_try_advisory_xact_lock($1)")
        .bind(OUTBOX_LOCK)
        .fetch_one(&mut *other)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert!(locked, "the outbox lock was free to take");
    other
}

/// Stops a running relay, which must end within 10 s.
async fn stopped(stop: tokio_util::sync::CancellationToken, running: tokio::task::JoinHandle<()>) {
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the relay stops within 10 s")
        .unwrap();
}

#[tokio::test]
async fn a_relay_publishes_nothing_while_another_holds_the_outbox_lock_and_everything_in_order_once_it_is_free(
) {
    let Some((bootstrap, db, topic, relay)) = relay_under_test(Duration::from_secs(1)).await else {
        return;
    };
    enqueue(&db, &topic, &["a", "b"]).await;
    assert_eq!(
        relay.relay_once().await.unwrap(),
        RelayOutcome::Published(2)
    );
    assert_eq!(waiting(&db).await, 0, "published rows are deleted");

    // Another instance's relay mid-pass: it holds the lock in its transaction.
    let other = holding_the_outbox_lock(&db).await;
    enqueue(&db, &topic, &["c", "d", "e"]).await;
    assert_eq!(relay.relay_once().await.unwrap(), RelayOutcome::Held);
    assert_eq!(waiting(&db).await, 3, "the rows wait for the lock's holder");

    other.rollback().await.unwrap();
    assert_eq!(
        relay.relay_once().await.unwrap(),
        RelayOutcome::Published(3)
    );
    assert_eq!(waiting(&db).await, 0);
    assert_eq!(relay.relay_once().await.unwrap(), RelayOutcome::Idle);

    assert_eq!(
        published(&bootstrap, &topic, 5),
        ["a", "b", "c", "d", "e"],
        "each row once, in id order"
    );
}

/// How many rows wait in the outbox once it has `want` (or after 10 s).
async fn waiting_until(db: &Database, want: i64) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = waiting(db).await;
        if n == want || tokio::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_running_relay_publishes_a_row_that_commits_after_a_later_row_was_published() {
    let Some((bootstrap, db, topic, relay)) = relay_under_test(Duration::from_millis(100)).await
    else {
        return;
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(relay.run(stop.clone()));

    // The first row's transaction draws its id and stays open while a later row commits
    // and goes out: a relay that read on from the last id it sent would skip the first.
    let mut slow = db.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO outbox (topic, record_key, payload, headers, created_at) VALUES ($1, 'slow', '{}', '{}', '2026-12-07T00:00:00.000Z')",
    )
    .bind(&topic)
    .execute(&mut *slow)
    .await
    .unwrap();
    enqueue(&db, &topic, &["fast"]).await;
    db.relay_waker().wake();
    assert_eq!(
        waiting_until(&db, 0).await,
        0,
        "the committed row is published and deleted"
    );
    slow.commit().await.unwrap();
    db.relay_waker().wake();
    assert_eq!(
        waiting_until(&db, 0).await,
        0,
        "the late row is published and deleted"
    );
    enqueue(&db, &topic, &["after"]).await;
    db.relay_waker().wake();
    assert_eq!(waiting_until(&db, 0).await, 0);

    stopped(stop, running).await;
    assert_eq!(
        published(&bootstrap, &topic, 3),
        ["fast", "slow", "after"],
        "each row once, in the order they committed"
    );
}

#[tokio::test]
async fn a_relay_that_found_the_outbox_held_publishes_its_row_soon_after_the_holder_lets_go_not_at_its_next_poll(
) {
    let Some((bootstrap, db, topic, relay)) = relay_under_test(Duration::from_secs(30)).await
    else {
        return;
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(relay.run(stop.clone()));

    // Another instance's relay mid-pass: it holds the lock, and read before the row below
    // was committed.
    let other = holding_the_outbox_lock(&db).await;
    enqueue(&db, &topic, &["late"]).await;
    db.relay_waker().wake();
    // Its wake-up finds the lock taken (`a_relay_publishes_nothing_while_…` shows that a
    // pass then reads nothing); the holder lets go a little later.
    tokio::time::sleep(Duration::from_millis(50)).await;
    other.rollback().await.unwrap();
    let let_go = tokio::time::Instant::now();
    assert_eq!(waiting_until(&db, 0).await, 0, "the row is published");
    assert!(
        let_go.elapsed() < Duration::from_secs(5),
        "published {:?} after the holder let go, not at the 30-s poll",
        let_go.elapsed()
    );

    stopped(stop, running).await;
    assert_eq!(published(&bootstrap, &topic, 1), ["late"]);
}
