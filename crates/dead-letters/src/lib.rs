//! The operator's side of dead letters: list, show, edit, replay and redrive them, above
//! `messaging` (which writes them). The CLI (`openorder dlt …`), the admin API
//! (`web::http::dead_letters`) and the console all go through it, so they behave the same.
//!
//! - [`read`]: reading, listing and replaying them, one edited with a merge patch or many
//!   by a filter at a rate, each replay recorded in the replay ledger.
//! - [`filter`]: which dead letters a bulk redrive takes.
//! - [`merge_patch`]: RFC 7396, the edit of a value.
//! - [`redrive`]: the automatic redrive policy (off by default): transient failures
//!   replayed after a delay, up to a cap per record and a budget per minute.
//! - [`write`]: writing one, as the consumer loop does ([`messaging::dead_letters::write`],
//!   here too so that every dead-letter path is under one name).

pub mod filter;
pub mod merge_patch;
pub mod read;
pub mod redrive;

pub use messaging::dead_letters::write;
