//! The dead-letter filter's fields as text, from a query or a body, each checked
//! ([`FilterText::parse`]).

use crate::http::FieldError;
use dead_letters::filter::{parse_order_ids, parse_time};
use dead_letters::read::Filter;

/// The filter's fields, as text (a query or a body), each checked: errors name `field`
/// under `at` (`""` for query parameters, `/` for a body's JSON pointers).
#[derive(Default)]
pub(super) struct FilterText<'a> {
    pub(super) class: Option<&'a str>,
    pub(super) original_topic: Option<&'a str>,
    pub(super) since: Option<&'a str>,
    pub(super) until: Option<&'a str>,
    pub(super) order_ids: Option<&'a str>,
    pub(super) text: Option<&'a str>,
}

impl FilterText<'_> {
    pub(super) fn parse(&self, at: &str) -> Result<Filter, Vec<FieldError>> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        fn non_empty(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let mut errors = Vec::new();
        let mut time = |name: &str, v: Option<&str>| {
            non_empty(v).and_then(|v| match parse_time(v, now_ms) {
                Ok(ms) => Some(ms),
                Err(message) => {
                    errors.push(FieldError::new(format!("{at}{name}"), message));
                    None
                }
            })
        };
        let since_ms = time("since", self.since);
        let until_ms = time("until", self.until);
        let order_ids = non_empty(self.order_ids).and_then(|v| match parse_order_ids(v) {
            Ok(range) => Some(range),
            Err(message) => {
                errors.push(FieldError::new(format!("{at}orderIds"), message));
                None
            }
        });
        if errors.is_empty() {
            Ok(Filter {
                class: non_empty(self.class).map(str::to_string),
                original_topic: non_empty(self.original_topic).map(str::to_string),
                since_ms,
                until_ms,
                order_ids,
                text: non_empty(self.text).map(str::to_string),
            })
        } else {
            Err(errors)
        }
    }
}
