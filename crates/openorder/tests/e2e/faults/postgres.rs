//! PostgreSQL misbehaving under order-service while orders arrive: its connections killed,
//! mid-commit or not, then the database read-only. Every order answered 202 exists and is
//! decided, no id is answered twice, and the read-only database is reported as such.

use std::collections::HashSet;
use std::time::Duration;

use super::{clients_posting, decided, post, tally};
use crate::support;
use crate::support::{temp_dir, Stack};
use serde_json::Value;

/// Runs `sql` as PostgreSQL's administrator (the test server's URL).
async fn as_admin(sql: &str) {
    let url = support::external("OPENORDER_TEST_POSTGRES_URL").expect("PostgreSQL is configured");
    sqlx::any::install_default_drivers();
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(sql).execute(&mut admin).await.unwrap();
    let _ = sqlx::Connection::close(admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_answered_202_while_postgres_connections_were_killed_mid_commit_and_the_database_was_read_only_all_exist_and_are_decided(
) {
    let Some((stack, order_db)) = stack_on_postgres().await else {
        return eprintln!("skipped: no PostgreSQL");
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = stack.order_url.clone();
    stack.set_stock("ABC-001", 1_000_000).await;

    // Four clients post for six seconds while order-service's database is made to fail.
    let mut clients = clients_posting(&http, &base, Duration::from_secs(6));
    let probed = connections_killed_then_read_only(&http, &base, &order_db).await;

    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let mut every = vec![probed];
    while let Some(answers) = clients.join_next().await {
        every.push(answers.unwrap());
    }
    for answers in every {
        tally(answers, &mut accepted, &mut refused);
    }
    let refused: HashSet<String> = refused.into_iter().collect();
    assert!(
        refused.contains("/problems/storage-read-only"),
        "the read-only database was not reported as such: {refused:?}"
    );
    let ids: HashSet<i64> = accepted.iter().copied().collect();
    assert_eq!(ids.len(), accepted.len(), "an order id was answered twice");
    assert!(!accepted.is_empty());
    for id in &accepted {
        let status = decided(&http, &base, *id, Duration::from_secs(90)).await;
        assert_eq!(status, "CONFIRMED", "order {id}");
    }
    let (status, body) = post(&http, &base).await;
    assert_eq!(status, 202, "{body}");
    stack.stop().await;
}

/// A stack on PostgreSQL whose databases the test made (None without PostgreSQL), and the
/// name of order-service's database.
async fn stack_on_postgres() -> Option<(Stack, String)> {
    let dir = temp_dir("postgres-faults");
    let mut databases = Vec::new();
    for service in ["order-service", "inventory-service", "notification-service"] {
        databases.push(support::database_url(support::DbKind::Postgres, &dir, service).await?);
    }
    let order_db = databases[0]
        .rsplit_once('/')
        .map(|(_, name)| name.split('?').next().unwrap_or(name).to_string())
        .unwrap();
    let options = support::StackOptions {
        databases: Some([
            databases[0].clone(),
            databases[1].clone(),
            databases[2].clone(),
        ]),
        ..Default::default()
    };
    let stack = support::Stack::spawn(
        support::BrokerKind::Tansu,
        support::DbKind::Postgres,
        options,
    )
    .await?;
    Some((stack, order_db))
}

/// Kills the connections to `order_db`, mid-commit or not, every 300 ms for two seconds
/// (the fault's rhythm while the clients post, not a wait for anything); then makes it
/// read-only (new sessions; the old ones are killed) until an order posted here is refused
/// as such (the clients post meanwhile), and writable again. Returns the answers to the
/// orders posted here.
async fn connections_killed_then_read_only(
    http: &reqwest::Client,
    base: &str,
    order_db: &str,
) -> Vec<(u16, Value)> {
    let kill = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{order_db}' AND pid <> pg_backend_pid()"
    );
    for _ in 0..7 {
        as_admin(&kill).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    as_admin(&format!(
        "ALTER DATABASE {order_db} SET default_transaction_read_only = on"
    ))
    .await;
    as_admin(&kill).await;
    let mut probed = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = post(http, base).await;
        let read_only = status == 503 && body["type"] == "/problems/storage-read-only";
        probed.push((status, body));
        if read_only {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no order refused as read-only in 30 s: {:?}",
            probed.last()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    as_admin(&format!(
        "ALTER DATABASE {order_db} RESET default_transaction_read_only"
    ))
    .await;
    as_admin(&kill).await;
    probed
}
