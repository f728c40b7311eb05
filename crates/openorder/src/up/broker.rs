//! `up`'s embedded broker: the sibling `openorder-broker` binary as a child process in a
//! process group of its own, started again (after a growing wait) when it exits, and stopped
//! last, once the services made their last commits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use platform::CancellationToken;
use tokio::process::{Child, Command};

/// The embedded broker child process.
pub(super) struct EmbeddedBroker {
    child: Child,
    exe: PathBuf,
    data_dir: PathBuf,
    address: SocketAddr,
    /// Where the running broker's lines begin in `broker.log`.
    log_from: u64,
}

/// Restarts of a broker that keeps dying before `up` gives up (each after a longer wait:
/// 0.5, 1, 2, 4, 8 s). A broker that ran for [`BROKER_STABLE`] starts the count again.
const BROKER_RESTARTS: u32 = 5;
const BROKER_STABLE: Duration = Duration::from_secs(60);

impl EmbeddedBroker {
    pub(super) async fn start(data_dir: &Path, address: SocketAddr) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("Failed to find the openorder executable")?;
        let broker_exe = harness::broker::broker_exe(&exe)?;
        let log_from = log_length(data_dir);
        let child = Self::spawn(&broker_exe, data_dir, address).await?;
        Ok(Self {
            child,
            exe: broker_exe,
            data_dir: data_dir.to_path_buf(),
            address,
            log_from,
        })
    }

    async fn spawn(exe: &Path, data_dir: &Path, address: SocketAddr) -> anyhow::Result<Child> {
        let log_path = data_dir.join("broker.log");
        let bootstrap = address.to_string();
        let mut command = Command::from(harness::broker::broker_command(
            exe,
            &data_dir.join("broker"),
            &bootstrap,
            &log_path,
        )?);
        command
            // A process group of its own: a Ctrl-C or a SIGTERM/SIGHUP to the terminal's or
            // the service manager's group reaches `up` only, and `up` stops the broker after
            // the services, which still need it for their last commits.
            .process_group(0)
            .kill_on_drop(true);
        die_with_parent(&mut command);
        // Up to 30 s for a previous broker on this data directory to stop, then start-up.
        harness::broker::start_broker(&mut command, &bootstrap, &log_path, Duration::from_secs(60))
            .await
    }

    /// Watches the broker until `shutdown`: if it exits, it is started again after a
    /// growing wait (logged). When it cannot be kept running (it died [`BROKER_RESTARTS`]
    /// times in a row, or would not start again), this cancels `shutdown`, so that
    /// everything stops, and returns the error. Returns the broker, to be stopped.
    pub(super) async fn supervise(self, shutdown: CancellationToken) -> (Self, anyhow::Result<()>) {
        let (broker, result) = self.keep_running(&shutdown).await;
        if result.is_err() {
            shutdown.cancel();
        }
        (broker, result)
    }

    async fn keep_running(mut self, shutdown: &CancellationToken) -> (Self, anyhow::Result<()>) {
        let mut restarts = 0u32;
        let mut running_since = tokio::time::Instant::now();
        loop {
            let status = tokio::select! {
                _ = shutdown.cancelled() => return (self, Ok(())),
                status = self.child.wait() => status,
            };
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            let reason = harness::broker::said(&self.data_dir.join("broker.log"), self.log_from);
            if running_since.elapsed() >= BROKER_STABLE {
                restarts = 0;
            }
            if restarts >= BROKER_RESTARTS {
                let err = anyhow::anyhow!(
                    "the embedded broker exited ({status}) {} times in a row: {reason}; giving up (see {})",
                    restarts + 1,
                    self.data_dir.join("broker.log").display()
                );
                return (self, Err(err));
            }
            let wait = platform::backoff::Backoff::doubling(
                Duration::from_millis(500),
                Duration::from_secs(8),
            )
            .delay(restarts + 1);
            restarts += 1;
            tracing::error!(
                %status, %reason, restart = restarts, of = BROKER_RESTARTS, wait_ms = wait.as_millis() as u64,
                "the embedded broker exited; starting it again"
            );
            tokio::select! {
                _ = shutdown.cancelled() => return (self, Ok(())),
                _ = tokio::time::sleep(wait) => {}
            }
            self.log_from = log_length(&self.data_dir);
            let started = tokio::select! {
                _ = shutdown.cancelled() => return (self, Ok(())),
                started = Self::spawn(&self.exe, &self.data_dir, self.address) => started,
            };
            match started {
                Ok(child) => {
                    tracing::info!(address = %self.address, "the embedded broker is running again");
                    self.child = child;
                    running_since = tokio::time::Instant::now();
                }
                Err(err) => {
                    return (
                        self,
                        Err(err
                            .context("the embedded broker exited and could not be started again")),
                    )
                }
            }
        }
    }

    /// SIGTERM, then until `deadline` for the broker to stop, then SIGKILL.
    async fn stop(mut self, deadline: tokio::time::Instant) {
        if let Some(pid) = self.child.id() {
            terminate(pid);
        }
        if tokio::time::timeout_at(deadline, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!("the embedded broker did not stop in time; killing it");
            let _ = self.child.kill().await;
        }
    }
}

/// The length of `broker.log` in `data_dir` (0 if there is none yet).
fn log_length(data_dir: &Path) -> u64 {
    harness::broker::log_length(&data_dir.join("broker.log"))
}

/// Makes the kernel SIGTERM the broker if `openorder up` dies without stopping it (kill -9).
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child being spawned.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// Waits for the embedded broker's supervisor (`watch`), then stops the broker within
/// 95 % of `bound` from when the stop began (at least 200 ms from now): the services
/// stopped first, so their last records went out. The supervisor's error, if it had one.
pub(super) async fn stop_broker(
    watch: tokio::task::JoinHandle<(EmbeddedBroker, anyhow::Result<()>)>,
    stop_began: tokio::task::JoinHandle<tokio::time::Instant>,
    bound: Duration,
) -> anyhow::Result<()> {
    let (broker, watched) = watch
        .await
        .map_err(|err| anyhow::anyhow!("the broker's supervisor failed: {err}"))?;
    if let Err(err) = &watched {
        tracing::error!(error = format!("{err:#}"), "stopping all");
    }
    let began = stop_began
        .await
        .unwrap_or_else(|_| tokio::time::Instant::now());
    let deadline = began + bound.mul_f64(0.95);
    broker
        .stop(deadline.max(tokio::time::Instant::now() + Duration::from_millis(200)))
        .await;
    watched
}
