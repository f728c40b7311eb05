//! The catalogue's own checks: names, help and suffixes, and the book's list of series.

use super::*;

/// Where the book lists the series, relative to this crate.
const BOOK_PAGE: &str = "../../docs/book/src/operating/observability.md";
const BEGIN: &str = "<!-- catalogue:begin (generated from crates/telemetry/src/catalogue.rs) -->\n";
const END: &str = "<!-- catalogue:end -->";

#[test]
fn every_series_has_a_unique_prometheus_name_help_and_the_suffix_its_kind_asks_for() {
    let mut names = std::collections::HashSet::new();
    for s in ALL {
        assert!(names.insert(s.name), "{} listed twice", s.name);
        assert!(s.name.starts_with("openorder_"), "{}", s.name);
        assert!(
            s.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{}",
            s.name
        );
        assert!(!s.help.trim().is_empty(), "{} has no help", s.name);
        assert_eq!(
            s.kind == Kind::Counter,
            s.name.ends_with("_total"),
            "{}: counters and only counters end in _total",
            s.name
        );
        if s.kind == Kind::Histogram {
            assert!(s.name.ends_with("_seconds"), "{}", s.name);
        }
    }
}

/// `OPENORDER_TEST_WRITE_DOCS=1 cargo test -p telemetry` writes the list into the book.
#[test]
fn the_books_list_of_series_is_the_catalogue() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(BOOK_PAGE);
    let page = std::fs::read_to_string(&path).expect("the observability page is readable");
    let start = page
        .find(BEGIN)
        .expect("the page has the catalogue's begin marker")
        + BEGIN.len();
    let end = page[start..]
        .find(END)
        .expect("the page has the catalogue's end marker")
        + start;
    let table = markdown();
    if std::env::var_os("OPENORDER_TEST_WRITE_DOCS").is_some() {
        let written = format!("{}{table}{}", &page[..start], &page[end..]);
        std::fs::write(&path, written).expect("the observability page is writable");
        return;
    }
    assert_eq!(
        page[start..end],
        table,
        "the book's list of series differs from the catalogue: \
         OPENORDER_TEST_WRITE_DOCS=1 cargo test -p telemetry writes it"
    );
}
