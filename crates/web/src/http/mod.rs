//! HTTP pieces every service shares, one file each:
//! - [`args`]: the flags of a service's HTTP API.
//! - [`dead_letters`]: the dead-letter admin API, `/admin/dlt`.
//! - [`problem`]: RFC 9457 problem details.
//! - [`json`]: the JSON body extractor, whose rejections are problems too.
//! - [`health`]: the health endpoints.
//! - [`middleware`]: the 404 problem and body limit, the limit on requests in flight,
//!   request timing for `/metrics`.
//! - [`openapi`]: the service's OpenAPI document at `/openapi.json`, and `/docs` to read it.
//! - [`problems_doc`]: the problem responses routes share, declared once for their OpenAPI
//!   annotations.
//! - [`serve`]: serving with graceful shutdown and a header read timeout, every request's
//!   framing checked (`Host`, `Content-Length`: [`middleware::framing`]);
//!   [`first_head`]: a connection's first head screened for what hyper would refuse bare.

pub mod args;
pub mod dead_letters;
pub mod first_head;
pub mod health;
pub mod json;
pub mod middleware;
pub mod openapi;
pub mod problem;
pub mod problems_doc;
pub mod serve;

pub use args::*;
pub use health::*;
pub use json::*;
pub use middleware::*;
pub use problem::*;
pub use serve::*;

#[cfg(test)]
mod tests;
