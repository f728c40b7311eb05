//! PostgreSQL over TLS with the server verified (`sslmode=verify-full` and a CA file):
//! `scripts/postgres.sh` serves TLS with certificates from `scripts/tls.sh` and lets the
//! role `openorder_tls` in over TLS only.

use crate::support;
use crate::support::{BrokerKind, DbKind, Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_runs_on_postgresql_over_verified_tls() {
    let Some(stack) = Stack::spawn(
        BrokerKind::Tansu,
        DbKind::PostgresTls,
        StackOptions::default(),
    )
    .await
    else {
        return;
    };
    let id = stack.post_order(42, &[("ABC-001", 1)]).await;
    let order = stack.settled_order(id).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(stack.wait_notifications(id).await.len(), 1);
    // Every connection of the services' role is encrypted.
    let url = support::external("OPENORDER_TEST_POSTGRES_TLS_URL").unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let (all_tls, connections): (bool, i64) = sqlx::query_as(
        "SELECT bool_and(s.ssl), count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.usename = 'openorder_tls'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(connections > 1, "the services are connected");
    assert!(all_tls, "every connection uses TLS");
    pool.close().await;
    stack.stop().await;
}

#[tokio::test]
async fn without_tls_or_with_an_untrusted_ca_the_connection_is_refused() {
    let Some(url) = support::external("OPENORDER_TEST_POSTGRES_TLS_URL") else {
        return;
    };
    let tls = support::external("OPENORDER_TEST_POSTGRES_TLS_DIR").unwrap();
    let (base, _) = url.split_once('?').unwrap();
    let schema = &order_service::store::SCHEMA;
    let plain =
        platform::db::Database::connect(&format!("{base}?sslmode=disable"), 1, schema).await;
    let Err(err) = plain else {
        panic!("connected without TLS")
    };
    let err = format!("{err:#}");
    assert!(err.contains("no encryption"), "{err}");
    let untrusted = format!("{base}?sslmode=verify-full&sslrootcert={tls}/other-ca.pem");
    let err = platform::db::Database::connect(&untrusted, 1, schema).await;
    let Err(err) = err else {
        panic!("connected to a server whose CA is not trusted")
    };
    let err = format!("{err:#}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
