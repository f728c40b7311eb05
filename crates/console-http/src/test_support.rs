//! What the tests of more than one module share.

use axum::http::{HeaderMap, HeaderValue};

/// A request's headers, from `(name, value)` pairs (a name given twice is sent twice).
pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}
