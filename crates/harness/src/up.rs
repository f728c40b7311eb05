//! `openorder up` as a child process: its ports (found free), its command, and the file in
//! its data directory that holds the operator token it made.

use std::path::Path;

/// The file in `up`'s data directory that holds its operator token.
pub const UP_TOKEN_FILE: &str = "operator-token";

/// The ports of one `openorder up`: its embedded broker, the three services, the console
/// (0: none).
#[derive(Clone, Copy, Debug)]
pub struct UpPorts {
    pub broker: u16,
    pub order: u16,
    pub inventory: u16,
    pub notification: u16,
    pub console: u16,
}

impl UpPorts {
    /// A free loopback port for each ([`crate::free_port`]: found free and released, so
    /// another socket can take one before `up` binds it; `up` then exits at start).
    pub fn free() -> std::io::Result<Self> {
        Ok(Self {
            broker: crate::free_port()?,
            order: crate::free_port()?,
            inventory: crate::free_port()?,
            notification: crate::free_port()?,
            console: crate::free_port()?,
        })
    }
}

/// `openorder up` (the `openorder` binary `exe`) on `data_dir` and `ports`, with its
/// embedded broker (no `OPENORDER_BOOTSTRAP_SERVERS` from this process's environment). The
/// caller adds its output, environment and process settings.
pub fn up_command(exe: &Path, data_dir: &Path, ports: &UpPorts) -> std::process::Command {
    let mut command = std::process::Command::new(exe);
    command
        .arg("up")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--broker-port", &ports.broker.to_string()])
        .args(["--order-port", &ports.order.to_string()])
        .args(["--inventory-port", &ports.inventory.to_string()])
        .args(["--notification-port", &ports.notification.to_string()])
        .args(["--console-port", &ports.console.to_string()])
        .env_remove("OPENORDER_BOOTSTRAP_SERVERS");
    command
}
