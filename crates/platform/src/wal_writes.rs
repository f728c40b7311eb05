//! A SQLite VFS that hands a transaction's WAL frames to the kernel in one `pwrite` instead
//! of two per page.
//!
//! SQLite writes each WAL frame as two `write`s: its 24-byte header, then the page. A
//! commit of six pages is twelve system calls before its `fsync`, and at 1,000 orders/s
//! the three services made some 22,000 of them a second, the largest part of their commit
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
//!   WAL, before a write that does not continue the gathered bytes, and past
//!   [`GATHER_LIMIT`] bytes.
//!
//! An error writing gathered bytes is returned by the call that wrote them (the commit's
//! write or sync), so the transaction fails as it would have with the write unbuffered.

// A VFS is C callbacks over raw file structs that SQLite allocates: unsafe throughout.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// Most bytes gathered before they are written anyway (a large transaction's frames).
/// SQLite's unix VFS writes at most 128 KiB − 1 bytes in one call (it masks the length),
/// so this plus one page (64 KiB at most) must stay under that.
const GATHER_LIMIT: usize = 64 << 10;

/// The size of a WAL frame header.
const FRAME_HEADER: usize = 24;

/// The name the VFS is registered under (as the default).
const NAME: &std::ffi::CStr = c"openorder-wal-writes";

/// The default VFS this one wraps.
static INNER: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(std::ptr::null_mut());

/// Registers the VFS as SQLite's default, once per process; call before opening a
/// connection. Connections opened before keep the VFS they had.
pub fn install() -> Result<(), String> {
    static INSTALLED: OnceLock<c_int> = OnceLock::new();
    let rc = *INSTALLED.get_or_init(|| unsafe {
        let inner = ffi::sqlite3_vfs_find(std::ptr::null());
        if inner.is_null() {
            return ffi::SQLITE_ERROR;
        }
        INNER.store(inner, Ordering::Release);
        let mut vfs = *inner;
        vfs.zName = NAME.as_ptr();
        vfs.pNext = std::ptr::null_mut();
        vfs.szOsFile = HEADER as c_int + (*inner).szOsFile;
        vfs.xOpen = Some(open);
        ffi::sqlite3_vfs_register(Box::leak(Box::new(vfs)), 1)
    });
    match rc {
        ffi::SQLITE_OK => Ok(()),
        rc => Err(format!("registering the SQLite VFS failed (code {rc})")),
    }
}

/// A `-wal` file as SQLite sees it: the base struct, then the default VFS's own file
/// (at [`HEADER`] bytes, in the same allocation).
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    gathered: *mut Gathered,
}

/// Where the default VFS's file starts in ours (8-byte aligned, as SQLite aligns ours).
const HEADER: usize = std::mem::size_of::<WalFile>().next_multiple_of(8);

/// Bytes written by SQLite and not yet by the kernel: `bytes` belong at `offset`.
#[derive(Default)]
struct Gathered {
    offset: i64,
    bytes: Vec<u8>,
    /// The commit frame's header was written: its page goes straight through.
    commit_page_next: bool,
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let inner_vfs = INNER.load(Ordering::Acquire);
    let inner_open = (*inner_vfs).xOpen.expect("a VFS opens files");
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Every other file is the default VFS's, laid out at the start of ours.
        return inner_open(inner_vfs, name, file, flags, out_flags);
    }
    let wal = file.cast::<WalFile>();
    (*wal).base.pMethods = std::ptr::null();
    let inner = file.cast::<u8>().add(HEADER).cast::<ffi::sqlite3_file>();
    (*inner).pMethods = std::ptr::null();
    let rc = inner_open(inner_vfs, name, inner, flags, out_flags);
    if rc != ffi::SQLITE_OK {
        if let Some(close) = (*inner).pMethods.as_ref().and_then(|m| m.xClose) {
            close(inner);
        }
        return rc;
    }
    (*wal).inner = inner;
    (*wal).gathered = Box::into_raw(Box::default());
    (*wal).base.pMethods = &METHODS;
    ffi::SQLITE_OK
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// The default VFS's file and its methods.
unsafe fn inner(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    let inner = (*file.cast::<WalFile>()).inner;
    (inner, &*(*inner).pMethods)
}

/// Writes what was gathered.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    let gathered = &mut *(*file.cast::<WalFile>()).gathered;
    if gathered.bytes.is_empty() {
        return ffi::SQLITE_OK;
    }
    let (inner, methods) = inner(file);
    let rc = methods.xWrite.expect("files are written")(
        inner,
        gathered.bytes.as_ptr().cast(),
        gathered.bytes.len() as c_int,
        gathered.offset,
    );
    gathered.bytes.clear();
    rc
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let gathered = &mut *(*file.cast::<WalFile>()).gathered;
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), amount as usize);
    let continues = gathered.offset + gathered.bytes.len() as i64 == offset;
    let fits = gathered.bytes.len() + bytes.len() <= GATHER_LIMIT;
    let joins = gathered.bytes.is_empty() || (continues && fits);
    if !joins {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    if std::mem::take(&mut gathered.commit_page_next) {
        let (inner, methods) = inner(file);
        return methods.xWrite.expect("files are written")(inner, data, amount, offset);
    }
    if gathered.bytes.is_empty() {
        gathered.offset = offset;
    }
    gathered.bytes.extend_from_slice(bytes);
    // A frame header's bytes 4..8 are the database size after the commit, in a commit
    // frame only (0 otherwise).
    if bytes.len() == FRAME_HEADER && bytes[4..8] != [0; 4] {
        gathered.commit_page_next = true;
        return flush(file);
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let flushed = flush(file);
    let (inner, methods) = inner(file);
    let closed = methods.xClose.expect("files are closed")(inner);
    drop(Box::from_raw((*file.cast::<WalFile>()).gathered));
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

/// Forwards a call to the default VFS's file after writing what was gathered.
macro_rules! flushed_then {
    ($file:ident, $method:ident ( $($arg:expr),* )) => {{
        let rc = flush($file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let (inner, methods) = inner($file);
        match methods.$method {
            Some(method) => method(inner, $($arg),*),
            None => ffi::SQLITE_IOERR,
        }
    }};
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    flushed_then!(file, xRead(data, amount, offset))
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    flushed_then!(file, xTruncate(size))
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flushed_then!(file, xSync(flags))
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    flushed_then!(file, xFileSize(size))
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    flushed_then!(file, xLock(level))
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    flushed_then!(file, xUnlock(level))
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    flushed_then!(file, xCheckReservedLock(out))
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    flushed_then!(file, xFileControl(op, arg))
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    flushed_then!(file, xShmMap(region, size, extend, out))
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    flushed_then!(file, xShmLock(offset, n, flags))
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    flushed_then!(file, xShmUnmap(delete))
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    flushed_then!(file, xFetch(offset, amount, out))
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    page: *mut c_void,
) -> c_int {
    let (inner, methods) = inner(file);
    match methods.xUnfetch {
        Some(unfetch) => unfetch(inner, offset, page),
        None => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    let (inner, methods) = inner(file);
    if let Some(barrier) = methods.xShmBarrier {
        barrier(inner)
    }
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let (inner, methods) = inner(file);
    methods.xSectorSize.map_or(4096, |size| size(inner))
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let (inner, methods) = inner(file);
    methods
        .xDeviceCharacteristics
        .map_or(0, |characteristics| characteristics(inner))
}

#[cfg(test)]
mod tests {
    use crate::db::{Database, Schema};
    use sqlx::Row;

    const SCHEMA: Schema = Schema {
        sqlite: &[
            "CREATE TABLE IF NOT EXISTS a (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)",
            "CREATE TABLE IF NOT EXISTS b (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)",
            "CREATE INDEX IF NOT EXISTS b_by_v ON b (v)",
        ],
        postgres: &[],
    };

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
            // The read pool's connections are not the writer's.
            let seen: i64 = sqlx::query("SELECT count(*) FROM b")
                .fetch_one(&db.pool)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!(seen, expected, "after transaction {n}");
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
        let seen: i64 = sqlx::query("SELECT count(*) FROM a")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(seen, expected);
    }
}
