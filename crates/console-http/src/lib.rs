//! How the console is reached and who reaches it, knowing nothing of its pages or of what
//! they show: the `console` crate builds on it and re-exports each module under its name.
//!
//! - [`transport`]: HTTP or, given a certificate, HTTPS only, its own accept loop, and each
//!   request's [`transport::Client`] (its address, and whether it came over HTTPS, directly
//!   or through a trusted proxy);
//! - [`session`]: every browser's session, in a cookie, with its CSRF token and, once signed
//!   in, the operator's;
//! - [`sign_in_limit`]: how often one client may try an operator token;
//! - [`form`]: form bodies as browsers send them, repeated fields included.

pub mod form;
pub mod session;
pub mod sign_in_limit;
pub mod transport;

#[cfg(test)]
mod test_support;
