//! The JSON body extractor: every rejection a problem (415 wrong content type, 413 too
//! large, 408 too slow, 400 malformed, 422 a field of the wrong type named by its path).

use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::problem::{FieldError, Problem};

/// Largest request body any service accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest a JSON body may take to arrive once its request's head has: a client trickling
/// its body would otherwise hold one of the requests in flight for ever.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A JSON body extractor whose every rejection is a [`Problem`]: 415 wrong content type,
/// 413 too large, 400 malformed JSON, 422 a field of the wrong type (named by its path).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if !(mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!("expected Content-Type: application/json, got {content_type:?}"),
            ));
        }
        let body = axum::body::Bytes::from_request(req, state);
        let bytes = tokio::time::timeout(BODY_READ_TIMEOUT, body)
            .await
            .map_err(|_| {
                Problem::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request-timeout",
                    "Request body too slow",
                    format!(
                        "the body did not arrive within {} s",
                        BODY_READ_TIMEOUT.as_secs()
                    ),
                )
            })?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body-too-large",
                        "Request body too large",
                        format!("the body must be at most {MAX_BODY_BYTES} bytes"),
                    )
                } else {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "unreadable-body",
                        "Unreadable request body",
                        rejection.body_text(),
                    )
                }
            })?;
        decode_json(&bytes).map(ApiJson)
    }
}

/// Decodes a JSON body: syntax errors are 400, type errors 422 naming the field's JSON pointer.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let pointer = pointer_of(err.path());
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                Problem::invalid_fields(vec![FieldError::new(pointer, strip_position(&inner))])
            }
            _ => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                format!("the body is not valid JSON: {inner}"),
            ),
        }
    })
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{key}")),
            Segment::Enum { variant } => out.push_str(&format!("/{variant}")),
            Segment::Unknown => {}
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}
