//! An SMTP server on loopback (aiosmtpd from PyPI, via `scripts/smtp_sink.py`) that keeps
//! every message it accepts, refusing the first few if told to.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{free_port, temp_dir};

/// The Python that has aiosmtpd: `OPENORDER_TEST_SMTP_PYTHON`, or the one `scripts/smtp.sh
/// setup` prepares (run here if needed, so `cargo test` alone works on a machine with PyPI).
fn smtp_python() -> String {
    if let Ok(python) = std::env::var("OPENORDER_TEST_SMTP_PYTHON") {
        if !python.is_empty() {
            return python;
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/smtp.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("setup")
        .output()
        .expect("scripts/smtp.sh runs");
    assert!(
        out.status.success(),
        "scripts/smtp.sh setup failed (it installs aiosmtpd from PyPI): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A running SMTP server that keeps every message it accepts.
pub struct SmtpSink {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl SmtpSink {
    /// Starts the server; it refuses the first `fail_first` messages with a 451.
    pub fn start(fail_first: usize) -> Self {
        let port = free_port();
        let dir = temp_dir("smtp");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/smtp_sink.py");
        let mut child = Command::new(smtp_python())
            .arg(script)
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(&dir)
            .args(["--fail-first", &fail_first.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the SMTP sink starts");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(
            line.trim(),
            format!("ready {port}"),
            "SMTP sink did not start"
        );
        Self { port, dir, child }
    }

    /// Every message accepted so far, in order: envelope, headers and decoded parts.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits until at least `n` messages arrived (at most 60 s); returns all.
    pub async fn wait_messages(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.messages();
            if found.len() >= n {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} e-mails after 60 s, wanted {n}",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
