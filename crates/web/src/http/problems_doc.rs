//! The problem responses many routes document alike, declared once: a route's
//! `#[utoipa::path]` names a set among its `responses(...)` (`responses((status = 200, …),
//! OperatorOnly, JsonBody, (status = 422, …))`) and keeps inline only what is its own.
//!
//! Here, beside [`Problem`], because every refusal these sets document is made by this
//! crate, before or around a service's handler: the operator and customer gates and
//! [`crate::auth::Caller::may_act_for`], [`super::ApiJson`] and the body limit,
//! [`Problem::storage`], the dead-letter API ([`super::dead_letters`]). Documentation
//! only: nothing answers with these types.
//!
//! Each set renders as the inline tuple it replaces, `(status = …, description = …,
//! body = Problem, content_type = "application/problem+json")`: the same description, the
//! content keyed `application/problem+json` with a `$ref` to `Problem`, nothing else. A
//! route's responses are a map ordered by status, so where a set is named among them
//! does not change the document; a status a route describes its own way stays inline
//! (and must not also come from a set: the later of the two would win).

use super::problem::Problem;

/// The text of 413 (past [`super::json::MAX_BODY_BYTES`]), in [`JsonBody`] and
/// [`BodyOverLimit`].
const BODY_OVER_LIMIT: &str = "Body over 64 KiB";

/// A route for operators only: 401 without a valid operator token, 403 with a customer's.
#[derive(utoipa::IntoResponses)]
pub enum OperatorOnly {
    #[response(
        status = 401,
        description = "No valid operator token",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "A customer's token",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
}

/// A customers' route with customer authentication on (`--oidc-issuer`): 401 without a
/// valid token.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 401,
    description = "Customer authentication is on and no valid token was given",
    content_type = "application/problem+json"
)]
pub struct CustomerAuth(pub Problem);

/// A route on one user's data: 403 for a customer's token of another user
/// ([`crate::auth::Caller::may_act_for`]).
#[derive(utoipa::IntoResponses)]
#[response(
    status = 403,
    description = "Another user's",
    content_type = "application/problem+json"
)]
pub struct AnotherUsers(pub Problem);

/// A JSON body ([`super::ApiJson`]): 413 too large, 415 not `application/json`. Its 400
/// is often the route's own (a path parameter too); [`NotOneJsonObject`] where it is not.
#[derive(utoipa::IntoResponses)]
pub enum JsonBody {
    #[response(
        status = 413,
        description = BODY_OVER_LIMIT,
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    #[response(
        status = 415,
        description = "Not `application/json`",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(Problem),
}

/// 400 of a JSON body that is not one JSON object, for a route with no other 400.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 400,
    description = "Not one JSON object",
    content_type = "application/problem+json"
)]
pub struct NotOneJsonObject(pub Problem);

/// 413 of a body that is not JSON (a form): [`JsonBody`]'s 413 alone.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 413,
    description = BODY_OVER_LIMIT,
    content_type = "application/problem+json"
)]
pub struct BodyOverLimit(pub Problem);

/// 503 of a read when the database is away ([`Problem::storage`]).
#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    description = "The database is away",
    content_type = "application/problem+json"
)]
pub struct DatabaseAway(pub Problem);

/// 503 of a write when the database is away ([`Problem::storage`]): nothing was written.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    description = "The database is away; nothing was written",
    content_type = "application/problem+json"
)]
pub struct DatabaseAwayOnWrite(pub Problem);

/// 503 of the dead-letter API ([`super::dead_letters`]): the broker did not answer.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    description = "The broker did not answer; retry",
    content_type = "application/problem+json"
)]
pub struct BrokerAway(pub Problem);

/// 503 of the dead-letter API ([`super::dead_letters`]): the broker did not answer, or
/// every scan slot is taken (`/problems/busy`).
#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    description = "The broker did not answer, or too many scans at once; retry",
    content_type = "application/problem+json"
)]
pub struct BrokerAwayOrBusy(pub Problem);
