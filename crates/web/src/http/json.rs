//! The JSON body extractor: every rejection a problem (415 wrong content type, 413 too
//! large, 408 too slow, 400 malformed or followed by more data, 422 a field of the wrong
//! type named by its path). A body is one JSON **object**, and so is every nested value a
//! request type declares as a struct ([`Object`], [`object`], [`objects`],
//! [`optional_object`]): serde's derive would take an array for a struct (its fields in
//! order), which gets round the refusal of unknown fields.

use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::problem::{FieldError, Problem};

/// Largest request body any service accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest a JSON body may take to arrive once its request's head has: a client trickling
/// its body would otherwise hold one of the requests in flight for ever.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `413 /problems/body-too-large`: past [`MAX_BODY_BYTES`] as read, or as `declared` by
/// the request's `Content-Length` before any of it was read
/// ([`super::middleware::misframed`]).
pub(super) fn body_too_large(declared: Option<u64>) -> Problem {
    let detail = match declared {
        None => format!("the body must be at most {MAX_BODY_BYTES} bytes"),
        Some(declared) => format!(
            "the body must be at most {MAX_BODY_BYTES} bytes; Content-Length declares {declared}"
        ),
    };
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Request body too large",
        detail,
    )
}

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
                    body_too_large(None)
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
/// The body must be a single JSON object, with nothing after it but white space.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: Object<T> = serde_path_to_error::deserialize(&mut *de).map_err(|err| {
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
    })?;
    de.end().map_err(|err| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            format!("the body must be one JSON object and nothing after it: {err}"),
        )
    })?;
    Ok(value.0)
}

/// A value that must be a JSON object (an array, say, is refused as a wrong type).
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OnlyMaps<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OnlyMaps<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(OnlyMaps(std::marker::PhantomData))
            .map(Object)
    }
}

/// For `#[serde(deserialize_with = "…")]` on a struct field: a JSON object only.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Object::deserialize(d).map(|o| o.0)
}

/// The same for a field that may be absent or `null`.
pub fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<Object<T>>::deserialize(d).map(|o| o.map(|o| o.0))
}

/// The same for an array of objects.
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<Object<T>>::deserialize(d).map(|v| v.into_iter().map(|o| o.0).collect())
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
