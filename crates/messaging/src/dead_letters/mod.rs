//! Dead letters: records a consumer could not process, kept in `<topic>.DLT` with why (and
//! in `<topic>.PARKED` when they failed again after a replay).
//!
//! - [`write`]: writing one (Spring's headers, the original partition, a value too large
//!   left out, the parking lot for a record replayed before), as the consumer loop does.
//!
//! The operator's side (listing, showing, editing, replaying and redriving them) is the
//! `dead-letters` crate, above this one; what a consumer reads of a dead letter it handles
//! ([`crate::router::DeadLetter`]) is on [`Record`](crate::record::Record)
//! ([`dead_lettered_by`](crate::record::Record::dead_lettered_by),
//! [`dead_letter_error`](crate::record::Record::dead_letter_error)).

pub mod write;
