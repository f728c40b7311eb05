//! The embedded broker, `openorder-broker`, as a child process: where its binary is, the
//! command that runs it on a data directory and an address with its output in a log, a
//! start that waits until it answers (or says why it exited), and its own words from that
//! log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

/// The embedded broker's binary, built beside `openorder` (a package of its own: libsql
/// and sqlx's SQLite both define `sqlite3_*`).
pub const BROKER_BINARY: &str = "openorder-broker";

/// `openorder-broker` beside the `openorder` binary `openorder`; an error when it is not
/// there says to build the whole workspace.
pub fn broker_exe(openorder: &Path) -> anyhow::Result<PathBuf> {
    let exe = openorder.with_file_name(BROKER_BINARY);
    anyhow::ensure!(
        exe.is_file(),
        "the embedded broker binary {} is missing: build the whole workspace (`cargo build --workspace`, or `cargo build --release`)",
        exe.display()
    );
    Ok(exe)
}

/// The command that runs the broker `exe` on `data_dir`, listening on `listen`
/// (`host:port`), its output appended to `log`, no input. The caller adds what its use
/// needs (environment, a process group of its own, `kill_on_drop` on the Tokio command
/// made from it).
pub fn broker_command(
    exe: &Path,
    data_dir: &Path,
    listen: &str,
    log: &Path,
) -> anyhow::Result<std::process::Command> {
    let log = crate::append_to(log)?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(listen)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(command)
}

/// Spawns the broker `command` (from [`broker_command`], writing to `log`) and waits until
/// the broker at `bootstrap` answers a Metadata request, for at most `limit`. If it exits
/// first, the error gives its exit status and what it wrote to `log` on this start
/// ([`said`]).
pub async fn start_broker(
    command: &mut tokio::process::Command,
    bootstrap: &str,
    log: &Path,
    limit: Duration,
) -> anyhow::Result<tokio::process::Child> {
    // What this start writes to the log begins here: its reason, should it fail.
    let log_start = log_length(log);
    let mut child = command.spawn().with_context(|| {
        format!(
            "Failed to start {}",
            Path::new(command.as_std().get_program()).display()
        )
    })?;
    tokio::select! {
        ready = platform::kafka::wait_until_ready(bootstrap, limit) => ready?,
        status = child.wait() => anyhow::bail!(
            "the embedded broker exited at start ({}): {} (see {})",
            status?, said(log, log_start), log.display()
        ),
    }
    Ok(child)
}

/// The length of the file `log` (0 if there is none yet).
pub fn log_length(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len())
}

/// The broker's own words on why it stopped: the last error or panic lines it wrote to
/// `log` after byte `from` (at most 2 lines of 300 characters; the log is read from its
/// last 16 KiB only).
pub fn said(log: &Path, from: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(log) else {
        return "no broker log".into();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = from.max(len.saturating_sub(16 * 1024));
    let mut tail = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut tail).is_err() {
        return "the broker log could not be read".into();
    }
    let text = String::from_utf8_lossy(&tail);
    let strip = |line: &str| -> String {
        // No terminal colours (the log is a file, but be safe) and a bounded length.
        let plain: String = line.chars().filter(|c| !c.is_control()).collect();
        plain.chars().take(300).collect()
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let telling: Vec<String> = lines
        .iter()
        .filter(|l| l.contains("Error") || l.contains("ERROR") || l.contains("panicked"))
        .map(|l| strip(l))
        .collect();
    let chosen = if telling.is_empty() {
        lines.iter().rev().take(2).rev().map(|l| strip(l)).collect()
    } else {
        telling[telling.len().saturating_sub(2)..].to_vec()
    };
    if chosen.is_empty() {
        "the broker wrote nothing".into()
    } else {
        chosen.join(" | ")
    }
}
