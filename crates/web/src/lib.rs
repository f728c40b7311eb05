//! What a service serves over HTTP, above `messaging` and `dead-letters`:
//!
//! - [`http`]: its flags, problem details, the JSON body extractor, health, middleware,
//!   OpenAPI, serving, and the dead-letter admin API (`/admin/dlt`).
//! - [`auth`]: who may call what: operator tokens, customers' JWTs, the access rule of each route.

pub mod auth;
pub mod http;
