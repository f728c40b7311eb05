//! `openorder-broker`: the embedded Kafka-compatible broker (Tansu, durable SQLite storage)
//! as its own process. `openorder up` starts it; it cannot live in the `openorder` binary,
//! nor in its package, because Tansu's bundled libsql and sqlx's bundled SQLite both define
//! `sqlite3_*`. Its SQLite writes a commit's WAL frames together, as the services' do
//! (`platform::wal_writes`).
//!
//! Its data lives in `<data-dir>/broker.db`. It stops on SIGINT/SIGTERM (Tansu handles both).
//!
//! Retention: every `--maintain-every`, records older than their topic's `retention.ms`
//! (default `--retention`, 7 days) or beyond its `retention.bytes` are deleted, the low
//! watermarks moved and the freed pages given back to the file system (the vendored
//! storage's `policy_delete`; vendor/README.md).

use tokio::time::Instant;

use anyhow::Context;
use clap::Parser;
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use url::Url;

// The services' WAL write gathering (`platform::wal_writes`), on libsql's SQLite.
sqlite_wal_writes::vfs!(libsql_ffi);

#[derive(Parser, Debug)]
#[command(
    name = "openorder-broker",
    about = "OpenOrder's embedded Kafka-compatible broker (Tansu)"
)]
struct Args {
    /// Directory of the broker's SQLite file (created if missing).
    #[arg(
        long,
        env = "OPENORDER_BROKER_DATA_DIR",
        default_value = "openorder-data"
    )]
    data_dir: std::path::PathBuf,

    /// Address to listen on (Kafka protocol).
    #[arg(
        long,
        env = "OPENORDER_BROKER_LISTEN",
        default_value = "127.0.0.1:9092"
    )]
    listen: String,

    /// Address clients are told to connect to (default: the listen address).
    #[arg(long, env = "OPENORDER_BROKER_ADVERTISED")]
    advertised: Option<String>,

    /// How long records are kept in a topic that sets no `retention.ms` (`7d`, `36h`,
    /// `90s`); a topic's own `retention.ms` (and `retention.bytes`) wins.
    #[arg(long, env = "OPENORDER_BROKER_RETENTION", default_value = "7d", value_parser = parse_age)]
    retention: std::time::Duration,

    /// How often retention runs: records past it are deleted (at most 10,000 a partition
    /// each time), low watermarks moved and the freed space given back. Often, so that
    /// each pass is short: produces wait while it runs.
    #[arg(long, env = "OPENORDER_BROKER_MAINTAIN_EVERY", default_value = "2s", value_parser = parse_age)]
    maintain_every: std::time::Duration,
}

/// `90s`, `5m`, `36h`, `7d`, `250ms`.
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` needs a unit: ms, s, m, h or d"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a number followed by a unit"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1_000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => {
            return Err(format!(
                "`{unit}` in `{text}` is not a unit: ms, s, m, h or d"
            ))
        }
    };
    Ok(std::time::Duration::from_millis(ms))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        // A log line that cannot be written (its file on a full disk) is lost, not
        // reported with `eprintln!`, which panics when it cannot write either.
        .log_internal_errors(false)
        .init();
    exit_on_panic();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("Failed to create {}", args.data_dir.display()))?;
    // Tansu resolves `sqlite://relative.db` against the working directory (an absolute
    // path is mangled), so the broker works from inside its data directory.
    std::env::set_current_dir(&args.data_dir)
        .with_context(|| format!("Failed to enter {}", args.data_dir.display()))?;
    // One broker per data directory. A previous broker that is still shutting down (its
    // `openorder up` was killed a moment ago) holds the lock: wait for it to finish rather
    // than fail on its locked database. The kernel drops the lock when a process dies.
    let _lock = lock_data_dir(&args.data_dir)?;
    let advertised = args
        .advertised
        .clone()
        .unwrap_or_else(|| args.listen.clone());
    let listener = Url::parse(&format!("tcp://{}", args.listen)).context("invalid --listen")?;
    // Tansu binds its listener in a task of its own and panics there if it cannot, leaving
    // the process up (or exiting 0): find out here, with a reason.
    std::net::TcpListener::bind(&args.listen).with_context(|| {
        format!(
            "cannot listen on {} (is another broker running there?)",
            args.listen
        )
    })?;
    let advertised = Url::parse(&format!("tcp://{advertised}")).context("invalid --advertised")?;
    let storage = Url::parse(&format!(
        "sqlite://broker.db?maintenance_interval={}ms&retention_ms={}",
        args.maintain_every.as_millis().max(1),
        args.retention.as_millis()
    ))
    .expect("a URL made of a literal and numbers");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("Failed to start the Tokio runtime")?;
    runtime.block_on(async move {
        // libsql configures SQLite (serialized threading) once, at its first connection, and
        // insists on being first; registering a VFS initializes SQLite. So: a connection to
        // an in-memory database first, then the VFS, then the broker's own database.
        libsql::Builder::new_local(":memory:")
            .build()
            .await
            .and_then(|db| db.connect())
            .context("Failed to open an in-memory libsql database")?;
        wal_writes_vfs::install().map_err(anyhow::Error::msg)?;
        let broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
            .node_id(1)
            .cluster_id("openorder")
            .incarnation_id(uuid::Uuid::new_v4())
            .advertised_listener(advertised)
            .listener(listener)
            .storage(storage)
            .build()
            .await
            .map_err(|e| anyhow::anyhow!("Failed to build the broker: {e:?}"))?;
        // Tansu stops on SIGINT/SIGTERM; it stopping without one is a failure (a task of
        // its died): exit non-zero so that `openorder up` starts it again.
        let asked = asked_to_stop();
        broker
            .main(Instant::now())
            .await
            .map_err(|e| anyhow::anyhow!("broker stopped with an error: {e:?}"))?;
        // The flag's task hears the same signal Tansu did: give it a moment.
        for _ in 0..40 {
            if asked.load(std::sync::atomic::Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        anyhow::ensure!(
            asked.load(std::sync::atomic::Ordering::Acquire),
            "the broker stopped without being asked to (a panic above says why)"
        );
        Ok(())
    })
}

/// A panic anywhere but in a storage request ends the process with status 70 (after the
/// usual message): a task of
/// the broker that panicked is gone for good (its listener, its group coordinator, its
/// storage loop), and a broker that stays up without it answers nothing, or errors, for
/// ever. Exiting lets `openorder up` (or any supervisor) start it again; SQLite recovers
/// its committed data.
fn exit_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        // A storage request's panic is caught, logged and answered by the storage loop,
        // which goes on serving (vendor/README.md, change 7).
        if !tansu_storage::panic_is_caught() {
            std::process::exit(70);
        }
    }));
}

/// A flag raised by the first SIGINT or SIGTERM (beside Tansu's own handling of them).
fn asked_to_stop() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use tokio::signal::unix::{signal, SignalKind};
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = asked.clone();
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            // Without handlers the flag cannot be raised: count every stop as asked for.
            flag.store(true, std::sync::atomic::Ordering::Release);
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        flag.store(true, std::sync::atomic::Ordering::Release);
    });
    asked
}

/// Holds `broker.lock` in the data directory for as long as the returned file lives,
/// waiting up to 30 s for another broker to let go of it.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("broker.lock")
        .with_context(|| format!("Failed to open {}/broker.lock", dir.display()))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                if !said {
                    eprintln!(
                        "waiting for the broker still using {} to stop",
                        dir.display()
                    );
                    said = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another broker has been using {} for over 30 s; stop it first",
                dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e)
                    .with_context(|| format!("Failed to lock {}/broker.lock", dir.display()))
            }
        }
    }
}
