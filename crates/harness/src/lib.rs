//! Running OpenOrder in order to measure or test it: what `openorder up`, the fault
//! harness (`chaos`), the benchmark (`bench`) and the end-to-end tests all do to bring the
//! system up, written once.
//!
//! - [`free_port`]: a loopback port nobody listens on;
//! - [`wait_ready`]: until a service's `GET /health/ready` answers 200, within a time limit;
//! - [`broker`]: the embedded broker, `openorder-broker`, as a child process (its binary,
//!   its command, its start, its own words when it exits);
//! - [`service_command`]: one service as a child process, `openorder <service>`;
//! - [`up`]: `openorder up` as a child process, on free ports;
//! - [`in_process`]: the three services in this process, as `up` and the tests' stacks run
//!   them;
//! - [`backend`]: what `chaos` and `bench` run against (`--broker`, its flags);
//! - [`cluster`]: the broker and each service as a process of its own (`kill -9` at will),
//!   on the embedded broker and SQLite or on an external Kafka and PostgreSQL, as `chaos`
//!   and `bench` run them.
//!
//! What each user does beyond that stays with it: `up` restarts its broker and stops it
//! last, the tests keep their broker as a plain child process they kill and restart at will.

pub mod backend;
pub mod broker;
pub mod cluster;
pub mod in_process;
pub mod up;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

/// A free loopback port (bound, then released: another socket may take it before its user
/// binds it, which a caller that cares retries).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until `GET <base>/health/ready` answers 200 (the service's database and brokers
/// reachable), asking every 50 ms; an error once `limit` has passed.
pub async fn wait_ready(http: &reqwest::Client, base: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(r) = http.get(format!("{base}/health/ready")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{base} not ready in {} s",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `path` opened for appending (created when missing): a child process's log.
fn append_to(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("Failed to open {}", path.display()))
}

/// `openorder <service>` (the `openorder` binary `exe`) listening on `listen`, against the
/// brokers at `bootstrap` and the database at `database_url`, its output appended to `log`,
/// no input. The caller adds its other flags and environment.
pub fn service_command(
    exe: &Path,
    service: &str,
    listen: &str,
    bootstrap: &str,
    database_url: &str,
    log: &Path,
) -> anyhow::Result<std::process::Command> {
    let log = append_to(log)?;
    let mut command = std::process::Command::new(exe);
    command
        .arg(service)
        .args(["--listen", listen])
        .args(["--bootstrap-servers", bootstrap])
        .args(["--database-url", database_url])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(command)
}
