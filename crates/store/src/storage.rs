//! When a database cannot write: which fault it is ([`StorageFault`]), how a request that
//! met it is answered (a `503` problem naming it, with `Retry-After`), and the episode it
//! belongs to ([`StorageHealth`]): logged once when a database starts failing to commit and
//! once when it commits again, counted on `/metrics`, reported by `/health/ready`.
//!
//! The promise behind it: a `202` is answered only for a committed order. A failed commit
//! leaves no transaction open (the SQLite driver follows SQLite's own transaction state,
//! see `vendor/README.md`), so the writer commits again as soon as the cause is gone,
//! without a restart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a database refused a write, by what a client or operator should do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageFault {
    /// No space left (SQLite `SQLITE_FULL`, PostgreSQL `53100 disk_full`).
    Full,
    /// The database takes no writes (SQLite `SQLITE_READONLY`, PostgreSQL `25006`,
    /// e.g. `default_transaction_read_only`).
    ReadOnly,
    /// The database is away or failing: I/O errors, a lost connection, a pool that gave no
    /// connection in time, PostgreSQL shutting down or out of resources.
    Unavailable,
    /// Writers met each other (SQLite busy or locked, PostgreSQL serialization failure or
    /// deadlock): trying again is expected to work at once.
    Contention,
}

impl StorageFault {
    /// Every fault, in the order `/metrics` lists them.
    pub const ALL: [Self; 4] = [
        Self::Full,
        Self::ReadOnly,
        Self::Unavailable,
        Self::Contention,
    ];

    /// The fault `err` is, if it is one a retry may cure once its cause is gone (anything
    /// else, such as a constraint violated or a malformed query, is not a storage fault).
    pub fn of(err: &sqlx::Error) -> Option<Self> {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => Some(Self::Unavailable),
            sqlx::Error::Database(db) => Self::of_code(db.code().as_deref().unwrap_or_default()),
            _ => None,
        }
    }

    /// By the database's error code: a PostgreSQL SQLSTATE has five characters; a SQLite
    /// (extended) result code is a number of at most four digits, its primary code in the
    /// low byte.
    fn of_code(code: &str) -> Option<Self> {
        if code.len() == 5 {
            return match code {
                "53100" => Some(Self::Full),
                "25006" => Some(Self::ReadOnly),
                "40001" | "40P01" => Some(Self::Contention),
                // 08: connection exceptions; 53: insufficient resources; 57: operator
                // intervention (shutdown, cannot connect now); 58030: I/O error.
                _ if code.starts_with("08") || code.starts_with("53") => Some(Self::Unavailable),
                _ if code.starts_with("57") || code == "58030" => Some(Self::Unavailable),
                _ => None,
            };
        }
        let primary = code.parse::<u32>().ok()? & 0xff;
        match primary {
            13 => Some(Self::Full),
            8 => Some(Self::ReadOnly),
            5 | 6 => Some(Self::Contention),
            // IOERR, CANTOPEN, NOMEM, PROTOCOL (a file lock race)
            10 | 14 | 7 | 15 => Some(Self::Unavailable),
            _ => None,
        }
    }

    /// The problem type's slug (`/problems/<slug>`).
    pub fn slug(self) -> &'static str {
        match self {
            Self::Full => "storage-full",
            Self::ReadOnly => "storage-read-only",
            Self::Unavailable => "storage-unavailable",
            Self::Contention => "storage-busy",
        }
    }

    /// The `fault` label on `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::ReadOnly => "read_only",
            Self::Unavailable => "unavailable",
            Self::Contention => "contention",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Full => "Storage full",
            Self::ReadOnly => "Storage read-only",
            Self::Unavailable => "Storage unavailable",
            Self::Contention => "Storage busy",
        }
    }

    /// What a client is told: what happened, that nothing it asked for was kept, and what to do.
    pub fn detail(self) -> &'static str {
        match self {
            Self::Full => "the database has no space left to write; nothing of this request was kept; retry later",
            Self::ReadOnly => "the database takes no writes at the moment; nothing of this request was kept; retry later",
            Self::Unavailable => "the database could not be reached or failed to write; retry later (with the same Idempotency-Key a retry cannot act twice)",
            Self::Contention => "the database was busy with other writers; nothing of this request was kept; retry",
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`): contention clears
    /// at once, a full disk or a lost database takes longer.
    pub fn retry_after(self) -> u32 {
        match self {
            Self::Contention => 1,
            Self::Full | Self::ReadOnly | Self::Unavailable => 5,
        }
    }

    /// Does this fault say the database cannot write (an episode), rather than that two
    /// writers met?
    fn is_episode(self) -> bool {
        self != Self::Contention
    }
}

/// One database's ability to commit, as its commits found it. Cheap to clone; a commit
/// that succeeds while nothing is failing costs one atomic load.
#[derive(Clone, Debug)]
pub struct StorageHealth {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The database as logs name it (its URL without a password).
    name: String,
    failing: AtomicBool,
    episode: Mutex<Option<Episode>>,
    /// Failed commits (and begins) by [`StorageFault`], in the order of [`StorageFault::ALL`].
    failures: [AtomicU64; 4],
}

#[derive(Clone, Debug)]
struct Episode {
    fault: StorageFault,
    error: String,
    since: Instant,
    failures: u64,
}

/// What `/health/ready` says of a database that cannot commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing {
    pub fault: StorageFault,
    /// The last error, as the database gave it.
    pub error: String,
    /// How long commits have been failing.
    pub for_: Duration,
    /// Failed commits since the first.
    pub failures: u64,
}

impl StorageHealth {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                failing: AtomicBool::new(false),
                episode: Mutex::new(None),
                failures: Default::default(),
            }),
        }
    }

    /// Notes that a commit (or the begin of a transaction) failed with `err`: counted when
    /// it is a storage fault, and, if it is one that says the database cannot write, the
    /// start of an episode (logged once) or a part of the one running.
    pub fn failed(&self, err: &sqlx::Error) {
        let Some(fault) = StorageFault::of(err) else {
            return;
        };
        let index = StorageFault::ALL
            .iter()
            .position(|f| *f == fault)
            .unwrap_or(0);
        self.inner.failures[index].fetch_add(1, Ordering::Relaxed);
        if !fault.is_episode() {
            return;
        }
        let mut episode = lock(&self.inner.episode);
        match episode.as_mut() {
            Some(running) if running.fault == fault => {
                running.failures += 1;
                running.error = err.to_string();
            }
            _ => {
                tracing::error!(
                    database = %self.inner.name,
                    fault = fault.as_str(),
                    error = %err,
                    "the database cannot commit; requests that write are answered 503 ({}) until it can",
                    fault.slug()
                );
                *episode = Some(Episode {
                    fault,
                    error: err.to_string(),
                    since: Instant::now(),
                    failures: 1,
                });
                self.inner.failing.store(true, Ordering::Release);
            }
        }
    }

    /// Notes that a commit succeeded: ends an episode (logged once).
    pub fn committed(&self) {
        if !self.inner.failing.load(Ordering::Acquire) {
            return;
        }
        let mut episode = lock(&self.inner.episode);
        if let Some(ended) = episode.take() {
            tracing::info!(
                database = %self.inner.name,
                fault = ended.fault.as_str(),
                after_s = ended.since.elapsed().as_secs_f64(),
                failed_commits = ended.failures,
                "the database commits again"
            );
        }
        self.inner.failing.store(false, Ordering::Release);
    }

    /// The running episode, if commits are failing.
    pub fn failing(&self) -> Option<Failing> {
        if !self.inner.failing.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.inner.episode).as_ref().map(|e| Failing {
            fault: e.fault,
            error: e.error.clone(),
            for_: e.since.elapsed(),
            failures: e.failures,
        })
    }

    /// Failed commits of `fault` since start.
    pub fn failures(&self, fault: StorageFault) -> u64 {
        let index = StorageFault::ALL
            .iter()
            .position(|f| *f == fault)
            .unwrap_or(0);
        self.inner.failures[index].load(Ordering::Relaxed)
    }

    /// Copies the counts into `metrics` (as `/metrics` is rendered):
    /// `openorder_storage_commit_failures_total{fault}` and `openorder_storage_failing`
    /// (1 while commits fail).
    pub fn export(&self, metrics: &telemetry::metrics::Metrics) {
        for fault in StorageFault::ALL {
            metrics.set_counter(
                &telemetry::catalogue::STORAGE_COMMIT_FAILURES,
                &[("fault", fault.as_str())],
                self.failures(fault),
            );
        }
        metrics.gauge(
            &telemetry::catalogue::STORAGE_FAILING,
            &[],
            i64::from(self.inner.failing.load(Ordering::Acquire)),
        );
    }
}

/// Logs a storage fault a request met, at most once a minute per fault for the whole
/// process: while a disk is full every request meets it, and the log must not fill the
/// disk further. The episode of the database that failed is logged by its
/// [`StorageHealth`]; this catches faults met outside a commit (a statement refused).
pub fn log_request_fault(fault: StorageFault, err: &dyn std::fmt::Display) {
    static LAST: Mutex<[Option<Instant>; 4]> = Mutex::new([None; 4]);
    let index = StorageFault::ALL
        .iter()
        .position(|f| *f == fault)
        .unwrap_or(0);
    let mut last = lock(&LAST);
    let due = last[index].is_none_or(|at| at.elapsed() >= Duration::from_secs(60));
    if due {
        last[index] = Some(Instant::now());
        drop(last);
        tracing::warn!(
            fault = fault.as_str(),
            error = %err,
            "a request met a storage fault and was answered 503 (logged at most once a minute while it lasts)"
        );
    } else {
        tracing::debug!(fault = fault.as_str(), error = %err, "a request met a storage fault");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_code(code: &str) -> Option<StorageFault> {
        StorageFault::of_code(code)
    }

    #[test]
    fn sqlite_and_postgres_codes_name_their_fault() {
        assert_eq!(sqlite_code("13"), Some(StorageFault::Full));
        assert_eq!(sqlite_code("8"), Some(StorageFault::ReadOnly));
        assert_eq!(sqlite_code("1032"), Some(StorageFault::ReadOnly)); // READONLY_DBMOVED
        assert_eq!(sqlite_code("10"), Some(StorageFault::Unavailable));
        assert_eq!(sqlite_code("3338"), Some(StorageFault::Unavailable)); // IOERR_FSYNC
        assert_eq!(sqlite_code("517"), Some(StorageFault::Contention)); // BUSY_SNAPSHOT
        assert_eq!(sqlite_code("2067"), None); // CONSTRAINT_UNIQUE
        assert_eq!(sqlite_code("1"), None);
        assert_eq!(sqlite_code("53100"), Some(StorageFault::Full));
        assert_eq!(sqlite_code("25006"), Some(StorageFault::ReadOnly));
        assert_eq!(sqlite_code("57P01"), Some(StorageFault::Unavailable));
        assert_eq!(sqlite_code("08006"), Some(StorageFault::Unavailable));
        assert_eq!(sqlite_code("40001"), Some(StorageFault::Contention));
        assert_eq!(sqlite_code("23505"), None);
        assert_eq!(
            StorageFault::of(&sqlx::Error::PoolTimedOut),
            Some(StorageFault::Unavailable)
        );
        assert_eq!(StorageFault::of(&sqlx::Error::RowNotFound), None);
    }

    #[test]
    fn an_episode_begins_at_the_first_failed_commit_and_ends_at_the_next_commit() {
        let health = StorageHealth::new("test");
        assert!(health.failing().is_none());
        health.committed();
        health.failed(&sqlx::Error::PoolTimedOut);
        health.failed(&sqlx::Error::PoolTimedOut);
        let failing = health.failing().expect("failing after a failed commit");
        assert_eq!(failing.fault, StorageFault::Unavailable);
        assert_eq!(failing.failures, 2);
        assert_eq!(health.failures(StorageFault::Unavailable), 2);
        health.committed();
        assert!(health.failing().is_none());
        assert_eq!(health.failures(StorageFault::Unavailable), 2, "counts stay");
        health.failed(&sqlx::Error::RowNotFound);
        assert!(health.failing().is_none(), "not a storage fault");
    }
}
