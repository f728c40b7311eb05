//! Pruning on SQLite (and PostgreSQL when one is given): what goes, what stays, and how
//! ages are read.

use super::*;
use crate::db::Schema;

const SCHEMA: Schema = Schema(&[
    crate::dedupe::TABLE,
    "CREATE TABLE parents (id {id}, created_at TEXT NOT NULL)",
    "CREATE TABLE children (id {id}, parent_id {int} NOT NULL REFERENCES parents (id))",
    "CREATE TABLE keys (key TEXT PRIMARY KEY, created_at TEXT NOT NULL)",
    "CREATE INDEX keys_by_time ON keys (created_at)",
]);

/// A fresh database: SQLite, or PostgreSQL when `OPENORDER_TEST_POSTGRES_URL` is set
/// (a database of its own on that server).
async fn databases() -> Vec<Database> {
    let dir = std::env::temp_dir().join(format!("oo-prune-{}", uuid::Uuid::new_v4()));
    let mut out = vec![
        Database::connect(&format!("sqlite://{}/p.db", dir.display()), 2, &SCHEMA)
            .await
            .unwrap(),
    ];
    if let Ok(admin) = std::env::var("OPENORDER_TEST_POSTGRES_URL") {
        sqlx::any::install_default_drivers();
        let name = format!("t_prune_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .unwrap();
        let url = match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("OPENORDER_TEST_POSTGRES_URL names no database"),
        };
        out.push(Database::connect(&url, 2, &SCHEMA).await.unwrap());
    }
    out
}

const OLD: &str = "2020-01-01T00:00:00.000Z";

async fn count(db: &Database, table: &str) -> i64 {
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

async fn exec(db: &Database, sql: &str, binds: &[&str]) {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(b.to_string());
    }
    q.execute(&db.pool).await.unwrap();
}

#[tokio::test]
async fn rows_past_their_window_are_pruned_oldest_first_and_newer_ones_kept() {
    let args = RetentionArgs {
        retain_dedupe: Duration::from_secs(3600),
        ..Default::default()
    };
    for db in databases().await {
        let now = telemetry::now_text();
        // 1,200 old event ids (more than two batches), then 5 new ones, in key order as
        // UUIDv7 ids are; and one new id that sorts first (a UUIDv4 from another producer).
        for i in 0..1_200 {
            exec(
                &db,
                "INSERT INTO processed_events (event_id, processed_at) VALUES ($1, $2)",
                &[&format!("1-{i:06}"), OLD],
            )
            .await;
        }
        for i in 0..5 {
            exec(
                &db,
                "INSERT INTO processed_events (event_id, processed_at) VALUES ($1, $2)",
                &[&format!("2-{i:06}"), &now],
            )
            .await;
        }
        exec(
            &db,
            "INSERT INTO processed_events (event_id, processed_at) VALUES ($1, $2)",
            &["0-young", &now],
        )
        .await;
        let rule = Prune::processed_events(&args);
        assert_eq!(rule.run(&db).await.unwrap(), 1_200);
        assert_eq!(
            count(&db, "processed_events").await,
            6,
            "the young ones stay"
        );
        assert_eq!(rule.run(&db).await.unwrap(), 0, "nothing old is left");

        // Parents by integer id with children deleted first; keys walked by time.
        for created in [OLD, OLD, OLD, &now] {
            exec(
                &db,
                "INSERT INTO parents (created_at) VALUES ($1)",
                &[created],
            )
            .await;
        }
        for parent in ["1", "1", "3", "4"] {
            sqlx::query("INSERT INTO children (parent_id) VALUES ($1)")
                .bind(parent.parse::<i64>().unwrap())
                .execute(&db.pool)
                .await
                .unwrap();
        }
        let parents = Prune {
            table: "parents",
            key: "id",
            time: "created_at",
            walk: Walk::IntKey,
            keep: Duration::from_secs(60),
            children: &[("children", "parent_id")],
        };
        assert_eq!(parents.run(&db).await.unwrap(), 3);
        assert_eq!(
            (count(&db, "parents").await, count(&db, "children").await),
            (1, 1)
        );
        for (key, created) in [("zzz", OLD), ("aaa", now.as_str()), ("mmm", OLD)] {
            exec(
                &db,
                "INSERT INTO keys (key, created_at) VALUES ($1, $2)",
                &[key, created],
            )
            .await;
        }
        let keys = Prune {
            table: "keys",
            key: "key",
            time: "created_at",
            walk: Walk::Time,
            keep: Duration::from_secs(60),
            children: &[],
        };
        assert_eq!(keys.run(&db).await.unwrap(), 2);
        assert_eq!(count(&db, "keys").await, 1);
    }
}

#[test]
fn ages_are_read_in_days_hours_minutes_seconds() {
    assert_eq!(parse_age("14d"), Ok(Duration::from_secs(14 * 86_400)));
    assert_eq!(parse_age("24h"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_age("90m"), Ok(Duration::from_secs(5_400)));
    assert_eq!(parse_age("500ms"), Ok(Duration::from_millis(500)));
    assert!(parse_age("14").is_err(), "a unit is required");
    assert!(parse_age("0d").is_err());
    assert!(parse_age("3w").is_err());
}
