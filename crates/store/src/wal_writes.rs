//! A SQLite VFS that hands a transaction's WAL frames to the kernel in one `pwrite` instead
//! of two per page.
//!
//! SQLite writes each WAL frame as two `write`s: its 24-byte header, then the page. A
//! commit of six pages is twelve system calls before its `fsync`, and at 1,000 orders/s
//! the three services made some 21,000 of them a second, the largest part of their commit
//! cost. This VFS wraps the default one: writes to a `-wal` file that continue the last
//! one are gathered in memory and written together; every other file is the default VFS's
//! own, untouched.
//!
//! What is gathered is written before anything could need it on the file:
//! - at the **commit frame** (the one whose header carries the database size): the frames
//!   before it and its header are written at once, and its page right after, so a
//!   transaction's frames are all in the file before SQLite publishes them to other
//!   connections in the WAL index, whatever the `synchronous` setting;
//! - before every read, sync, truncate, size query, lock change or file control of the
//!   WAL, before a write that does not continue the gathered bytes, and past 64 KiB.
//!
//! An error writing gathered bytes is returned by the call that wrote them (the commit's
//! write or sync), so the transaction fails as it would have with the write unbuffered.
//!
//! The code is the macro of crate `sqlite-wal-writes`, which `openorder-broker` invokes on
//! libsql's SQLite as well.

sqlite_wal_writes::vfs!(libsqlite3_sys);

pub use wal_writes_vfs::install;

#[cfg(test)]
mod tests {
    use crate::db::{Database, Schema};
    use sqlx::Row;

    const SCHEMA: Schema = Schema(&[
        "CREATE TABLE IF NOT EXISTS a (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)",
        "CREATE TABLE IF NOT EXISTS b (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)",
        "CREATE INDEX IF NOT EXISTS b_by_v ON b (v)",
    ]);

    /// A new database, on this VFS or, with `?vfs=unix`, on SQLite's own.
    async fn temp_db(query: &str) -> (std::path::PathBuf, Database) {
        let dir = std::env::temp_dir().join(format!("oo-wal-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/w.db{query}", dir.display());
        (dir, Database::connect(&url, 2, &SCHEMA).await.unwrap())
    }

    /// One transaction writing rows of `size` bytes into both tables (and so into several
    /// pages: two tables, three indexes).
    async fn commit(db: &Database, n: usize, rows: usize, size: usize) {
        let mut tx = db.begin().await.unwrap();
        for r in 0..rows {
            for table in ["a", "b"] {
                sqlx::query(&format!("INSERT INTO {table} (k, v) VALUES ($1, $2)"))
                    .bind(format!("{n}-{r}-{}", uuid::Uuid::new_v4()))
                    .bind("v".repeat(size))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
        }
        tx.commit().await.unwrap();
    }

    /// Rows in `table`, read through the read pool (not the writer's connection).
    async fn rows_in(db: &Database, table: &str) -> i64 {
        sqlx::query(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    }

    /// Write system calls made by this process so far (`syscw` in /proc/self/io).
    fn writes() -> u64 {
        let io = std::fs::read_to_string("/proc/self/io").unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("syscw: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Write system calls per commit of a few rows into both tables (a page of each table
    /// and of each of their three indexes), on a database opened with `query`.
    async fn writes_per_commit(query: &str) -> f64 {
        let (_dir, db) = temp_db(query).await;
        commit(&db, 0, 1, 10).await; // the WAL exists and its header is written
        let before = writes();
        let commits = 40;
        for n in 1..=commits {
            commit(&db, n, 4, 300).await;
        }
        (writes() - before) as f64 / commits as f64
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_commit_of_several_pages_takes_a_fraction_of_the_write_calls() {
        let ours = writes_per_commit("").await;
        let sqlites = writes_per_commit("?vfs=unix").await;
        // SQLite's own VFS: two writes per page (frame header, page). Gathered: the frames
        // before the commit frame with its header, then its page. Both: the same
        // checkpoints into the database file.
        assert!(
            ours * 3.0 < sqlites,
            "{ours} write calls per commit, SQLite's own VFS {sqlites}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn what_is_committed_is_read_by_another_connection_and_survives_a_reopen_intact() {
        let (dir, db) = temp_db("").await;
        let mut expected = 0;
        for n in 0..30 {
            // Now and then a transaction larger than the gather limit (and SQLite's page
            // cache, so it spills and rewrites frames before its commit).
            let (rows, size) = if n % 10 == 9 { (600, 2_000) } else { (3, 300) };
            commit(&db, n, rows, size).await;
            expected += rows as i64;
            assert_eq!(rows_in(&db, "b").await, expected, "after transaction {n}");
        }
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&db.pool)
            .await
            .unwrap();
        commit(&db, 99, 2, 100).await;
        expected += 2;
        db.pool.close().await;
        drop(db);

        let url = format!("sqlite://{}/w.db", dir.display());
        let db = Database::connect(&url, 1, &SCHEMA).await.unwrap();
        let check: String = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(check, "ok");
        assert_eq!(rows_in(&db, "a").await, expected);
    }
}
