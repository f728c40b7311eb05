//! Real servers on loopback that stand in for the outside world notifications go to:
//! an SMTP server (aiosmtpd from PyPI, via `scripts/smtp_sink.py`) and an HTTP webhook
//! receiver (axum) that records every request and answers as told.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

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
        let port = super::free_port();
        let dir = super::temp_dir("smtp");
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

/// One request the webhook receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// How the receiver answers.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// 503 to the first `n` requests, then 204.
    FailFirst(usize),
    /// 503 to every request.
    AlwaysFail,
    /// 410 Gone to every request (a permanent refusal).
    Gone,
    /// Never answers the first request (a sender stuck mid-send), then 204.
    HangFirst,
}

/// An HTTP server on loopback recording every webhook request.
pub struct WebhookReceiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start(behaviour: Behaviour) -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let log = log.clone();
                async move {
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(Received {
                            path: uri.path().to_string(),
                            headers,
                            body: body.to_vec(),
                        });
                        log.len()
                    };
                    match behaviour {
                        Behaviour::FailFirst(k) if n <= k => StatusCode::SERVICE_UNAVAILABLE,
                        Behaviour::AlwaysFail => StatusCode::SERVICE_UNAVAILABLE,
                        Behaviour::Gone => StatusCode::GONE,
                        Behaviour::HangFirst if n == 1 => {
                            std::future::pending::<()>().await;
                            unreachable!()
                        }
                        _ => StatusCode::NO_CONTENT,
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/openorder", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            received,
            server,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (at most 60 s); returns all.
    pub async fn wait_requests(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.requests();
            if found.len() >= n {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} webhook requests after 60 s, wanted {n}",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Checks a Standard Webhooks signature as a receiver would, with its own HMAC: the
/// signed content is `{webhook-id}.{webhook-timestamp}.{body}`.
pub fn signature_is_valid(secret: &[u8], request: &Received) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(request.header("webhook-id").as_bytes());
    mac.update(b".");
    mac.update(request.header("webhook-timestamp").as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    request
        .header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}
