//! The databases of one test's services: fresh SQLite files, or a fresh PostgreSQL
//! database per service (`OPENORDER_TEST_POSTGRES_URL`, or `…_TLS_URL` over TLS).

use super::{external, DbKind};

/// A database URL for `service` of one test.
pub async fn database_url(kind: DbKind, dir: &std::path::Path, service: &str) -> Option<String> {
    match kind {
        DbKind::Sqlite => Some(format!("sqlite://{}/{service}.db", dir.display())),
        DbKind::Postgres | DbKind::PostgresTls => {
            let admin_url = match kind {
                DbKind::PostgresTls => external("OPENORDER_TEST_POSTGRES_TLS_URL")?,
                _ => external("OPENORDER_TEST_POSTGRES_URL")?,
            };
            let (admin_url, query) = match admin_url.split_once('?') {
                Some((url, query)) => (url.to_string(), format!("?{query}")),
                None => (admin_url, String::new()),
            };
            let name = format!(
                "t_{}_{}",
                service.replace('-', "_"),
                uuid::Uuid::new_v4().simple()
            );
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&format!("{admin_url}{query}"))
                .await
                .expect("PostgreSQL reachable");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .expect("test database created");
            pool.close().await;
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or(&admin_url);
            Some(format!("{base}/{name}{query}"))
        }
    }
}
