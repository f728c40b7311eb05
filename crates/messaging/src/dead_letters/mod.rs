//! Dead letters: records a consumer could not process, kept in `<topic>.DLT` with why (and
//! in `<topic>.PARKED` when they failed again after a replay).
//!
//! - [`write`]: writing one (Spring's headers, the original partition, a value too large
//!   left out, the parking lot for a record replayed before).
//! - [`read`]: reading, listing and replaying them, one edited with a merge patch or many
//!   by a filter at a rate (the CLI and the admin API share it; the API itself is
//!   `web::http::dead_letters`).
//! - [`filter`]: which dead letters a bulk redrive takes.
//! - [`merge_patch`]: RFC 7396, the edit of a value.
//! - [`redrive`]: the automatic redrive policy (off by default): transient failures
//!   replayed after a delay, up to a cap per record and a budget per minute.

pub mod filter;
pub mod merge_patch;
pub mod read;
pub mod redrive;
pub mod write;
