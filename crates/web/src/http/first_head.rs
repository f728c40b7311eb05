//! The first request head of a connection, read before hyper sees it: a request line or
//! header block past what the `http` crate and hyper take (a 64 KiB target, 1,024
//! headers) would get hyper's bare `414` / `431`; here it gets a problem, like every other
//! refusal. So does a `Content-Length` hyper would refuse bare (not a number, or two that
//! disagree), and whatever else a head's framing is refused for
//! ([`super::middleware::misframed`]: no `Host`, a body past the limit).
//!
//! A head whose lines end in a bare LF (no CR) is refused here too, `400
//! /problems/malformed-head`: RFC 9112 §2.2 lets a server take it, and hyper's parser does,
//! but the screening below looks for the CRLF CRLF that ends a head and would wait for it
//! until the header read timeout, answering nothing. Only the first head is screened for it:
//! later heads on a kept-alive connection go to hyper, which takes them.
//!
//! What was read is handed to hyper in front of the rest of the stream ([`Prefixed`]).
//! (Later requests on a kept-alive connection go to hyper directly; the router answers
//! those within its own limits, [`super::middleware::app`], and
//! [`super::middleware::framing`].)

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::middleware::{
    headers_too_large, misframed, uri_too_long, HYPER_MAX_HEADERS, MAX_URI_BYTES,
};
use super::problem::Problem;

/// Most of a head read here; a head not complete by then is refused.
const MAX_HEAD: usize = 80 * 1024;

/// What the first head of a connection was found to be.
pub enum FirstHead {
    /// Served: these bytes (the head and perhaps more) come first.
    Serve(Vec<u8>),
    /// Answered here with a problem and closed.
    Refused,
    /// The connection sent nothing (or closed) within the time allowed.
    Silent,
}

/// Reads `stream` until its first head is complete (or too large, or `timeout` passed).
pub async fn screen(stream: &mut TcpStream, timeout: Duration) -> FirstHead {
    // Read straight into `head` (no buffer of its own in the future: it would stay in
    // every connection's task for the connection's life).
    let mut head: Vec<u8> = Vec::with_capacity(2048);
    let read = tokio::time::timeout(timeout, async {
        let mut searched: usize = 0;
        loop {
            let from = searched.saturating_sub(3);
            let end = find(&head[from..], b"\r\n\r\n").map(|at| from + at + 4);
            // A bare LF in what came of the head so far: refused below, at once.
            let bare = bare_lf(&head[..end.unwrap_or(head.len())], searched).is_some();
            if end.is_some() || bare || head.len() >= MAX_HEAD {
                return true;
            }
            searched = head.len();
            if head.capacity() - head.len() < 1024 {
                head.reserve(head.len().min(MAX_HEAD));
            }
            match stream.read_buf(&mut head).await {
                Ok(0) | Err(_) => return !head.is_empty(),
                Ok(_) => {}
            }
        }
    })
    .await;
    match read {
        Ok(true) => {}
        // Closed after a part of a head: hyper may still answer that (a 400).
        Ok(false) if !head.is_empty() => return FirstHead::Serve(head),
        // Nothing, or no complete head in time: closed, as hyper closes it.
        _ => return FirstHead::Silent,
    }
    let end = find(&head, b"\r\n\r\n");
    let line_end = find(&head, b"\r\n").unwrap_or(head.len());
    let target = line_end.saturating_sub("GET  HTTP/1.1".len());
    let problem = if let Some(at) = bare_lf(&head[..end.map_or(head.len(), |end| end + 4)], 0) {
        Some(bare_line_feed(at))
    } else if target > MAX_URI_BYTES {
        Some(uri_too_long(target))
    } else {
        let lines = end.map(|end| head[..end].split(|b| *b == b'\n').count() - 1);
        match (end, lines) {
            (Some(end), Some(n)) if n <= HYPER_MAX_HEADERS => head_framing(&head[..end]),
            _ => Some(headers_too_large(format!(
                "this head was past what is read of one ({MAX_HEAD} bytes, {HYPER_MAX_HEADERS} headers)"
            ))),
        }
    };
    match problem {
        None => FirstHead::Serve(head),
        Some(problem) => {
            let body = serde_json::to_vec(&problem).expect("a problem serializes");
            let status = StatusCode::from_u16(problem.status).expect("a valid status");
            let answer = format!(
                "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                body.len()
            );
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                stream.write_all(answer.as_bytes()).await?;
                stream.write_all(&body).await?;
                stream.shutdown().await
            })
            .await;
            FirstHead::Refused
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Where the first LF at or after `from` in `bytes` has no CR before it, if one has not.
fn bare_lf(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len()).find(|&at| bytes[at] == b'\n' && (at == 0 || bytes[at - 1] != b'\r'))
}

/// `400 /problems/malformed-head`: a line of the head ended in a bare LF at byte `at`.
fn bare_line_feed(at: usize) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "malformed-head",
        "Malformed request head",
        format!("every line of a request head must end in CR LF; byte {at} is a bare LF"),
    )
}

/// The framing of a complete head, `head` up to (not with) the CRLF CRLF that ends it and
/// with no bare LF in it: what [`misframed`] says of its version, `Host` and
/// `Content-Length` lines. A head hyper would not parse as a request at all (no version it
/// serves, a folded line, …) is left to hyper's own `400`.
fn head_framing(head: &[u8]) -> Option<Problem> {
    // Empty lines before the request line are ignored (RFC 9112 §2.2), as hyper does.
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .skip_while(|line| line.is_empty());
    let version = lines.next()?.rsplit(|b| *b == b' ').next()?;
    let http_1_1 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return None,
    };
    let (mut hosts, mut lengths, mut transfer_encoded) = (Vec::new(), Vec::new(), false);
    for line in lines {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            return None;
        }
        let colon = line.iter().position(|b| *b == b':')?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"host") {
            hosts.push(value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            lengths.push(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoded = true;
        }
    }
    // With a `Transfer-Encoding`, hyper reads the body by it and drops `Content-Length`
    // (RFC 9112 §6.3): so does this check.
    if transfer_encoded {
        lengths.clear();
    }
    misframed(http_1_1, hosts, lengths)
}

/// A stream whose first bytes were already read: they are read again first.
pub struct Prefixed {
    prefix: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl Prefixed {
    pub fn new(prefix: Vec<u8>, inner: TcpStream) -> Self {
        Self {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
