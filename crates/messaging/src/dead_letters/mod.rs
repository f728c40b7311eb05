//! Dead letters: records a consumer could not process, kept in `<topic>.DLT` with why.
//!
//! - [`write`]: writing one (Spring's headers, the original partition, a value too large left out).
//! - [`read`]: reading, listing and replaying them (the CLI and the admin API share it; the
//!   API itself is `web::http::dead_letters`).

pub mod read;
pub mod write;
