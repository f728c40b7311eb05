//! How the `wait` preference is read from `Prefer` headers.

use axum::http::{HeaderMap, HeaderValue};

use super::requested_wait;
use crate::waits::MAX_WAIT_SECONDS;

fn wait_of(values: &[&str]) -> Option<u64> {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append("prefer", HeaderValue::from_str(value).unwrap());
    }
    requested_wait(&headers)
}

#[test]
fn the_wait_preference_is_read_as_rfc_7240_writes_it() {
    assert_eq!(wait_of(&[]), None);
    assert_eq!(wait_of(&["wait=5"]), Some(5));
    assert_eq!(
        wait_of(&["WAIT = 5"]),
        Some(5),
        "names are case-insensitive"
    );
    assert_eq!(wait_of(&["respond-async, wait=10"]), Some(10));
    assert_eq!(wait_of(&["return=minimal", "wait=3"]), Some(3));
    assert_eq!(
        wait_of(&["wait=7;foo=\"a,b\""]),
        Some(7),
        "parameters ignored"
    );
    assert_eq!(
        wait_of(&["x=\"wait=9, y\", wait=2"]),
        Some(2),
        "quoted commas"
    );
    assert_eq!(wait_of(&["wait=0"]), Some(0));
    assert_eq!(wait_of(&["wait=\"4\""]), Some(4));
}

#[test]
fn a_long_wait_is_cut_and_a_malformed_one_ignored() {
    assert_eq!(wait_of(&["wait=3600"]), Some(MAX_WAIT_SECONDS));
    assert_eq!(
        wait_of(&["wait=99999999999999999999999"]),
        Some(MAX_WAIT_SECONDS)
    );
    assert_eq!(wait_of(&["wait"]), None);
    assert_eq!(wait_of(&["wait="]), None);
    assert_eq!(wait_of(&["wait=-1"]), None);
    assert_eq!(wait_of(&["wait=1.5"]), None);
    assert_eq!(wait_of(&["wait=soon"]), None);
    assert_eq!(
        wait_of(&["wait=x, wait=5"]),
        None,
        "only the first wait counts, even malformed"
    );
    assert_eq!(wait_of(&["waiting=5"]), None);
}
