//! The framing RFC 9112 asks of every request served over a connection: one `Host`, a
//! `Content-Length` that is a number of bytes within the body limit ([`misframed`]), checked
//! before routing ([`framing`]).

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Version};
use axum::response::{IntoResponse, Response};

use crate::http::json::{body_too_large, MAX_BODY_BYTES};
use crate::http::problem::Problem;

/// Refuses, before it is routed and before its body is read, a request served over a
/// connection whose head frames it wrongly ([`misframed`]). Not part of [`super::app`]: a request
/// built in a test and handed to the router has no `Host`; [`crate::http::serve::serve`] puts
/// it in front of every request on every connection (the first head is also screened by
/// [`crate::http::first_head`], which sees what hyper would refuse bare).
pub(crate) async fn framing(request: Request, next: axum::middleware::Next) -> Response {
    let headers = request.headers();
    let problem = misframed(
        request.version() == Version::HTTP_11,
        headers
            .get_all(header::HOST)
            .iter()
            .map(HeaderValue::as_bytes),
        headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    match problem {
        None => next.run(request).await,
        Some(problem) => {
            // The connection is closed after the answer: a body declared and not read (or
            // a head whose framing is in doubt) leaves nothing on it to trust.
            let mut answer = problem.into_response();
            answer
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            answer
        }
    }
}

/// What is wrong with a request head's framing, as RFC 9112 has a server refuse it, given
/// its version, its `Host` values and its `Content-Length` values:
/// - an HTTP/1.1 request without `Host` (§3.2; HTTP/1.0 may leave it out):
///   `400 /problems/missing-host`;
/// - more than one `Host`, or one that is not a host and optional port:
///   `400 /problems/invalid-host`;
/// - a `Content-Length` that is not a number of bytes, or several that disagree (§6.3; what
///   hyper refuses too): `400 /problems/invalid-content-length`;
/// - a `Content-Length` past [`MAX_BODY_BYTES`]: `413 /problems/body-too-large` at once,
///   rather than after waiting for a body that would be refused anyway (or for the body
///   timeout, when it never comes).
///
/// (A `Transfer-Encoding` body has no `Content-Length` by then: hyper drops it, and the body
/// limit bounds such a body as it is read.)
pub(crate) fn misframed<'a>(
    http_1_1: bool,
    hosts: impl IntoIterator<Item = &'a [u8]>,
    lengths: impl IntoIterator<Item = &'a [u8]>,
) -> Option<Problem> {
    let hosts: Vec<&[u8]> = hosts.into_iter().collect();
    match hosts.as_slice() {
        [] if http_1_1 => {
            return Some(Problem::new(
                StatusCode::BAD_REQUEST,
                "missing-host",
                "Missing Host header",
                "an HTTP/1.1 request must name its host in a Host header (RFC 9112, section 3.2)",
            ))
        }
        [] => {}
        [host] if is_host(host) => {}
        [host] => {
            return Some(invalid_host(format!(
                "the Host header {:?} is not a host and optional port",
                String::from_utf8_lossy(host)
            )))
        }
        more => {
            return Some(invalid_host(format!(
                "a request must have one Host header, this one has {}",
                more.len()
            )))
        }
    }
    let mut declared: Option<u64> = None;
    for value in lengths {
        let Some(length) = bytes_count(value) else {
            return Some(invalid_content_length(format!(
                "Content-Length {:?} is not a number of bytes",
                String::from_utf8_lossy(value)
            )));
        };
        match declared {
            Some(first) if first != length => {
                return Some(invalid_content_length(format!(
                    "Content-Length is given twice, as {first} and {length}"
                )))
            }
            _ => declared = Some(length),
        }
    }
    match declared {
        Some(length) if length > MAX_BODY_BYTES as u64 => Some(body_too_large(Some(length))),
        _ => None,
    }
}

/// A `Host` value: empty (a request whose target has no authority, RFC 9112 §3.2), or a
/// host and optional port, without user information.
fn is_host(value: &[u8]) -> bool {
    value.is_empty()
        || (!value.contains(&b'@') && axum::http::uri::Authority::try_from(value).is_ok())
}

/// A `Content-Length` value: digits only (no sign, no list), as hyper reads it.
fn bytes_count(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn invalid_host(detail: String) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-host",
        "Invalid Host header",
        detail,
    )
}

fn invalid_content_length(detail: String) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-content-length",
        "Invalid Content-Length",
        detail,
    )
}
