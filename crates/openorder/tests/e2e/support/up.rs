//! `openorder up` as a child process, with its own data directory and ports (signalled,
//! waited for, its embedded broker found), and one service alone (`openorder <service>`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{openorder_exe, wait_ready, UpPorts};

/// `openorder up` as a child process with its own data directory and ports.
pub struct UpProcess {
    pub child: Child,
    pub order_url: String,
    pub inventory_url: String,
    pub notification_url: String,
    pub console_url: String,
}

/// `openorder up` on `data_dir` and `ports`, its embedded broker (no
/// `OPENORDER_BOOTSTRAP_SERVERS` from the test's environment).
pub fn up_command(data_dir: &std::path::Path, ports: &UpPorts) -> Command {
    harness::up::up_command(openorder_exe(), data_dir, ports)
}

/// One service alone (`openorder <service>`), its output appended to `log`, with none of
/// the test's broker, database or log settings from the environment.
pub fn standalone(
    service: &str,
    listen: &str,
    bootstrap: &str,
    database: &str,
    log: &std::path::Path,
) -> Child {
    harness::service_command(openorder_exe(), service, listen, bootstrap, database, log)
        .expect("the service's log opens")
        .env_remove("OPENORDER_BOOTSTRAP_SERVERS")
        .env_remove("OPENORDER_DATABASE_URL")
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap()
}

impl UpProcess {
    pub async fn start(data_dir: &std::path::Path, ports: &UpPorts) -> Self {
        Self::start_with_env(data_dir, ports, &[]).await
    }

    /// [`Self::start`] with extra environment variables (e.g. notification settings).
    pub async fn start_with_env(
        data_dir: &std::path::Path,
        ports: &UpPorts,
        env: &[(&str, &str)],
    ) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        use std::os::unix::process::CommandExt;
        let child = up_command(data_dir, ports)
            // A process group of its own, led by `up`, as a terminal or a service manager
            // gives it: a test can signal the whole group.
            .process_group(0)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("openorder up starts");
        let up = Self {
            child,
            order_url: format!("http://127.0.0.1:{}", ports.order),
            inventory_url: format!("http://127.0.0.1:{}", ports.inventory),
            notification_url: format!("http://127.0.0.1:{}", ports.notification),
            console_url: format!("http://127.0.0.1:{}", ports.console),
        };
        let http = reqwest::Client::new();
        for base in [&up.order_url, &up.inventory_url, &up.notification_url] {
            wait_ready(&http, base).await;
        }
        up
    }

    /// Sends `signal` (`TERM`, `INT`, `HUP`, `KILL`) to `up` alone, or to its whole
    /// process group (as systemd's `KillMode=control-group` and a closed terminal do).
    pub fn signal(&self, signal: &str, group: bool) {
        let pid = self.child.id().to_string();
        let target = if group { format!("-{pid}") } else { pid };
        let status = Command::new("kill")
            .args([format!("-{signal}"), "--".into(), target])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits up to `bound` for `up` to exit; returns its status and how long it took.
    pub fn wait_exit(&mut self, bound: Duration) -> (std::process::ExitStatus, Duration) {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < bound,
                "openorder up still running {bound:?} after the signal"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of `up`'s embedded broker child (from /proc: a child whose name is the
    /// broker binary's, which the kernel cuts to 15 characters).
    pub fn broker_pid(&self) -> Option<u32> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).ok()?;
        tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
            .flat_map(|children| {
                children
                    .split_whitespace()
                    .filter_map(|pid| pid.parse::<u32>().ok())
                    .collect::<Vec<_>>()
            })
            .find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "openorder-broke")
            })
    }

    /// SIGTERM, and the exit status must be success.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "openorder up exited with {exit}");
    }
}

impl Drop for UpProcess {
    /// A test that failed half-way must not leave `up` (and its broker) running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
