//! The webhook receiver of `kill-notification-held`: on loopback, it answers 200 to every
//! request and keeps each one with its `webhook-id`, the delivery's idempotency key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One webhook request the receiver read.
#[derive(Clone, Debug)]
pub struct Received {
    /// Its `webhook-id` header: the idempotency key of the delivery (or digest) it carries.
    pub id: String,
    pub body: String,
}

/// A webhook receiver on loopback that answers 200 to every request and keeps them all.
pub struct Receiver {
    /// Where webhooks go (`http://127.0.0.1:<port>/hook`).
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts it on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let task = tokio::spawn({
            let received = received.clone();
            async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            tokio::spawn(serve(stream, received.clone()));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
        });
        Ok(Self {
            url,
            received,
            task,
        })
    }

    /// Every request read so far, in the order they arrived.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .expect("the receiver's lock is never poisoned")
            .clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request (headers, then `content-length` bytes of body), keeps it, and
/// answers 200, closing the connection.
async fn serve(mut stream: tokio::net::TcpStream, received: Arc<Mutex<Vec<Received>>>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 && buf.len() < (1 << 20) => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut id = String::new();
    let mut length = 0usize;
    for line in head.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("webhook-id") {
                id = value.trim().to_string();
            } else if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    received
        .lock()
        .expect("the receiver's lock is never poisoned")
        .push(Received { id, body });
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await;
    let _ = stream.shutdown().await;
}
