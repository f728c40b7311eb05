//! Reading topics for people: every topic with its partitions and watermarks, a page of
//! records from the newest, an offset or a time (filtered by key, event type or text), and
//! every record of one key (an order's, on the one partition its key maps to). Blocking
//! (librdkafka), so called through [`crate::blocking`]; every read is bounded in records
//! scanned and in time, and its answer says when a bound cut it short.
//!
//! The [`Readers`] kept between requests are in `readers`, the reads they make in `reads`,
//! and a record as a person reads it ([`RecordView`]) in `view`.

mod readers;
mod reads;
mod view;

use std::time::Duration;

use contracts::headers;
use platform::record::Record;
use serde::Serialize;

pub use readers::{Readers, MAX_READERS};
pub use view::{HeaderView, RecordView, Value};

/// Most records a page shows.
pub const MAX_PAGE: usize = 500;
/// Most records one read looks at per partition (a filter that matches little reads this
/// many at most, then says so).
pub const MAX_SCAN: i64 = 20_000;
/// Longest one read takes.
const READ_FOR: Duration = Duration::from_secs(5);
/// Most bytes of a value a page shows (the rest is cut, and says how much).
pub const MAX_VALUE_SHOWN: usize = 64 * 1024;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionInfo {
    pub partition: i32,
    /// The oldest offset kept (low watermark).
    pub low: i64,
    /// The next offset to be written (high watermark).
    pub high: i64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
    /// Records kept (high − low, added up).
    pub records: i64,
}

/// Where a page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// The newest records (of each partition, or of the one asked for).
    Newest,
    /// This offset on, in each partition asked for.
    Offset(i64),
    /// Records written at or after this time (milliseconds since the epoch) on.
    Time(i64),
}

/// What a page shows.
#[derive(Clone, Debug)]
pub struct Browse {
    pub partition: Option<i32>,
    pub from: From,
    pub limit: usize,
    pub filter: Filter,
}

/// Records a page keeps; every part given must match.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// The key, exactly.
    pub key: Option<String>,
    /// The `event-type` header, exactly.
    pub event_type: Option<String>,
    /// Text anywhere in the key, the headers or the value.
    pub text: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.key.is_none() && self.event_type.is_none() && self.text.is_none()
    }

    fn matches(&self, r: &Record) -> bool {
        if let Some(key) = &self.key {
            if r.key.as_deref() != Some(key.as_bytes()) {
                return false;
            }
        }
        if let Some(t) = &self.event_type {
            if r.header(headers::EVENT_TYPE) != Some(t.as_str()) {
                return false;
            }
        }
        if let Some(text) = &self.text {
            let needle = text.as_bytes();
            let within = |hay: &[u8]| hay.windows(needle.len().max(1)).any(|w| w == needle);
            let in_headers = r
                .headers
                .iter()
                .any(|(k, v)| within(k.as_bytes()) || v.as_deref().is_some_and(within));
            if !(r.key.as_deref().is_some_and(within)
                || r.payload.as_deref().is_some_and(within)
                || in_headers)
            {
                return false;
            }
        }
        true
    }
}

/// A page of records and how it was read.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub records: Vec<RecordView>,
    /// Records looked at (a filter keeps fewer).
    pub scanned: u64,
    /// Whether a bound (records scanned, time) ended the read before it had seen every
    /// record it was asked to look at.
    pub cut_short: bool,
}

#[cfg(test)]
mod tests;
