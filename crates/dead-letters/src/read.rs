//! Dead letters people can act on: list them, show one, replay them to their original topic.
//! Used by `openorder dlt …` and by inventory-service's admin API, so both behave the same.
//!
//! Replaying republishes a dead letter's original key, value and headers (without the
//! dead-letter headers) to its original topic, with `openorder-replay-count` one higher
//! than before and an `openorder-replay-history` header saying where it came from, why
//! that failed, who replayed it and when. A record whose count would pass the cap is
//! refused. Every replay is recorded in the ledger topic `openorder.dlt-replays` (behind
//! the prefix), keyed by the dead letter's position; a dead letter already in the ledger
//! is not replayed again unless forced, so running the same replay twice by accident does
//! nothing.
//!
//! - **Edit and retry** ([`ReplayRequest::patch`]): one dead letter's value with a JSON
//!   merge patch applied ([`crate::merge_patch`]), checked against its event's JSON Schema
//!   ([`contracts::schemas`]) before anything is sent: a value that breaks it is refused
//!   ([`InvalidEdit`], every error). The record carries `openorder-edited: true` and the
//!   patch's SHA-256; the ledger keeps the patch. The dead letter itself stays where it is.
//! - **Bulk by filter** ([`redrive`]): the dead letters of one topic or of all of them
//!   (DLTs, or parking lots) that a [`Filter`] matches, at most a limit, at most `rate`
//!   records a second; a dry run counts and lists exactly what would go.
//! - **Parking lots** (`<topic>.PARKED`): a replayed record that fails again goes there
//!   ([`crate::write`]); they are listed apart ([`parked_topics`]) and replayed from like
//!   a DLT, deliberately.
//!
//! Its parts: `letter` (what a dead letter's headers say, its [`summary`], [`detail`] and
//! history), `scan` (reading dead-letter topics: all of one, the first so many, one record),
//! `listing` (the dead letters a [`Listing`] names, and the replay ledger's counts), `edit`
//! (a value edited by a merge patch, checked against its schema), `replay` (replays by
//! selection, bulk redrives by filter) and `send` (republishing each one, recorded in the
//! ledger).

mod edit;
mod letter;
mod listing;
mod replay;
mod scan;
mod send;

pub use crate::filter::Filter;
pub use edit::{edit, Edit, InvalidEdit};
pub(crate) use letter::LetterHeaders;
pub use letter::{detail, summary, Replayed, Summary};
pub(crate) use listing::read_with_ledger;
pub use listing::{listed, summaries, summaries_of, Listing};
pub use replay::{
    redrive, replay, RedriveReport, RedriveRequest, ReplayRequest, ReplayResult, Selection,
};
pub use scan::{
    dlt_topics, is_dead_letter_topic, is_parked_topic, is_replayable_topic, list, parked_topics,
    read_all, read_at_most, read_one,
};
pub(crate) use send::{send_all, Sending};

use contracts::headers;

/// The dead-letter headers whose value is a big-endian integer (as Spring writes them):
/// shown as numbers.
pub const BINARY_INT_HEADERS: [&str; 3] = [
    headers::DLT_ORIGINAL_PARTITION,
    headers::DLT_ORIGINAL_OFFSET,
    headers::DLT_ORIGINAL_TIMESTAMP,
];

/// Ledger topic of replays (behind the prefix).
pub const LEDGER: &str = "openorder.dlt-replays";

/// Most dead letters one replay or redrive request sends (or lists, in a dry run).
pub const MAX_PER_REQUEST: usize = 1_000;

#[cfg(test)]
mod tests;
