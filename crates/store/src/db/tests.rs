//! Tests of the pool: migrations, URLs, a full disk, and the set-based SQL helpers.

use super::*;

#[test]
fn passwords_are_redacted_from_urls() {
    assert_eq!(
        redact("postgres://app:s3cret@127.0.0.1/db"),
        "postgres://app:***@127.0.0.1/db"
    );
    assert_eq!(redact("sqlite://data/order.db"), "sqlite://data/order.db");
    assert_eq!(
        redact("postgres://db/x?sslmode=require&password=s3cret"),
        "postgres://db/x?sslmode=require&password=***"
    );
}

#[tokio::test]
async fn each_migration_runs_once_and_newer_databases_are_refused() {
    let dir = std::env::temp_dir().join(format!("oo-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/m.db", dir.display());
    const V1: Schema = Schema(&["CREATE TABLE IF NOT EXISTS t (a {int})"]);
    // Not idempotent: would fail if applied twice.
    const V2: Schema = Schema(&[
        "CREATE TABLE IF NOT EXISTS t (a {int})",
        "ALTER TABLE t ADD COLUMN b TEXT",
    ]);
    Database::connect(&url, 1, &V1)
        .await
        .unwrap()
        .pool
        .close()
        .await;
    Database::connect(&url, 1, &V2)
        .await
        .unwrap()
        .pool
        .close()
        .await;
    let db = Database::connect(&url, 1, &V2).await.unwrap();
    sqlx::query("INSERT INTO t (a, b) VALUES (1, 'x')")
        .execute(&db.pool)
        .await
        .unwrap();
    db.pool.close().await;
    let err = Database::connect(&url, 1, &V1).await.unwrap_err();
    assert!(err.to_string().contains("newer than this build"), "{err}");
}

/// A file system of `size` (a tmpfs, mounted with `mount(8)`: the tests run as root in
/// CI), unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("oo-disk-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount(8) runs");
        assert!(
            status.success(),
            "mounting a {size} tmpfs at {} failed (the storage-fault tests need root)",
            dir.display()
        );
        Self(dir)
    }

    /// Fills the file system but for about `free` bytes, with a file
    /// [`SmallDisk::free`] removes: written until the disk refuses, then cut by `free`.
    fn fill_leaving(&self, free: u64) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        while let Ok(n) = filler.write(&chunk) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
        filler.set_len(written.saturating_sub(free)).unwrap();
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_commit_the_full_disk_refused_leaves_no_transaction_open_and_commits_resume_once_space_returns(
) {
    let disk = SmallDisk::mount("8m");
    let url = format!("sqlite://{}/full.db", disk.0.display());
    const SCHEMA: Schema = Schema(&["CREATE TABLE IF NOT EXISTS t (id {id}, v BLOB NOT NULL)"]);
    let db = Database::connect(&url, 2, &SCHEMA).await.unwrap();
    let insert = |len: usize| {
        let db = &db;
        async move {
            let mut tx = db.begin().await?;
            let id = sqlx::query("INSERT INTO t (v) VALUES ($1) RETURNING id")
                .bind(vec![7u8; len])
                .fetch_one(&mut *tx)
                .await?
                .try_get::<i64, _>(0)?;
            tx.commit().await.map(|()| id)
        }
    };
    let first = insert(10).await.unwrap();
    disk.fill_leaving(64 * 1024);
    // Each of these needs more than the space left: its commit (or a statement, had the
    // pages spilled) fails with SQLITE_FULL, and SQLite rolls the transaction back.
    let mut refused = 0;
    for _ in 0..5 {
        match insert(512 * 1024).await {
            Ok(id) => panic!("order {id} was committed on a full disk"),
            Err(err) => {
                assert_eq!(
                    crate::storage::StorageFault::of(&err),
                    Some(crate::storage::StorageFault::Full),
                    "{err}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 5);
    let failing = db.storage().failing().expect("the database is failing");
    assert_eq!(failing.fault, crate::storage::StorageFault::Full);
    disk.free();
    // Space is back: the next commit commits, without a restart, and is seen by
    // another connection (not left inside a transaction that never ends).
    let next = insert(10).await.expect("commits again once space returns");
    assert!(db.storage().failing().is_none(), "the episode ended");
    assert!(next > first, "ids keep growing: {next} after {first}");
    let mut other = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let ids: Vec<i64> = sqlx::query("SELECT id FROM t ORDER BY id")
        .fetch_all(&mut other)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<i64, _>(0).unwrap())
        .collect();
    assert_eq!(
        ids,
        [first, next],
        "exactly the committed rows, nothing else"
    );
    // And a writer outside this process can take the database: nothing holds it.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    db.pool.close().await;
    db.writer.close().await;
}

#[test]
fn statement_chunks_come_in_power_of_two_sizes_within_the_parameter_limit() {
    let rows: Vec<u32> = (0..300).collect();
    let sizes: Vec<usize> = statement_chunks(&rows, 4).iter().map(|c| c.len()).collect();
    // 64 rows of 4 parameters = 256: four of them, then 44 = 32 + 8 + 4.
    assert_eq!(sizes, [64, 64, 64, 64, 32, 8, 4]);
    let flat: Vec<u32> = statement_chunks(&rows, 4).concat();
    assert_eq!(flat, rows, "every row once, in order");
    assert!(statement_chunks::<u32>(&[], 3).is_empty());
    assert_eq!(
        statement_chunks(&rows[..3], 300).len(),
        3,
        "one row per statement at least"
    );
}

#[test]
fn one_schema_renders_each_dialects_types() {
    const S: Schema = Schema(&["CREATE TABLE t (id {id}, n {int} NOT NULL, s TEXT)"]);
    assert_eq!(
        S.render(Backend::Sqlite),
        ["CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, s TEXT)"]
    );
    assert_eq!(
        S.render(Backend::Postgres),
        ["CREATE TABLE t (id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL, s TEXT)"]
    );
}

#[test]
fn value_rows_number_parameters_row_after_row() {
    assert_eq!(value_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
    assert_eq!(placeholders(3, 2), "$3, $4");
}

#[test]
fn sqlite_urls_get_create_mode() {
    let dir = std::env::temp_dir().join(format!("oo-{}", uuid::Uuid::new_v4()));
    let url = prepare_sqlite_url(&format!("sqlite://{}/a.db", dir.display())).unwrap();
    assert!(url.ends_with("a.db?mode=rwc"), "{url}");
    assert!(dir.is_dir());
}
